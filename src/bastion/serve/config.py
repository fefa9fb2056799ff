"""Gateway settings: one frozen object from ``[serve]`` in bastion.toml and an optional ``--config`` file.

Unknown keys raise :class:`~bastion.errors.ConfigError`; every field has a safe default, so a gateway with no
configuration at all authenticates, rate-limits consumers at 100 requests per minute, runs the extraction
monitor and answers consumers with rounded top-k probabilities.

Size (over ~400 lines): one frozen dataclass per ``[serve.*]`` table with its parser and validation, kept in
one module so that it reads in the order of the ``bastion.toml`` it mirrors.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from bastion.errors import ConfigError

MONITOR_ACTIONS: tuple[str, ...] = ("alert", "throttle", "label-only", "block")
OUTPUT_MODES: tuple[str, ...] = ("probabilities", "top-k", "label")
INPUT_PII_ACTIONS: tuple[str, ...] = ("redact", "reject", "allow")

DEFAULT_RATE_LIMITS: Mapping[str, str] = {
    "consumer": "100/minute",
    "admin": "6000/minute",
    "auditor": "600/minute",
    "deployer": "600/minute",
    "ml-engineer": "600/minute",
    "data-scientist": "600/minute",
}

# Rows (model queries) per identity: a consumer's 100 requests a minute may carry 1,000 rows in all.
DEFAULT_ROW_LIMITS: Mapping[str, str] = {
    "consumer": "1000/minute",
    "admin": "600000/minute",
    "auditor": "6000/minute",
    "deployer": "6000/minute",
    "ml-engineer": "60000/minute",
    "data-scientist": "60000/minute",
}


@dataclass(frozen=True)
class RateLimitConfig:
    """Exact sliding-log limits (``limits`` notation, see :mod:`bastion.serve.ratelimit`).

    Per identity: requests (``per_role``, ``default``) and rows, i.e. model queries (``rows_per_role``,
    ``default_rows``); ``throttled``/``throttled_rows`` once the extraction monitor throttles a client. Per
    client address, before authentication: requests (``per_address``) and failed authentications
    (``auth_failures``; an address past it is refused before any token lookup).
    """

    per_role: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_RATE_LIMITS))
    default: str = "100/minute"
    throttled: str = "10/minute"
    rows_per_role: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_ROW_LIMITS))
    default_rows: str = "1000/minute"
    throttled_rows: str = "10/minute"
    per_address: str = "6000/minute"
    auth_failures: str = "60/minute"
    max_keys: int = 100_000
    key_prefix: str = "bastion-rl"

    def limit_for(self, role: str) -> str:
        return self.per_role.get(role, self.default)

    def rows_for(self, role: str) -> str:
        return self.rows_per_role.get(role, self.default_rows)

    def specs(self) -> list[str]:
        return [
            *self.per_role.values(),
            *self.rows_per_role.values(),
            self.default,
            self.default_rows,
            self.throttled,
            self.throttled_rows,
            self.per_address,
            self.auth_failures,
        ]


@dataclass(frozen=True)
class MonitorConfig:
    """Extraction monitor: PRADA (Shapiro-Wilk over nearest distances) plus an input-coverage monitor."""

    enabled: bool = True
    action: str = "label-only"
    delta: float = 0.90
    min_queries: int = 50
    history: int = 512
    distance_window: int = 256
    coverage_threshold: float = 0.90
    coverage_window: int = 128
    coverage_bits: int = 6
    key_prefix: str = "bastion-mon"


@dataclass(frozen=True)
class InputGuardConfig:
    """Request-size, shape, dtype and value-range checks; feature squeezing is optional."""

    max_body_bytes: int = 1 << 20
    max_he_body_bytes: int = 64 << 20
    max_batch: int = 256
    min_value: float | None = 0.0
    max_value: float | None = 1.0
    feature_squeezing: bool = False
    squeeze_bits: int = 3
    squeeze_median: int = 0
    squeeze_threshold: float = 0.5


@dataclass(frozen=True)
class OutputRule:
    mode: str = "top-k"
    top_k: int = 3
    decimals: int | None = 3
    redact_pii: bool | None = None  # PII in text outputs; None: [serve.output_policy] redact_pii


@dataclass(frozen=True)
class TextConfig:
    """Text models: PII in inputs is redacted (default), rejected (400) or let through; size per text."""

    input_pii: str = "redact"
    max_chars: int = 10_000


DEFAULT_OUTPUT_RULES: Mapping[str, OutputRule] = {
    "consumer": OutputRule(mode="top-k", top_k=3, decimals=3),
    "admin": OutputRule(mode="probabilities", top_k=0, decimals=None),
    "auditor": OutputRule(mode="label", top_k=0, decimals=None),
}


@dataclass(frozen=True)
class OutputPolicyConfig:
    per_role: Mapping[str, OutputRule] = field(default_factory=lambda: dict(DEFAULT_OUTPUT_RULES))
    default: OutputRule = field(default_factory=lambda: OutputRule(mode="label", top_k=0, decimals=None))
    redact_pii: bool = True

    def rule_for(self, role: str) -> OutputRule:
        return self.per_role.get(role, self.default)

    def redacts(self, rule: OutputRule) -> bool:
        return self.redact_pii if rule.redact_pii is None else bool(rule.redact_pii)


@dataclass(frozen=True)
class JwtConfig:
    """Optional JWT bearer tokens (ES256/RS256), verified against a public key file."""

    public_key_file: str | None = None
    issuer: str | None = None
    audience: str | None = None
    algorithms: tuple[str, ...] = ("ES256", "RS256")
    role_claim: str = "role"
    models_claim: str = "models"
    leeway_s: int = 0

    @property
    def enabled(self) -> bool:
        return self.public_key_file is not None


@dataclass(frozen=True)
class KeyReleaseConfig:
    """What the key-release policy demands of the attestation evidence."""

    evidence_formats: tuple[str, ...] = ("bastion-software-v1",)
    allowed_package_versions: tuple[str, ...] = ()
    max_evidence_age_s: int = 60


@dataclass(frozen=True)
class ApiWatermarkConfig:
    """DAWN-style API watermark (``bastion.watermark.api``): ``key`` is a key id of the home or a key file."""

    enabled: bool = False
    key: str | None = None
    rate: float = 0.004
    marks_file: str | None = None


@dataclass(frozen=True)
class TheftConfig:
    """Model-theft defence (``bastion.serve.theft``): ``key`` names a watermark key (a home key id or a key
    file) whose HKDF sub-keys are the detector's secret and the per-consumer API watermark; ``reference`` is
    an ``.npz`` file with the training rows ``x`` and labels ``y`` the detector compares queries with;
    ``daily_rows`` is every identity's row budget per UTC day; ``block_score`` (0: never) refuses service
    to a consumer whose suspicion score reaches it."""

    enabled: bool = False
    key: str | None = None
    reference: str | None = None
    daily_rows: int = 50_000
    block_score: float = 0.0


@dataclass(frozen=True)
class ConnectionsConfig:
    """Slow-client defences: a request's headers and body must arrive within these times (else 408 and
    the connection is closed), at most ``max_per_address`` open connections per client address and
    ``max_total`` in all (more are closed at once); idle keep-alive connections close after
    ``keep_alive_s``. ``trusted_proxies`` (IP addresses or CIDR ranges, default none): only connections
    from these may set the client address with ``X-Forwarded-For``; with none (the default) the header is
    ignored and the TCP peer is the client address for every per-address limit."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_per_address: int = 64
    max_total: int = 2048
    keep_alive_s: float = 5.0
    trusted_proxies: tuple[str, ...] = ()


