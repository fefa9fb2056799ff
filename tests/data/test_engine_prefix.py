"""``prefix_friendly`` rewrites a leading ``X{n,m}`` as ``XX{n-1,m-1}``: the same matches, every detector."""

from __future__ import annotations

import csv
import random
import re
from pathlib import Path

import pytest

from bastion.data.detectors import SEP, all_detectors
from bastion.data.detectors.engine import prefix_friendly
from bastion.data.detectors.interface import Detector

CORPUS = Path(__file__).parent / "corpus" / "customers.csv"


def _texts() -> list[str]:
    with CORPUS.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    texts = [SEP.join(r[j] for r in rows[1:]) for j in range(len(rows[0]))]
    rng = random.Random(5)
    alphabet = "aZ09_+/=-:. \n@AKIAx1f-é٣"
    texts += ["".join(rng.choice(alphabet) for _ in range(400)) for _ in range(50)]
    texts += ["A" * 300, "9" * 300, "AB12" * 80, "ab:cd:ef:01:23:45 " * 5]
    return texts


def test_rewritten_detectors_find_the_same_spans() -> None:
    texts = _texts()
    rewritten = 0
    for det in all_detectors():
        fast = prefix_friendly(det)
        if fast is det:
            continue
        rewritten += 1
        assert fast.pattern.groupindex == det.pattern.groupindex and fast.pattern.groups == det.pattern.groups
        for t in texts:
            a = [(m.span(), m.groups()) for m in det.pattern.finditer(t)]
            b = [(m.span(), m.groups()) for m in fast.pattern.finditer(t)]
            assert a == b, (det.entity, det.pattern.pattern[:60])
    assert rewritten >= 2  # the generic secret and IBAN patterns at least


@pytest.mark.parametrize(
    ("pattern", "expect"),
    [
        (r"[A-Z]{2}\d", r"[A-Z][A-Z]{1}\d"),
        (r"\d{1,3}\.", r"\d\d{0,2}\."),
        (r"x{3,}", r"xx{2,}"),
        (r"\d{2,5}?", None),  # lazy: left alone
        (r"\d{0,2}", None),
        (r"(?:ab){2}", None),
        (r"a{5,2}", None),
    ],
)
def test_rewrite_shapes(pattern: str, expect: str | None) -> None:
    try:
        det = Detector("X", re.compile(pattern), 1.0)
    except re.error:
        return
    fast = prefix_friendly(det)
    assert (fast.pattern.pattern if fast is not det else None) == expect
