"""Round 13 (issue 16, guard16r; opt-in, ``train_guard.py --user-alt``): a second user-channel head.

Rounds 9m-12 retrained the single user head with multilingual rows, AI-addressed units and look-alike
negatives: held-out families rose but every candidate lost old recall, cross-source recall or validation FPR.
Here the packaged model is kept as it is (user weights, bias and threshold, documents heads, retrieved/tool
thresholds) and a second user head ``user_alt`` is added, trained on the default recipe's user rows plus the
opt-in extra rows (``--r9m``, ``--r9-user-units``, ``--r11h``, ``--r12p``, ``--r12e``). The user score is
``max(main, alt)`` (:meth:`bastion.guard.classifier.GuardModel.score`), so every prompt the kept head flags
is still flagged; the alt head's bias is shifted so that, on the benign user-channel **val** prompts the main
head does not flag, it adds at most ``CAPS`` flags per set (``TOTAL_CAP`` in all): :func:`alt_threshold`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

Row = dict[str, Any]
# alt-only benign val flags allowed per set (a set not named here: only the total cap); pre-registered in
# /tmp/guard16r/PREREG.txt before any figure
CAPS = {"old benign": 1, "over-defence": 0, "look-alikes": 1, "chat": 0, "r12p+r12e": 0}
TOTAL_CAP = 3
MARGIN = 0.01  # logit margin above the first benign score that would break a cap


def _logit(p: float) -> float:
    p = min(max(p, 1e-12), 1 - 1e-12)
    return math.log(p / (1 - p))


def base_user_rows(rows: Sequence[Row]) -> list[Row]:
    """The default recipe's user-head training rows (``train_guard.train_model``'s ``train``, default
    flags)."""
    from guard_i18n import composed_rows, i18n_rows, r5_rows
    from train_guard import extra_user_rows

    tables = composed_rows() + r5_rows()
    return (
        [r for r in rows if r["split"] == "train"]
        + i18n_rows()
        + [r for r in tables if r["split"] == "train"]
        + extra_user_rows()
    )


def extra_rows(*, r9m: int, units: int, lines: int, tg: Any = None) -> list[Row]:
    """The opt-in extra user rows (train families only): r9m xr9m, round 10b units / lines, r11h, r12p, r12e,
    with the repeats and unit weight of ``tg``: the ``train_guard`` module whose flags set them (run as a
    script, that is ``__main__``, not an imported copy that still holds the defaults)."""
    if tg is None:
        import train_guard as tg

    out: list[Row] = []
    if r9m:
        from guard_r9m import r9m_rows

        out += [r for r in r9m_rows() if r["split"] == "train"] * r9m
    return out + tg.r10b_user_rows(units=units, lines=lines) + tg.r11_user_rows()


def val_pool(rows: Sequence[Row], keep: Callable[[Row], bool] = lambda r: True) -> dict[str, list[str]]:
    """Benign user-channel val prompts by set (``keep`` filters the old data's rows, e.g. a held-out
    source)."""
    from guard_i18n import composed_rows, r5_rows
    from guard_r6 import r6_rows
    from guard_r7 import r7_rows
    from guard_r7b import USER_SETS as R7B_USER_SETS
    from guard_r7b import r7b_rows
    from guard_r8 import USER_SETS as R8_USER_SETS
    from guard_r8 import r8_rows
    from train_guard import R6_USER_SETS

    from bastion.guard import _train_extra

    def val(part: Sequence[Row], sets: Any = None) -> list[str]:
        pick = [r for r in part if r["split"] == "val" and r["label"] == 0]
        return [r["text"] for r in pick if sets is None or r["set"] in sets]

    old = [r for r in rows if keep(r)]
    return {
        "old benign": val(old, {"benign", "multilingual-benign"}),  # with over-defence: the bench's 293
        "over-defence": val(old, {"overdefence"}),
        "look-alikes": val(r6_rows(), R6_USER_SETS)
        + val(r7b_rows(), R7B_USER_SETS)
        + val(r8_rows(), R8_USER_SETS),
        "chat": val(r7_rows(augment=False)),
        "tables": val(composed_rows() + r5_rows()),
        "r11h": val(_train_extra.human_rows()),
        "r12p+r12e": val(_train_extra.prefix_rows() + _train_extra.snippet_rows()),
    }


def alt_threshold(
    main: Mapping[str, np.ndarray],
    alt: Mapping[str, np.ndarray],
    thr: float,
    *,
    caps: Mapping[str, int] = CAPS,
    total: int = TOTAL_CAP,
) -> float:
    """The alt head's own threshold, as a logit: walking the alt scores of the pool's prompts that the main
    head does not flag (main < ``thr``) from the top, just above (``MARGIN``) the first one whose flag would
    break its set's cap or the total cap."""
    cands = sorted(
        ((float(a), name) for name in alt for a, m in zip(alt[name], main[name], strict=True) if m < thr),
        reverse=True,
    )
    counts: dict[str, int] = {}
    for score, name in cands:
        if counts.get(name, 0) + 1 > caps.get(name, total) or sum(counts.values()) + 1 > total:
            return _logit(score) + MARGIN
        counts[name] = counts.get(name, 0) + 1
    return _logit(cands[-1][0]) - MARGIN if cands else _logit(thr)