AUDIT_ON_FAILURE: tuple[str, ...] = ("refuse", "count")


@dataclass(frozen=True)
class AuditConfig:
    """Request audit records. ``on_failure = "refuse"`` (default, fail closed): when the audit trail cannot
    take a record within ``block_s`` (queue of ``max_queue`` full, or the last write failed and has not
    recovered) the request is refused with 503 before the model runs. ``"count"``: serve anyway, count every
    record that could not be written (``bastion_gateway_audit_dropped_total``) and log an error."""

    on_failure: str = "refuse"
    max_queue: int = 10_000
    block_s: float = 2.0
    failure_sample: int = 20


@dataclass(frozen=True)
class DriftSettings:
    """Live behaviour monitoring (:mod:`bastion.serve.drift`), off by default. ``reference``: an ``.npz``
    file with the training inputs (array ``x``); empty: the built-in dataset the model's registry metadata
    records (``bastion train --dataset`` writes it). Enabled with neither: the gateway refuses to start."""

    enabled: bool = False
    reference: str = ""
    window: int = 1000
    min_samples: int = 200
    check_every: int = 50
    feature_psi_alert: float = 0.25
    prediction_psi_alert: float = 0.25
    confidence_drop_alert: float = 0.15


@dataclass(frozen=True)
class GatewayConfig:
    """Everything the gateway needs besides the model and the identity store."""

    rate_limit: RateLimitConfig = field(default_factory=RateLimitConfig)
    redis_url: str | None = None
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    input_guard: InputGuardConfig = field(default_factory=InputGuardConfig)
    output_policy: OutputPolicyConfig = field(default_factory=OutputPolicyConfig)
    jwt: JwtConfig = field(default_factory=JwtConfig)
    key_release: KeyReleaseConfig = field(default_factory=KeyReleaseConfig)
    api_watermark: ApiWatermarkConfig = field(default_factory=ApiWatermarkConfig)
    theft: TheftConfig = field(default_factory=TheftConfig)
    text: TextConfig = field(default_factory=TextConfig)
    connections: ConnectionsConfig = field(default_factory=ConnectionsConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    drift: DriftSettings = field(default_factory=DriftSettings)
    token_cache_s: float = 30.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def digest(self, files: Mapping[str, str] | None = None) -> str:
        """SHA-256 of the canonical JSON form: the ``config_digest`` claim of the attestation evidence.
        ``files``: the fingerprints of the trust files it names (:mod:`bastion.serve.trust`), bound too."""
        doc: Any = self.to_dict()
        if files:
            doc = {"config": doc, "files": dict(files)}
        blob = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=list).encode()
        return hashlib.sha256(blob).hexdigest()


