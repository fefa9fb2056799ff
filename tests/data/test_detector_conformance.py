"""The detector contract (``bastion.data.detectors.interface``), run over every registered family."""

from __future__ import annotations

import random
import re
import time

import pytest

from bastion.data import entities as E
from bastion.data.detectors import (
    Detector,
    DetectorFamily,
    Family,
    all_detectors,
    detect_text,
    detect_values,
    families,
    register,
    unregister,
)

FAMILIES = {f.name: f for f in families()}
# A 50,000-character cell is scanned well under a second by linear patterns; catastrophic backtracking
# (quadratic or worse) takes minutes at that size. The ceiling only catches the latter.
ADVERSARIAL_CHARS = 50_000
CEILING_S = 10.0
SENSITIVE = E.PII_ENTITIES | E.SECRET_ENTITIES | E.PRESIDIO_PII_ENTITIES


def _runnable(fam: DetectorFamily) -> tuple[Detector, ...]:
    dets = fam.detectors()
    if not dets:
        pytest.skip(f"{fam.name}: optional dependency not installed")
    return dets


def _covered(spans, text: str, value: str, entities: frozenset[str]) -> bool:
    start = text.index(value)
    end = start + len(value)
    return any(s.entity in entities and s.start <= start and s.end >= end for s in spans)


def test_every_family_has_examples() -> None:
    assert len(FAMILIES) >= 12
    for fam in FAMILIES.values():
        assert isinstance(fam, DetectorFamily)
        assert fam.positives and fam.negatives, fam.name
        assert fam.entities, fam.name


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_positives_found_by_own_detectors(name: str) -> None:
    fam = FAMILIES[name]
    dets = _runnable(fam)
    for text, value in fam.positives:
        spans = detect_text(text, detectors=dets)
        assert _covered(spans, text, value, fam.entities), (name, text, spans)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_positives_survive_all_detectors(name: str) -> None:
    """With every family running, a family's positives are still covered by a sensitive entity (another
    family may win the overlap: an NHS number in a UK phone layout is protected as a phone)."""
    fam = FAMILIES[name]
    _runnable(fam)
    for text, value in fam.positives:
        spans = detect_text(text)
        assert _covered(spans, text, value, SENSITIVE | fam.entities), (name, text, spans)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_negatives_not_reported(name: str) -> None:
    fam = FAMILIES[name]
    dets = _runnable(fam)
    for text in fam.negatives:
        spans = detect_text(text, detectors=dets)
        assert not [s for s in spans if s.entity in fam.entities], (name, text, spans)


def _garbage(seed: int) -> list[str]:
    rng = random.Random(seed)
    out = [
        "",
        "\x00",
        "\x00\x00abc\x00",
        "\ud800\udfff lone surrogates \udc00",
        "".join(chr(rng.randrange(0, 0x2FFFF)) for _ in range(2_000)).replace("\x00", ""),
        "".join(chr(rng.randrange(32, 127)) for _ in range(5_000)),
        "Ünïcödé 名前 이름 اسم שם नाम ชื่อ Имя Όνομα \u200b\u200d\ufeff",
        "\r\n\t\x0b\x0c" * 100,
        "9" * 200_000,
    ]
    return out


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_garbage_raises_nothing(name: str) -> None:
    dets = _runnable(FAMILIES[name])
    for text in _garbage(7):
        for s in detect_text(text, detectors=dets):
            assert 0 <= s.start < s.end <= len(text)
        hits = detect_values(text.split("\x00")[:50] or [""], detectors=dets)
        assert hits.n_values >= 1


def _adversarial(fam: DetectorFamily, n: int) -> list[str]:
    """Long runs of the characters the family's patterns (and its examples) repeat."""
    seeds = {"1 ", "1-", "1.", "Aa ", "A", "a@", "a.", "1:", "a:", "Mr ", "AB12 ", "O'", "-A", "Aa-", " 1"}
    for text, value in FAMILIES[fam.name].positives:
        seeds.add(value[:6])
        seeds.add(text[:4])
    out = []
    for unit in sorted(seeds):
        if unit:
            out.append((unit * (n // len(unit) + 1))[:n])
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_scanning_time_is_bounded(name: str) -> None:
    fam = FAMILIES[name]
    dets = _runnable(fam)
    for text in _adversarial(fam, ADVERSARIAL_CHARS):
        t0 = time.process_time()
        detect_text(text, detectors=dets)
        assert time.process_time() - t0 < CEILING_S, (name, text[:20])


def test_registry_plugs_in_a_new_family() -> None:
    fam = Family(
        name="acme_ids",
        entities=frozenset({"ACME_ID"}),
        members=(Detector("ACME_ID", re.compile(r"ACME-\d{4}-[A-Z]"), 0.9),),
        positives=(("id ACME-1234-X", "ACME-1234-X"),),
        negatives=("ACME rocks",),
    )
    register(fam)
    try:
        assert fam.members[0] in all_detectors()
        spans = detect_text("customer id ACME-1234-X")
        assert [(s.entity, s.start) for s in spans] == [("ACME_ID", 12)]
        with pytest.raises(ValueError):
            register(fam)
    finally:
        unregister("acme_ids")
    assert fam.members[0] not in all_detectors()
    with pytest.raises(TypeError):
        register(object())  # type: ignore[arg-type]


def test_old_import_paths_still_work() -> None:
    from bastion.data.detectors import (  # noqa: F401 - the names exported before the split
        DETECTORS,
        SEP,
        ColumnHits,
        EntityHits,
        Span,
        column_hints,
        date_valid,
        iban_valid,
        looks_like_names,
        masked_shape,
        name_lists,
        resolve_overlaps,
        ssn_valid,
    )

    assert E.EMAIL in {d.entity for d in DETECTORS}
    assert SEP == "\x00"


def test_combined_pass_equals_each_detector_alone() -> None:
    """The engine's combined first-character pass (``_combine``) finds exactly what each detector finds
    alone, on the evaluation corpus, on generated rows and on digit/letter/separator soup."""
    import csv
    from pathlib import Path

    from bastion.data.detectors._combine import plan
    from bastion.data.detectors.engine import run_all, run_detector
    from bastion.data.synth import generate_table

    dets = all_detectors()
    groups, _ = plan(dets)
    assert sum(len(g.members) for g in groups) >= 8  # the identifier patterns are combined
    corpus = Path(__file__).parent / "corpus" / "customers.csv"
    with corpus.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    texts = ["\x00".join(r[j] for r in rows[1:]) for j in range(len(rows[0]))]
    table = generate_table(rows=400, seed=3)
    texts += ["\x00".join(str(r[j]) for r in table.rows) for j in range(len(table.rows[0]))]
    rng = random.Random(5)
    soup = "0123456789 .-/()+ABCDEFXYZabcxyz:,"
    texts.append(
        "\x00".join("".join(rng.choice(soup) for _ in range(rng.randrange(5, 60))) for _ in range(2000))
    )
    for text in texts:
        alone = []
        for det in dets:
            found: list = []
            run_detector(det, text, found)
            alone.append(found)
        assert run_all(dets, text) == alone
