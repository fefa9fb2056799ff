"""The gateway's settings as frozen dataclasses, one per ``[serve.*]`` table of bastion.toml, with their safe
defaults (parsed and validated by :mod:`bastion.serve.config`, which re-exports every name here)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

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
    ``daily_rows`` is every identity's row budget per trailing 24 hours; ``block_score`` (0: never) refuses
    service to a consumer whose suspicion score reaches it; ``address_rows`` (0: none) is the row budget per
    trailing 24 hours of all identities behind one client address together. ``watermark_eps`` (0-1, default
    0.25) and ``deployment_eps`` (0-1, default 0.2; 0 turns it off) are the amplitudes of the per-consumer and
    the deployment-wide watermark waves added to each answer's probabilities (top-1 answers never change):
    lower them where clients need calibrated probabilities, at the price of weaker attribution (evidence
    files record both)."""

    enabled: bool = False
    key: str | None = None
    reference: str | None = None
    daily_rows: int = 50_000
    block_score: float = 0.0
    address_rows: int = 0
    watermark_eps: float = 0.25
    deployment_eps: float = 0.2


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