_SECTION_KEYS = frozenset(
    {
        "host",
        "port",
        "rate_limit",
        "redis_url",
        "output_policy",
        "monitor",
        "input_guard",
        "key_release",
        "jwt",
        "api_watermark",
        "theft",
        "text",
        "connections",
        "audit",
        "drift",
    }
)


def _build(cls: type, table: Any, where: str) -> Any:
    if not isinstance(table, Mapping):
        raise ConfigError(f"[serve.{where}] must be a table")
    names = {f.name: f for f in fields(cls)}
    unknown = sorted(set(table) - set(names))
    if unknown:
        raise ConfigError(f"unknown key(s) in [serve.{where}]: {', '.join(unknown)}")
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        kwargs[key] = tuple(value) if isinstance(value, list) else value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"[serve.{where}]: {exc}") from exc


def _rate_limit(table: Any) -> RateLimitConfig:
    from limits import parse

    if not isinstance(table, Mapping):
        raise ConfigError("[serve.rate_limit] must be a table")
    base = RateLimitConfig()
    per_role = dict(base.per_role)
    per_role.update(table.get("per_role", {}))
    rows_per_role = dict(base.rows_per_role)
    rows_per_role.update(table.get("rows_per_role", {}))
    extra = {k: v for k, v in table.items() if k not in ("per_role", "rows_per_role")}
    cfg = _build(
        RateLimitConfig, {**extra, "per_role": per_role, "rows_per_role": rows_per_role}, "rate_limit"
    )
    for spec in cfg.specs():
        try:
            parse(str(spec))
        except ValueError as exc:
            raise ConfigError(f"[serve.rate_limit]: not a rate limit: {spec!r}") from exc
    if not isinstance(cfg.max_keys, int) or cfg.max_keys < 1000:
        raise ConfigError("[serve.rate_limit] max_keys must be an integer >= 1000")
    return cfg


def _output_policy(table: Any) -> OutputPolicyConfig:
    if not isinstance(table, Mapping):
        raise ConfigError("[serve.output_policy] must be a table")
    unknown = sorted(set(table) - {"per_role", "default", "redact_pii"})
    if unknown:
        raise ConfigError(f"unknown key(s) in [serve.output_policy]: {', '.join(unknown)}")
    rules = dict(DEFAULT_OUTPUT_RULES)
    for role, rule in table.get("per_role", {}).items():
        rules[role] = _build(OutputRule, rule, f"output_policy.per_role.{role}")
    default = _build(OutputRule, table["default"], "output_policy.default") if "default" in table else None
    cfg = OutputPolicyConfig(
        per_role=rules,
        default=default or OutputPolicyConfig().default,
        redact_pii=bool(table.get("redact_pii", True)),
    )
    for rule in [*cfg.per_role.values(), cfg.default]:
        if rule.mode not in OUTPUT_MODES:
            raise ConfigError(f"[serve.output_policy]: mode must be one of {', '.join(OUTPUT_MODES)}")
    return cfg