def as_stored(head: Any) -> Any:
    """The head as the JSON will hold it (bias, rule weights at 6 decimals; weights are float16 already)."""
    return dataclasses.replace(head, bias=round(head.bias, 6), rule_weights=np.round(head.rule_weights, 6))


def shifted(alt: Any, t_logit: float, thr: float) -> Any:
    """``alt`` with its bias moved so that its own threshold ``t_logit`` maps onto the user threshold."""
    return as_stored(dataclasses.replace(alt, bias=alt.bias + _logit(thr) - t_logit))


def fit_alt(train: list[Row], *, sea_bigrams: bool = False, negations: bool = False) -> Any:
    """The alt head: the user head's features and C (``_train.fit`` defaults, the round-7 length floor);
    ``sea_bigrams`` (round 14, opt-in): also bigrams inside Thai/Lao/Myanmar/Khmer runs; ``negations``
    (round 24, opt-in): also the words a negator governs, as features of their own."""
    from bastion.guard import _train

    head = _train.fit(
        train, c=_train.C, length_floor=_train.LENGTH_FLOOR, sea_bigrams=sea_bigrams, negations=negations
    )
    return as_stored(head)


def add_alt(
    main: Any,
    alt: Any,
    pool: Mapping[str, Sequence[str]],
    thr: float,
    log: Callable[[str], None] = print,
    *,
    caps: Mapping[str, int] = CAPS,
    total: int = TOTAL_CAP,
) -> Any:
    """``main`` with ``alt`` grafted as its second head, shifted by :func:`alt_threshold` on ``pool``."""
    from bastion.guard import _train

    plain = dataclasses.replace(main, alt=None)
    m = {k: _train.scores(plain, v) for k, v in pool.items()}
    a = {k: _train.scores(alt, v) for k, v in pool.items()}
    t = alt_threshold(m, a, thr, caps=caps, total=total)
    head = shifted(alt, t, thr)
    model = dataclasses.replace(main, alt=head)
    extra = {
        k: int(sum((s >= thr) & (mm < thr)))
        for k, s, mm in ((k, _train.scores(model, v), m[k]) for k, v in pool.items())
    }
    log(
        f"user_alt: own threshold {1 / (1 + math.exp(-t)):.4f}, bias shift {head.bias - alt.bias:+.4f}; "
        f"alt-only val flags {extra} (main flags { ({k: int(sum(v >= thr)) for k, v in m.items()}) })"
    )
    return model


def user_alt_model(
    rows: Sequence[Row],
    *,
    r9m: int,
    units: int,
    lines: int,
    tg: Any = None,
    log: Callable[[str], None] = print,
) -> Any:
    """The packaged model with a ``user_alt`` head (everything else, the user threshold included, kept)."""
    from bastion.guard import load_model

    packaged = load_model()
    train = base_user_rows(rows) + extra_rows(r9m=r9m, units=units, lines=lines, tg=tg)
    log(f"user_alt: {len(train)} training rows")
    alt = fit_alt(train)
    return add_alt(packaged, alt, val_pool(rows), packaged.thresholds["user"], log)


def user_alt_document(rows: Sequence[Row], *, r9m: int, units: int, lines: int, tg: Any = None) -> bytes:
    """The JSON of :func:`user_alt_model`: the packaged thresholds, its training notes plus ``user_alt``."""
    if tg is None:
        import train_guard as tg

    from bastion.guard import _train

    model = user_alt_model(rows, r9m=r9m, units=units, lines=lines, tg=tg)
    training = dict(model.training)
    training["user_alt"] = (
        f"round 13: second user head, max-out; default user rows + r9m x{r9m}, r10b units x{units} (weight "
        f"{tg.R9_UNIT_WEIGHT}), r8 lines x{lines}, r11h x{tg.R11H_REPEAT}, r12p "
        f"x{tg.R12P_REPEAT}, r12e x{tg.R12E_REPEAT}; C {_train.C}; bias shifted so that it "
        f"adds at most {TOTAL_CAP} benign val flags ({CAPS}) at the kept user threshold"
    )
    return _train.to_document(model, thresholds=model.thresholds, training=training)
