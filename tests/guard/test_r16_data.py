"""Round 16 (guard16y): ``data/guard/r16_multilingual.json`` and ``train_guard.py --user-alt --r14 K
--r16 K2`` (``scripts/_guard_r16.py``): the r16 train rows go into the second user head's training xK2 and
their benign val rows into its val pool; the held-out languages never reach training; ``--r16 0`` changes
nothing."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import _guard_r14_alt as r14
import _guard_r16 as r16
import _guard_user_alt as ua

FIELDS = {"text", "label", "lang", "kind", "group", "split"}
NAMED = ("ta", "el", "th", "ko", "bn", "ur", "hu", "ro", "sw", "he", "fa", "ja", "zh", "vi", "tl", "en")
MAIN_GLOBALS = ("R9_SEGMENT_MIN", "R9_BENIGN_SEGMENT_REPEAT", "OOF_DUMP", "OOF_TARGET_FPR", "R9_UNIT_WEIGHT")
MAIN_GLOBALS += ("R11H_REPEAT", "R12P_REPEAT", "R12E_REPEAT", "OOF_BASE")


def test_the_file_layout_matches_round_14s() -> None:
    import json

    items = json.loads(r16.FILE.read_text(encoding="utf-8"))
    assert len(items) >= 450
    assert all(set(it) == FIELDS for it in items)
    assert {it["label"] for it in items} == {0, 1}
    assert {it["split"] for it in items} == {"train", "val", "test"}
    assert len({it["group"] for it in items}) == len(items)
    assert len({it["text"] for it in items}) == len(items)
    labels = Counter(it["label"] for it in items)
    assert abs(labels[0] - labels[1]) <= 0.1 * len(items)  # about half attacks, half benign
    # the scripts the evaluators named are all there, both labels
    langs = Counter((it["lang"], it["label"]) for it in items)
    for lang in NAMED:
        assert langs[(lang, 1)] >= 10 and langs[(lang, 0)] >= 10, lang


def test_held_out_languages_are_test_only_and_the_others_use_every_split() -> None:
    rows = r16.r16_rows()
    assert all(r["split"] == "test" for r in rows if r["lang"] in r16.HELD_OUT)
    per = Counter((r["lang"], r["label"], r["split"]) for r in rows if r["lang"] not in r16.HELD_OUT)
    big = {(lang, label) for (lang, label, _), _n in per.items()}
    for lang, label in big:
        if sum(per[(lang, label, s)] for s in ("train", "val", "test")) >= 10:
            assert all(per[(lang, label, s)] for s in ("train", "val", "test")), (lang, label)
    assert all(r["set"] == r16.SET and r["channel"] == "user" for r in rows)


def test_the_flag_loads_train_rows_times_k_and_the_benign_val_pool() -> None:
    rows = r16.r16_rows()
    train = [r for r in rows if r["split"] == "train"]
    assert r16.user_train(0) == []
    got = r16.user_train(5)
    assert len(got) == 5 * len(train) and got[: len(train)] == train
    assert not {r["lang"] for r in got} & set(r16.HELD_OUT)
    held_test = {r["text"] for r in rows if r["split"] != "train"}
    assert not held_test & {r["text"] for r in got}
    pool = r16.user_pool()
    assert list(pool) == [r16.POOL]
    assert sorted(pool[r16.POOL]) == sorted(
        r["text"] for r in rows if r["split"] == "val" and r["label"] == 0
    )


@pytest.mark.parametrize("k", [0, 3])
def test_user_alt_takes_the_r16_rows_only_with_the_flag(monkeypatch: pytest.MonkeyPatch, k: int) -> None:
    seen: dict[str, Any] = {}
    base = {"old benign": ["hello"] * 500, "over-defence": ["a"] * 40, "chat": ["b"] * 60}
    monkeypatch.setattr(ua, "base_user_rows", lambda rows: [])
    monkeypatch.setattr(ua, "val_pool", lambda rows, keep: dict(base))
    monkeypatch.setattr(r14, "user_pool", lambda: {"r14-ml benign": ["c"] * 80})
    monkeypatch.setattr(r14, "user_train", lambda kk: [])

    def fit_alt(train: list[dict[str, Any]], sea_bigrams: bool = False, negations: bool = False) -> str:
        seen["train"] = train
        return "head"

    def add_alt(main: Any, alt: Any, p: Any, thr: float, log: Any, *, caps: Any, total: int) -> str:
        seen["pool"], seen["caps"], seen["total"] = p, caps, total
        return "model"

    monkeypatch.setattr(ua, "fit_alt", fit_alt)
    monkeypatch.setattr(ua, "add_alt", add_alt)

    class Packaged:
        thresholds: ClassVar[dict[str, float]] = {"user": 0.5}

    r14.user_alt(Packaged(), [], extra=[], k=10, sea_bigrams=False, log=lambda s: None, budget=0.004, r16=k)
    assert seen["train"] == r16.user_train(k)
    n_r16 = len(r16.user_pool()[r16.POOL])
    if k:
        assert seen["pool"][r16.POOL] == r16.user_pool()[r16.POOL]
        assert seen["total"] == int(0.004 * (680 + n_r16))
    else:
        assert r16.POOL not in seen["pool"] and seen["total"] == int(0.004 * 680)
    # without a budget, round 14's per-set caps plus at most one r16 alt-only flag
    r14.user_alt(Packaged(), [], extra=[], k=10, sea_bigrams=False, log=lambda s: None, r16=k)
    assert (seen["caps"].get(r16.POOL) == 1) is bool(k)


def test_train_guard_passes_the_flag(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import train_guard as tg

    seen: dict[str, Any] = {}
    # main() sets these globals from its arguments: restored afterwards
    for name in MAIN_GLOBALS:
        monkeypatch.setattr(tg, name, getattr(tg, name))

    def r14_document(rows: Any, **kw: Any) -> bytes:
        seen.update(kw)
        return b"{}"

    monkeypatch.setattr(r14, "r14_document", r14_document)
    monkeypatch.setattr(tg, "load_rows", lambda: [])
    monkeypatch.setattr(tg, "write_signed", lambda doc, key, out: 0)
    argv = ["train_guard.py", "--user-alt", "--r14", "10", "--r16", "5", "--alt-budget", "0.004"]
    monkeypatch.setattr(sys, "argv", [*argv, "--signing-key", str(tmp_path / "k.pem")])
    assert tg.main() == 0
    assert seen["r16"] == 5 and seen["k"] == 10
    monkeypatch.setattr(sys, "argv", [*argv[:4], *argv[6:], "--signing-key", str(tmp_path / "k.pem")])
    assert tg.main() == 0 and seen["r16"] == 0
