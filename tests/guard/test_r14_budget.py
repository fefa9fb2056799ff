"""Round 14 (guard16t): ``train_guard.py --user-alt --r14 K --alt-budget B`` shifts the second user head by a
false-positive budget on the whole validation pool (at most ``floor(B x pool size)`` alt-only flags, none on
over-defence or chat) instead of round 13's per-set caps; without ``--r14-docs`` the packaged
``documents_alt`` is kept (``scripts/_guard_r14_alt.py``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import _guard_r14_alt as r14
import _guard_user_alt as ua

THR = 0.5


def _pool(sizes: dict[str, int]) -> dict[str, list[str]]:
    return {k: [f"{k} {i}" for i in range(n)] for k, n in sizes.items()}


def test_budget_is_a_fraction_of_the_whole_pool_with_over_defence_and_chat_at_zero() -> None:
    # round 14's val pool: round 13's sets plus the r14 benign user-channel val rows, 849 prompts
    sizes = {"old benign": 252, "over-defence": 41, "look-alikes": 91, "chat": 73, "tables": 148}
    sizes |= {"r11h": 90, "r12p+r12e": 64, "r14-ml benign": 79, "r14-en benign": 11}
    pool = _pool(sizes)
    assert r14.budget_caps(pool, 0.004) == ({"over-defence": 0, "chat": 0}, 3)
    assert r14.budget_caps(pool, 0.0025) == ({"over-defence": 0, "chat": 0}, 2)
    assert r14.budget_caps(_pool({"a": 1000}), 0.003)[1] == 3  # an exact product is not floored below
    assert r14.budget_caps(_pool({"a": 100}), 0.004)[1] == 0


def test_the_budget_walk_has_no_per_set_cap_but_stops_at_over_defence_chat_and_the_total() -> None:
    main = {
        "old benign": np.asarray([0.1, 0.1, 0.9]),
        "over-defence": np.asarray([0.1]),
        "chat": np.asarray([0.1]),
        "r12p+r12e": np.asarray([0.1, 0.1, 0.1]),
    }
    alt = {
        "old benign": np.asarray([0.5, 0.2, 0.99]),  # 0.99: the main head flags it already, not counted
        "over-defence": np.asarray([0.4]),
        "chat": np.asarray([0.3]),
        "r12p+r12e": np.asarray([0.97, 0.96, 0.6]),
    }
    caps = dict(r14.BUDGET_ZERO)
    # round 13's caps (r12p+r12e 0) stop at the first look-alike prompt
    assert ua.alt_threshold(main, alt, THR, caps=ua.CAPS, total=4) == pytest.approx(
        ua._logit(0.97) + ua.MARGIN
    )
    # the budget: 0.97, 0.96, 0.6 (r12p+r12e) and 0.5 (old benign) fit in 4; over-defence's 0.4 stops it
    assert ua.alt_threshold(main, alt, THR, caps=caps, total=4) == pytest.approx(ua._logit(0.4) + ua.MARGIN)
    # a total of 2 stops at the third alt-only flag
    assert ua.alt_threshold(main, alt, THR, caps=caps, total=2) == pytest.approx(ua._logit(0.6) + ua.MARGIN)


def test_user_alt_uses_the_budget_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[Any, int]] = []
    pool = _pool({"old benign": 600, "over-defence": 100, "chat": 100, "r14-ml benign": 200})
    monkeypatch.setattr(ua, "base_user_rows", lambda rows: [])
    monkeypatch.setattr(ua, "fit_alt", lambda train, sea_bigrams=False, negations=False: "head")
    monkeypatch.setattr(
        ua, "val_pool", lambda rows, keep: {k: v for k, v in pool.items() if k != "r14-ml benign"}
    )
    monkeypatch.setattr(r14, "user_pool", lambda: {"r14-ml benign": pool["r14-ml benign"]})
    monkeypatch.setattr(r14, "user_train", lambda k: [])

    def add_alt(main: Any, alt: Any, p: Any, thr: float, log: Any, *, caps: Any, total: int) -> str:
        assert p == pool and alt == "head"
        seen.append((caps, total))
        return "model"

    monkeypatch.setattr(ua, "add_alt", add_alt)

    class Packaged:
        def __init__(self) -> None:
            self.thresholds = {"user": THR}

    for budget in (None, 0.004):
        assert (
            r14.user_alt(Packaged(), [], extra=[], k=1, sea_bigrams=False, budget=budget, log=str) == "model"
        )
    assert seen == [(ua.CAPS | r14.R14_CAPS, r14.R14_TOTAL), ({"over-defence": 0, "chat": 0}, 4)]
