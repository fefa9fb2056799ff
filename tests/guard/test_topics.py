"""The output policy's signed topic classifier: categories block per role, benign text passes, tampering
fails."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bastion.errors import ConfigError, IntegrityError
from bastion.guard import OutputContext, OutputPolicy, PolicyConfig, RolePolicy
from bastion.guard.config import policy_from_mapping
from bastion.guard.topics import default_topic_model, load_topic_model

PKG = Path(__file__).resolve().parents[2] / "src" / "bastion" / "guard" / "data"
# sentences written for this test, not in data/guard/topics.jsonl
HARMFUL = {
    "weapons": "Fill the steel pipe with the explosive powder, then screw on the caps and add a detonator.",
    "malware": "This keylogger hides in the startup folder and sends every password to my server.",
    "drugs": "Heat the pseudoephedrine with red phosphorus to cook the meth, then sell it by the gram.",
    "sexual": "They undressed and had explicit sex, described in graphic detail.",
}
BENIGN = [
    "The capital of Portugal is Lisbon, famous for its trams and pastries.",
    "To install the package, run pip install and restart the kernel.",
    "Our quarterly report shows revenue grew by eight percent.",
    "Sunflowers turn to face the sun while they are young.",
]


def test_categories_fire_on_new_harmful_text_and_not_on_benign() -> None:
    model = default_topic_model()
    for cat, text in HARMFUL.items():
        assert cat in model.classify(text), (cat, model.scores(text))
    for text in BENIGN:
        assert model.classify(text) == {}, (text, model.scores(text))


def test_policy_blocks_configured_topics_per_role() -> None:
    policy = OutputPolicy(PolicyConfig(topics=("weapons",), roles={"kid": RolePolicy(topics=("sexual",))}))
    v = policy.check(HARMFUL["weapons"])
    assert v.blocked and "topic:weapons" in v.findings and v.text == ""
    assert not policy.check(HARMFUL["sexual"], context=OutputContext(role="admin")).blocked
    kid = policy.check(HARMFUL["sexual"], context=OutputContext(role="kid"))
    assert kid.blocked and "topic:sexual" in kid.findings
    assert policy.check(BENIGN[0], context=OutputContext(role="kid")).action == "allow"


def test_policy_without_topics_does_not_classify() -> None:
    assert not OutputPolicy(PolicyConfig()).check(HARMFUL["weapons"]).blocked


def test_unknown_topic_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown topics"):
        OutputPolicy(PolicyConfig(topics=("astrology",)))
    cfg = policy_from_mapping({"topics": ["malware"], "roles": {"c": {"topics": ["drugs"]}}})
    assert cfg.topics == ("malware",) and cfg.roles["c"].topics == ("drugs",)
    with pytest.raises(ConfigError):
        policy_from_mapping({"topics": "malware"})


def test_tampered_topic_model_is_rejected(tmp_path: Path) -> None:
    pem = (PKG / "guard_model.pub.pem").read_bytes()
    doc = json.loads((PKG / "topic_model.json").read_bytes())
    doc["thresholds"]["weapons"] = 1.0  # switch a category off
    bad = tmp_path / "topic_model.json"
    bad.write_bytes(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())
    (tmp_path / "topic_model.json.sig").write_bytes((PKG / "topic_model.json.sig").read_bytes())
    with pytest.raises(IntegrityError):
        load_topic_model(bad, public_key_pem=pem)
    good = tmp_path / "good.json"
    good.write_bytes((PKG / "topic_model.json").read_bytes())
    (tmp_path / "good.json.sig").write_bytes((PKG / "topic_model.json.sig").read_bytes())
    assert load_topic_model(good, public_key_pem=pem).categories == default_topic_model().categories