def config_from_mapping(data: Mapping[str, Any]) -> GatewayConfig:
    """A GatewayConfig from the ``[serve]`` table; ``host``/``port`` belong to the CLI and are skipped."""
    unknown = sorted(set(data) - _SECTION_KEYS)
    if unknown:
        raise ConfigError(f"unknown key(s) in [serve]: {', '.join(unknown)}")
    kwargs: dict[str, Any] = {}
    if "rate_limit" in data:
        kwargs["rate_limit"] = _rate_limit(data["rate_limit"])
    if "redis_url" in data:
        kwargs["redis_url"] = str(data["redis_url"]) if data["redis_url"] else None
    if "monitor" in data:
        kwargs["monitor"] = _build(MonitorConfig, data["monitor"], "monitor")
    if "input_guard" in data:
        kwargs["input_guard"] = _build(InputGuardConfig, data["input_guard"], "input_guard")
    if "output_policy" in data:
        kwargs["output_policy"] = _output_policy(data["output_policy"])
    if "jwt" in data:
        kwargs["jwt"] = _build(JwtConfig, data["jwt"], "jwt")
    if "key_release" in data:
        kwargs["key_release"] = _build(KeyReleaseConfig, data["key_release"], "key_release")
    if "api_watermark" in data:
        kwargs["api_watermark"] = _build(ApiWatermarkConfig, data["api_watermark"], "api_watermark")
    if "theft" in data:
        kwargs["theft"] = _build(TheftConfig, data["theft"], "theft")
    if "text" in data:
        kwargs["text"] = _build(TextConfig, data["text"], "text")
    if "connections" in data:
        kwargs["connections"] = _build(ConnectionsConfig, data["connections"], "connections")
    if "audit" in data:
        kwargs["audit"] = _build(AuditConfig, data["audit"], "audit")
    if "drift" in data:
        kwargs["drift"] = _build(DriftSettings, data["drift"], "drift")
    cfg = GatewayConfig(**kwargs)
    validate(cfg)
    return cfg


def validate(cfg: GatewayConfig) -> None:
    """Reject settings that would leave a protection silently off or broken (fail closed)."""
    mon = cfg.monitor
    if mon.action not in MONITOR_ACTIONS:
        raise ConfigError(f"[serve.monitor] action must be one of {', '.join(MONITOR_ACTIONS)}")
    if not 0.0 < mon.delta < 1.0 or not 0.0 < mon.coverage_threshold <= 1.5:
        raise ConfigError("[serve.monitor] delta must lie in (0, 1) and coverage_threshold in (0, 1.5]")
    if mon.min_queries < 8 or mon.history < mon.min_queries or mon.distance_window < mon.min_queries:
        raise ConfigError(
            "[serve.monitor] need 8 <= min_queries <= history and min_queries <= distance_window"
        )
    if not 1 <= mon.coverage_bits <= 12 or mon.coverage_window < 8:
        raise ConfigError("[serve.monitor] coverage_bits must lie in 1..12 and coverage_window >= 8")
    guard = cfg.input_guard
    if guard.max_body_bytes < 1024 or guard.max_batch < 1:
        raise ConfigError("[serve.input_guard] max_body_bytes must be >= 1024 and max_batch >= 1")
    if guard.min_value is not None and guard.max_value is not None and guard.min_value >= guard.max_value:
        raise ConfigError("[serve.input_guard] min_value must be below max_value")
    if cfg.jwt.enabled and (not cfg.jwt.issuer or not cfg.jwt.audience):
        raise ConfigError(
            "[serve.jwt] needs issuer and audience (tokens issued for other services are refused)"
        )
    for alg in cfg.jwt.algorithms:
        if alg not in ("ES256", "RS256"):
            raise ConfigError("[serve.jwt] algorithms may only be ES256 and RS256")
    if cfg.key_release.max_evidence_age_s <= 0 or not cfg.key_release.evidence_formats:
        raise ConfigError("[serve.key_release] needs evidence_formats and a positive max_evidence_age_s")
    if cfg.theft.enabled and not (cfg.theft.key and cfg.theft.reference):
        raise ConfigError(
            "[serve.theft] is enabled: it needs a key (watermark key id or file) and a reference"
        )
    if cfg.theft.daily_rows < 1 or cfg.theft.block_score < 0:
        raise ConfigError("[serve.theft] daily_rows must be >= 1 and block_score >= 0")
    if cfg.api_watermark.enabled and not 0.0 < cfg.api_watermark.rate <= 0.005:
        raise ConfigError("[serve.api_watermark] rate must lie in (0, 0.005]")
    if cfg.text.input_pii not in INPUT_PII_ACTIONS or not 1 <= cfg.text.max_chars <= 1_000_000:
        raise ConfigError(
            f"[serve.text] input_pii must be one of {', '.join(INPUT_PII_ACTIONS)}; max_chars in 1..1000000"
        )
    conn = cfg.connections
    if not (0 < conn.header_timeout_s <= 300 and 0 < conn.body_timeout_s <= 3600 and conn.keep_alive_s > 0):
        raise ConfigError("[serve.connections] timeouts must be positive (header <= 300 s, body <= 3600 s)")
    if not 1 <= conn.max_per_address <= conn.max_total:
        raise ConfigError("[serve.connections] need 1 <= max_per_address <= max_total")
    _check_proxies(conn.trusted_proxies)
    audit = cfg.audit
    if audit.on_failure not in AUDIT_ON_FAILURE:
        raise ConfigError(f"[serve.audit] on_failure must be one of {', '.join(AUDIT_ON_FAILURE)}")
    if audit.max_queue < 1 or not 0 <= audit.block_s <= 60 or audit.failure_sample < 0:
        raise ConfigError("[serve.audit] needs max_queue >= 1, block_s in 0..60, failure_sample >= 0")
    _check_drift(cfg.drift)
    if cfg.token_cache_s < 0 or cfg.token_cache_s > 300:
        raise ConfigError("token cache lifetime must lie in 0..300 s")


