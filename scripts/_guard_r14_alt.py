"""Round 14 (issue 16, guard16s; opt-in, ``train_guard.py --user-alt --r9m 1 --r9-user-units 1 --r14 K``):
both second heads retrained with the round-14 data (scripts/guard_r14.py), everything else kept.

The packaged model's main heads (user, documents), their biases and the three thresholds stay byte for byte;
only the second heads change, so every text a main head flags is still flagged (max-out):

* ``user_alt``: round 13's rows (``scripts/_guard_user_alt.py``: default user rows + the opt-in extras) plus
  the r14 user-channel train rows xK (native multilingual attacks and benign prompts, English extractions,
  persona jailbreaks, questions about prompt injection, corrections, number-heavy prompts); optionally with
  ``--sea-bigrams`` (bigrams inside Thai/Lao/Myanmar/Khmer runs). Shifted by round 13's rule
  (:func:`_guard_user_alt.alt_threshold`) on round 13's val pool plus the r14 user-channel benign val rows,
  with the caps :data:`R14_CAPS` and the total :data:`R14_TOTAL`.
* ``documents_alt``: the shipped recipe (``train_guard.train_model``: train split + i18n + r6 train x3 + r7b
  train x10, C 16, threshold at the 0.998 quantile of the val documents and the out-of-fold benign training
  documents, bias shifted onto the first documents head's 0.99 quantile) plus the r14 retrieved/tool train
  rows x ``--r14-docs J``; then, if its alt-only flags on the r14 benign val documents at the retrieved
  threshold exceed :data:`DOC_CAP`, its bias is lowered further (the same walk as the user head's).

Not shipped (round 14, /tmp/guard16s/PREREG.txt): candidate D (``--r11h 3 --r12p 3 --r12e 3 --r14 10
--r14-docs 30``) passed every gate but gained +4 r14 test attack rows (user +5, documents -1) against a +10
bar; held-out languages (el ta ms hu) 20/62 both. Today's code does not reproduce the shipped documents_alt
(features changed since round 7b), so retraining it replaces a head rather than adding to it.

``--alt-budget B`` (guard16t, /tmp/guard16t/PREREG.txt): ``user_alt`` shifted by a false-positive budget on
the whole val pool (:func:`budget_caps`: at most floor(B x 849) alt-only flags, 0 on over-defence and chat, no
per-set caps); without ``--r14-docs`` the packaged ``documents_alt`` is kept byte for byte. Not shipped: V1
(``--r14 10 --alt-budget 0.004``, recipe D's user rows, own threshold 0.711 vs D's 0.803) reached r14 test
user attacks 73 -> 83 but held-out languages only 20 -> 23/62 (bar +5), and over-defence fell to 73/74 (gate
74/74: one python:stdlib-code prompt).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Row = dict[str, Any]
# pre-registered in /tmp/guard16s/PREREG.txt before any candidate figure
R14_CAPS = {"r14-ml benign": 1, "r14-en benign": 1}
R14_TOTAL = 4  # round 13's 3 plus one
DOC_CAP = 1  # alt-only flags allowed among the r14 benign val documents (retrieved channel)
# --alt-budget B (guard16t, /tmp/guard16t/PREREG.txt): a false-positive budget instead of per-set caps: at
# most floor(B x pool size) alt-only flags on the whole val pool, none on these sets
BUDGET_ZERO = {"over-defence": 0, "chat": 0}


def budget_caps(pool: dict[str, list[str]], budget: float) -> tuple[dict[str, int], int]:
    """The caps and total of the false-positive budget rule: ``floor(budget x pool size)`` alt-only flags in
    all, :data:`BUDGET_ZERO` on over-defence and chat, no other per-set cap."""
    n = sum(len(v) for v in pool.values())
    return dict(BUDGET_ZERO), math.floor(budget * n + 1e-9)


def _logit(p: float) -> float:
    p = min(max(p, 1e-12), 1 - 1e-12)
    return math.log(p / (1 - p))


def user_train(k: int) -> list[Row]:
    from guard_r14 import user_rows

    return user_rows("train") * k


def user_pool() -> dict[str, list[str]]:
    """The r14 benign user-channel val prompts, per file."""
    from guard_r14 import user_rows

    val = [r for r in user_rows("val") if r["label"] == 0]
    return {
        "r14-ml benign": [r["text"] for r in val if r["source"] == "bastion:r14-ml"],
        "r14-en benign": [r["text"] for r in val if r["source"] == "bastion:r14-en"],
    }


def user_alt(
    packaged: Any,
    rows: Sequence[Row],
    *,
    extra: list[Row],
    k: int,
    sea_bigrams: bool,
    log: Callable[[str], None] = print,
    keep: Callable[[Row], bool] = lambda r: True,
    budget: float | None = None,
    r16: int = 0,
    r22: int = 0,
    r22_app: int = 0,
    r23_app: int = 0,
    r23_composites: int = 0,
    negations: bool = False,
) -> Any:
    """``packaged`` with a retrained ``user_alt``: ``rows`` (the bench rows, already without any held-out
    source) give the base user rows; ``extra`` round 13's opt-in rows; ``keep`` filters the val pool;
    ``budget`` (``--alt-budget``) shifts it by :func:`budget_caps` instead of the per-set caps; ``r16``
    (``--r16``, round 16): also the r16 train rows x``r16``, and their benign val rows in the pool; ``r22``
    (``--r22``, round 22) the same with the r22 rows."""
    import _guard_r16
    import _guard_r22data
    import _guard_user_alt as ua

    train = ua.base_user_rows(rows) + extra + user_train(k) + _guard_r16.user_train(r16)
    train += _guard_r22data.user_train(r22)
    if r22_app:  # round 22d: prompts applications send (scripts/guard_r22.py app_rows)
        from _guard_r16 import train_times
        from guard_r22 import app_rows

        train += train_times(app_rows(), r22_app)
    if r23_app:  # round 23b: more of them, in the shapes round 23's heads still flagged
        from _guard_r16 import train_times
        from guard_r22 import app23_rows

        train += train_times(app23_rows(), r23_app)
    if (
        r23_composites
    ):  # round 23d: attacks behind an application's text (scripts/guard_r22.py composite_rows)
        from guard_r22 import composite_rows

        train += composite_rows(r23_composites)
    r16_log = (f", r16 x{r16}" if r16 else "") + (f", r22 x{r22}" if r22 else "")
    log(f"user_alt (r14 x{k}{r16_log}, sea_bigrams {sea_bigrams}): {len(train)} training rows")
    alt = ua.fit_alt(train, sea_bigrams=sea_bigrams, negations=negations)
    pool = ua.val_pool(rows, keep) | user_pool() | (_guard_r16.user_pool() if r16 else {})
    pool |= _guard_r22data.user_pool() if r22 else {}
    if r22_app:
        from _guard_r16 import benign_val
        from guard_r22 import app_rows

        pool |= benign_val(app_rows(), "r22 app benign")
    if r23_app:
        from _guard_r16 import benign_val
        from guard_r22 import app23_rows

        pool |= benign_val(app23_rows(), "r23 app benign")
    caps, total = (ua.CAPS | R14_CAPS, R14_TOTAL) if budget is None else budget_caps(pool, budget)
    if r16 and budget is None:
        caps = caps | _guard_r16.CAPS
    if budget is not None:
        log(
            f"user_alt: false-positive budget {budget} of {sum(map(len, pool.values()))} val prompts: {total}"
        )
    thr = packaged.thresholds["user"]
    return ua.add_alt(packaged, alt, pool, thr, log, caps=caps, total=total)


def documents_alt(
    packaged: Any,
    rows: Sequence[Row],
    *,
    j: int,
    tg: Any,
    log: Callable[[str], None] = print,
    r22: int = 0,
    cap: int | None = None,
) -> Any:
    """``packaged`` with a retrained ``documents_alt`` (see the module docstring). Round 22: ``r22`` adds the
    r22 train documents x``r22`` (``scripts/_guard_r22docs.py``) and caps the alt-only flags on the r22
    benign val documents at ``DOC_CAP`` too; ``cap`` sets the head's own ``length_cap`` (round 17's key)
    before that check, as round 17 set it on the trained head."""
    import _guard_user_alt as ua
    from guard_i18n import i18n_rows
    from guard_r6 import r6_rows
    from guard_r7b import r7b_rows
    from guard_r14 import doc_rows

    from bastion.guard import _train

    r6_all, r7b_all = r6_rows(), r7b_rows()
    r6_train = [r for r in r6_all if r["split"] == "train"]
    r7b_train = [r for r in r7b_all if r["split"] == "train"]
    alt_rows = [r for r in rows if r["split"] == "train"] + i18n_rows() + r6_train * tg.R6_DOCUMENTS_REPEAT
    alt_rows += r7b_train * tg.R7B_ALT_REPEAT + doc_rows("train") * j
    if r22:
        import _guard_r22docs

        alt_rows += _guard_r22docs.doc_train(r22)
    floor = _train.LENGTH_FLOOR
    document_benign = [
        r["text"] for r in rows if r["split"] == "val" and r["label"] == 0 and r["set"] == "documents"
    ]
    document_benign += [r["text"] for r in r6_all if r["split"] == "val" and r["set"] == "r6-documents"]
    document_benign += [r["text"] for r in r7b_all if r["split"] == "val" and r["set"] == "r7b-documents"]
    main = dataclasses.replace(packaged.documents, alt=None)
    log(f"documents_alt (r14 x{j}): {len(alt_rows)} training rows")
    alt = tg._alt_fit(alt_rows, floor, 0)
    t1 = float(np.quantile(_train.scores(main, document_benign), 0.99))
    t2 = float(
        np.quantile(tg._alt_calibration_scores(alt, alt_rows, document_benign, floor, 0), tg.R7_ALT_QUANTILE)
    )
    head = ua.as_stored(dataclasses.replace(alt, bias=alt.bias + _logit(t1) - _logit(t2)))
    if cap is not None:
        head = dataclasses.replace(head, length_cap=cap)
    thr = packaged.thresholds["retrieved"]
    pools = {"r14 benign documents": [r["text"] for r in doc_rows("val") if r["label"] == 0]}
    if r22:
        import _guard_r22docs

        pools["r22 benign documents"] = _guard_r22docs.benign_val_docs()
    m = {k: _train.scores(main, v) for k, v in pools.items()}
    a = {k: _train.scores(head, v) for k, v in pools.items()}
    caps = dict.fromkeys(pools, DOC_CAP)
    t = ua.alt_threshold(m, a, thr, caps=caps, total=DOC_CAP * len(pools))
    shift = 0.0
    if t > _logit(thr):  # the quantile rule alone would add more than DOC_CAP flags a set: lower it further
        shift = _logit(thr) - t
        head = ua.as_stored(dataclasses.replace(head, bias=head.bias + shift))
    flags = {k: int(sum((_train.scores(head, v) >= thr) & (m[k] < thr))) for k, v in pools.items()}
    log(
        f"documents_alt: t1 {t1:.4f}, own quantile threshold {t2:.4f}, extra shift {shift:+.4f}; "
        f"alt-only flags on the benign val documents: {flags} of { ({k: len(v) for k, v in pools.items()}) }"
    )
    return dataclasses.replace(packaged, documents=dataclasses.replace(packaged.documents, alt=head))


def r14_document(
    rows: Sequence[Row],
    *,
    r9m: int,
    units: int,
    lines: int,
    k: int,
    j: int,
    sea: bool,
    tg: Any,
    budget: float | None = None,
    r16: int = 0,
    r22: int = 0,
    r22_docs: int = 0,
    r22_app: int = 0,
    r23_app: int = 0,
    r23_composites: int = 0,
    negations: bool = False,
) -> bytes:
    """The JSON of the packaged model with ``user_alt`` (and, with ``j``, ``documents_alt``) retrained
    (thresholds kept; ``j`` 0 keeps the packaged ``documents_alt`` byte for byte)."""
    import _guard_user_alt as ua

    from bastion.guard import _train, load_model

    packaged = load_model()
    extra = ua.extra_rows(r9m=r9m, units=units, lines=lines, tg=tg)
    model = user_alt(
        packaged,
        rows,
        extra=extra,
        k=k,
        sea_bigrams=sea,
        budget=budget,
        r16=r16,
        r22=r22,
        r22_app=r22_app,
        r23_app=r23_app,
        r23_composites=r23_composites,
        negations=negations,
    )
    if j or r22_docs:
        cap = packaged.documents.alt.length_cap if r22_docs else None
        model = documents_alt(model, rows, j=j, tg=tg, r22=r22_docs, cap=cap)
    training = dict(model.training)
    training["user_alt"] = (
        f"round 14: second user head, max-out; default user rows + r9m x{r9m}, r10b units x{units} (weight "
        f"{tg.R9_UNIT_WEIGHT}), r8 lines x{lines}, r11h x{tg.R11H_REPEAT}, r12p x{tg.R12P_REPEAT}, r12e "
        f"x{tg.R12E_REPEAT}, data/guard/r14_*.json user-channel train rows x{k} (scripts/guard_r14.py)"
        + (f", data/guard/r16_multilingual.json train rows x{r16} (scripts/_guard_r16.py)" if r16 else "")
        + (f", data/guard/r22_user.json train rows x{r22} (scripts/_guard_r22data.py)" if r22 else "")
        + (f", data/guard/r22_app.json train rows x{r22_app} (scripts/guard_r22.py)" if r22_app else "")
        + (f", data/guard/r23_app.json train rows x{r23_app} (scripts/guard_r22.py)" if r23_app else "")
        + (
            f", {r23_composites} r22 train attacks behind each r23 app benign train row (composite_rows)"
            if r23_composites
            else ""
        )
        + f"{', Thai/Lao/Myanmar/Khmer bigrams' if sea else ''}; C {_train.C}; "
        f"bias shifted so that it adds at "
        + (
            f"most {R14_TOTAL} benign val flags ({ua.CAPS | R14_CAPS}) at the kept user threshold"
            if budget is None
            else f"most floor({budget} x pool size) benign val flags (round 13's val pool + the r14 benign "
            f"user-channel val rows{' + the r16 benign val rows' if r16 else ''}"
            f"{' + the r22 benign val rows' if r22 else ''}"
            f"{' + the r22 app benign val rows' if r22_app else ''}"
            f"{' + the r23 app benign val rows' if r23_app else ''}; "
            f"0 on over-defence and chat) at the kept user threshold"
        )
    )
    if r22_docs:
        training["documents"] += (
            f"; round 22b: documents_alt retrained with data/guard/r22_documents.json train documents "
            f"x{r22_docs}" + (f" and the r14 ones x{j}" if j else "") + f", its length cap "
            f"{packaged.documents.alt.length_cap} kept, at most {DOC_CAP} alt-only flag on the r14 and on "
            f"the r22 benign val documents each"
        )
    elif j:
        training["documents"] += (
            f"; round 14: documents_alt retrained with data/guard/r14_*.json retrieved/tool train rows x{j}, "
            f"at most {DOC_CAP} alt-only flag on their benign val documents"
        )
    return _train.to_document(model, thresholds=model.thresholds, training=training)
