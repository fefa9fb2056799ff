"""Issue 21 F4: passwords and tokens written in sentences are secrets (the value after the keyword and a verb
or a colon), while sentences that only talk about passwords are left alone."""

from __future__ import annotations

import random
import string
from pathlib import Path

import pytest

from bastion.data import ScopeKeys, protect_file
from bastion.data.detectors import all_detectors, detect_text

KEYS = ScopeKeys(bytes(range(32)), scope="prose")
TEMPLATES = (
    "Per ticket, the admin password was reset to {} by the on-call engineer.",
    "token for the sandbox integration is {} do not share this outside the team",
    "New passcode: {} (expires Friday)",
    "Das Passwort ist {} und gilt ab sofort.",
    "le mot de passe est {}, merci de le changer",
    "FYI the API key for staging = {}",
)
NEGATIVES = (
    "the password was reset to the default by the helpdesk",
    "Please rotate your token every 90 days, see the wiki.",
    "The token expired at 10:30 yesterday",
    "customer forgot her password again, sent a reset link",
)


def _secret(rnd: random.Random) -> str:
    body = "".join(rnd.choice(string.ascii_letters) for _ in range(rnd.randint(5, 10)))
    return body + rnd.choice("!#&%$") + str(rnd.randint(1, 999))


@pytest.fixture(scope="module")
def dets():
    return all_detectors(use_presidio=False)


@pytest.mark.parametrize("template", TEMPLATES)
def test_secret_after_keyword_in_prose(dets, template: str) -> None:
    rnd = random.Random(template)
    for _ in range(10):
        value = _secret(rnd)
        text = template.format(value)
        found = [text[s.start : s.end] for s in detect_text(text, detectors=dets) if s.entity == "SECRET"]
        assert value in found, (text, found)


@pytest.mark.parametrize("text", NEGATIVES)
def test_talk_about_passwords_is_not_a_secret(dets, text: str) -> None:
    assert not [s for s in detect_text(text, detectors=dets) if s.entity == "SECRET"]


def test_protect_removes_prose_secrets(tmp_path: Path) -> None:
    rnd = random.Random(1)
    values = [_secret(rnd) for _ in range(30)]
    notes = [TEMPLATES[i % len(TEMPLATES)].format(v) for i, v in enumerate(values)]
    src = tmp_path / "n.csv"
    src.write_text("notes\n" + "".join('"' + n.replace('"', '""') + '"\n' for n in notes), encoding="utf-8")
    protect_file(path=src, out=tmp_path / "o.csv", keys=KEYS, use_presidio=False)
    text = (tmp_path / "o.csv").read_text(encoding="utf-8")
    assert [v for v in values if v in text] == []
