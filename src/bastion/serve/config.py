"""Gateway settings: one frozen object from ``[serve]`` in bastion.toml and an optional ``--config`` file.

Unknown keys raise :class:`~bastion.errors.ConfigError`; every field has a safe default, so a gateway with no
configuration at all authenticates, rate-limits consumers at 100 requests per minute, runs the extraction
monitor and answers consumers with rounded top-k probabilities. The tables themselves (frozen dataclasses and
their defaults) live in :mod:`bastion.serve._config_tables`; this module parses, validates and loads them.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from bastion.config import KNOWN_SECTIONS
from bastion.errors import ConfigError
from bastion.serve._config_tables import (
    AUDIT_ON_FAILURE,
    DEFAULT_OUTPUT_RULES,
    DEFAULT_RATE_LIMITS,
    DEFAULT_ROW_LIMITS,
    INPUT_PII_ACTIONS,
    MONITOR_ACTIONS,
    OUTPUT_MODES,
    ApiWatermarkConfig,
    AuditConfig,
    ConnectionsConfig,
    DriftSettings,
    GatewayConfig,
    InputGuardConfig,
    JwtConfig,
    KeyReleaseConfig,
    MonitorConfig,
    OutputPolicyConfig,
    OutputRule,
    RateLimitConfig,
    TextConfig,
    TheftConfig,
)

__all__ = [
    "AUDIT_ON_FAILURE",
    "DEFAULT_OUTPUT_RULES",
    "DEFAULT_RATE_LIMITS",
    "DEFAULT_ROW_LIMITS",
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


_SECTION_KEYS = KNOWN_SECTIONS["serve"]  # one list of [serve] keys: bastion.config's


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
    if cfg.theft.daily_rows < 1 or cfg.theft.block_score < 0 or cfg.theft.address_rows < 0:
        raise ConfigError("[serve.theft] daily_rows must be >= 1, block_score and address_rows >= 0")
    amps = (cfg.theft.watermark_eps, cfg.theft.deployment_eps)
    if any(isinstance(a, bool) or not isinstance(a, int | float) for a in amps) or not (
        0 < amps[0] < 1 and 0 <= amps[1] < 1
    ):
        raise ConfigError("[serve.theft] watermark_eps must be in (0, 1) and deployment_eps in [0, 1)")
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