def _check_proxies(proxies: Any) -> None:
    import ipaddress

    if not isinstance(proxies, tuple):
        raise ConfigError("[serve.connections] trusted_proxies must be a list of IP addresses or networks")
    for entry in proxies:
        try:
            if not isinstance(entry, str) or entry.strip() in ("", "*"):
                raise ValueError(entry)
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ConfigError(
                "[serve.connections] trusted_proxies must be a list of IP addresses or networks (no '*')"
            ) from None


def _check_drift(drift: DriftSettings) -> None:
    from bastion.errors import InvalidInput
    from bastion.serve.drift import DriftConfig

    if not isinstance(drift.enabled, bool) or not isinstance(drift.reference, str):
        raise ConfigError("[serve.drift] enabled must be true or false and reference a file path")
    for name in ("window", "min_samples", "check_every"):
        if not isinstance(getattr(drift, name), int) or isinstance(getattr(drift, name), bool):
            raise ConfigError(f"[serve.drift] {name} must be an integer")
    try:
        DriftConfig(
            window=drift.window,
            min_samples=drift.min_samples,
            feature_psi_alert=drift.feature_psi_alert,
            prediction_psi_alert=drift.prediction_psi_alert,
            confidence_drop_alert=drift.confidence_drop_alert,
            check_every=drift.check_every,
        )
    except InvalidInput as exc:
        raise ConfigError(f"[serve.drift] {str(exc).removeprefix('drift: ')}") from None


def load_gateway_config(
    *, section: Mapping[str, Any] | None = None, config_file: str | Path | None = None
) -> GatewayConfig:
    """Merge bastion.toml's ``[serve]`` with a ``--config`` TOML file (whose ``[serve]`` wins key by key)."""
    merged: dict[str, Any] = dict(section or {})
    if config_file is not None:
        path = Path(config_file)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read gateway config {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
        extra = sorted(set(data) - {"serve"})
        if extra:
            raise ConfigError(f"{path}: unknown section(s): {', '.join(extra)} (expected [serve])")
        merged = _merge(merged, data.get("serve", {}))
    return config_from_mapping(merged)


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


__all__ = [
    "AUDIT_ON_FAILURE",
    "INPUT_PII_ACTIONS",
    "MONITOR_ACTIONS",
    "OUTPUT_MODES",
    "ApiWatermarkConfig",
    "AuditConfig",
    "ConnectionsConfig",
    "DriftSettings",
    "GatewayConfig",
    "InputGuardConfig",
    "JwtConfig",
    "KeyReleaseConfig",
    "MonitorConfig",
    "OutputPolicyConfig",
    "OutputRule",
    "RateLimitConfig",
    "TextConfig",
    "TheftConfig",
    "config_from_mapping",
    "load_gateway_config",
    "validate",
]
