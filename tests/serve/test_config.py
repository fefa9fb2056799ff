from __future__ import annotations

from pathlib import Path

import pytest

from bastion.config import validate_config
from bastion.errors import ConfigError
from bastion.serve.config import GatewayConfig, config_from_mapping, load_gateway_config


def test_defaults_are_safe() -> None:
    cfg = GatewayConfig()
    assert cfg.rate_limit.limit_for("consumer") == "100/minute"
    assert cfg.output_policy.rule_for("consumer").mode == "top-k"
    assert cfg.output_policy.rule_for("unknown-role").mode == "label"
    assert cfg.monitor.enabled and cfg.monitor.action == "label-only"
    assert cfg.input_guard.max_body_bytes > 0
    assert len(cfg.digest()) == 64


@pytest.mark.parametrize(
    "table",
    [
        {"nope": 1},
        {"monitor": {"delta": 0.9, "typo": 1}},
        {"monitor": {"action": "shrug"}},
        {"monitor": {"delta": 1.5}},
        {"rate_limit": {"per_role": {"consumer": "lots"}}},
        {"output_policy": {"per_role": {"consumer": {"mode": "everything"}}}},
        {"jwt": {"algorithms": ["HS256"]}},
        {"key_release": {"evidence_formats": []}},
        {"input_guard": {"min_value": 2.0, "max_value": 1.0}},
        {"text": {"input_pii": "ignore"}},
        {"text": {"max_chars": 0}},
        {"theft": {"deployment_eps": 1.0}},
        {"theft": {"deployment_eps": -0.1}},
        {"theft": {"watermark_eps": 0}},
        {"theft": {"watermark_eps": "strong"}},
        {"theft": {"deployment_eps": True}},
    ],
)
def test_unknown_or_unsafe_settings_raise(table: dict) -> None:
    with pytest.raises(ConfigError):
        config_from_mapping(table)


def test_config_file_overrides_home_section(tmp_path: Path) -> None:
    path = tmp_path / "gw.toml"
    path.write_text(
        '[serve.rate_limit.per_role]\nconsumer = "5/second"\n[serve.monitor]\naction = "block"\n',
        encoding="utf-8",
    )
    cfg = load_gateway_config(section={"monitor": {"action": "alert", "delta": 0.85}}, config_file=path)
    assert cfg.monitor.action == "block"
    assert cfg.monitor.delta == 0.85
    assert cfg.rate_limit.limit_for("consumer") == "5/second"
    assert cfg.rate_limit.limit_for("admin") == "6000/minute"
    other = tmp_path / "bad.toml"
    other.write_text("[keys]\nprovider = 'local'\n", encoding="utf-8")
    with pytest.raises(ConfigError):
        load_gateway_config(config_file=other)


def test_serve_keys_are_known_to_the_project_config() -> None:
    """The gateway and the project config agree on the [serve] keys, both ways: a key one accepts and the
    other rejects would make a valid bastion.toml unloadable (or a typo silently accepted)."""
    from bastion.config import KNOWN_SECTIONS
    from bastion.serve.config import _SECTION_KEYS

    assert set(KNOWN_SECTIONS["serve"]) == set(_SECTION_KEYS)
    validate_config({"serve": {"monitor": {"action": "block"}, "redis_url": "redis://x"}})
    cfg = config_from_mapping({"monitor": {"action": "block"}, "redis_url": "redis://x", "port": 1})
    assert cfg.monitor.action == "block" and cfg.redis_url == "redis://x"
    with pytest.raises(ConfigError, match="unknown key"):
        validate_config({"serve": {"monitr": {}}})
    with pytest.raises(ConfigError, match="unknown key"):
        config_from_mapping({"monitr": {}})


def test_watermark_amplitudes_are_settings() -> None:
    cfg = config_from_mapping({"theft": {"watermark_eps": 0.1, "deployment_eps": 0}})
    assert (cfg.theft.watermark_eps, cfg.theft.deployment_eps) == (0.1, 0)
    default = config_from_mapping({})
    assert (default.theft.watermark_eps, default.theft.deployment_eps) == (0.25, 0.2)
