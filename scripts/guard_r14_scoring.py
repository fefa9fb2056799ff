"""Round 14 (issue 16, guard16v): a scoring change for the retrieved / tool channels, no retraining.

    python scripts/guard_r14_scoring.py --variant a --signing-key KEY --out DIR

Ordinary long documents (contracts, terms of service, letters, newsletters) were flagged on the retrieved
channel by the main documents head's WHOLE-TEXT term: it is the text's mean n-gram weight x sqrt(N n-grams)
(``length_cap`` 16384 never bites at a few thousand characters), so a document whose every 192-position window
is below the threshold reached it by its length (guard16v's val diagnosis: the whole-text term gave 14 of the
16 flags on the r14_documents benign val documents, 0 of the 5 flags on the old benign val documents).

Variants (``/tmp/guard16v/PREREG.txt``): ``a`` sets the signed head key ``windows_only`` on both documents
heads (a text longer than the window is scored over its windows only, :mod:`bastion.guard._scoring`); ``b``
also sets ``segments`` 48 on the main documents head (round 9's line / sentence segments). The main
documents head's bias is then shifted by the shipped head-shift rule (its 0.99 quantile of the benign val
documents of the bench, r6 and r7b lands on the kept retrieved threshold, ``_guard_r14_docs.shifted_main``);
the thresholds, the user heads and every other byte of the packaged model are kept.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

SEGMENTS = 48  # train_guard.R9_SEGMENT_MIN


def scoring_document(variant: str, rows: list[dict]) -> bytes:
    """The packaged model's JSON with variant ``variant``'s documents-head keys and the shifted main bias."""
    from _guard_r14_docs import QUANTILE, _logit, calibration_docs

    from bastion.guard import _train
    from bastion.guard.classifier import MODEL_FILE, _package_file, _parse

    doc = json.loads(_package_file(MODEL_FILE))
    for head in ("documents", "documents_alt"):
        doc[head]["windows_only"] = True
    if variant == "b":
        doc["documents"]["segments"] = SEGMENTS
    model = _parse(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8"))
    assert model.documents is not None
    thr = model.thresholds["retrieved"]
    main = dataclasses.replace(model.documents, alt=None)
    q = float(np.quantile(_train.scores(main, calibration_docs(rows)), QUANTILE))
    doc["documents"]["bias"] = round(main.bias + _logit(thr) - _logit(q), 6)
    print(
        f"variant {variant}: main documents head's {QUANTILE} quantile {q:.5f} -> {thr}; bias {main.bias} "
        f"-> {doc['documents']['bias']}"
    )
    doc["training"]["documents"] = str(doc["training"].get("documents", "")) + (
        "; round 14 (guard16v): scoring change, no retraining: windows_only on both documents heads (a text "
        "longer than the window is scored over its windows only)"
        + (f", segments {SEGMENTS} on the main documents head" if variant == "b" else "")
        + f"; the main documents head's bias shifted so its {QUANTILE} quantile of the benign val documents "
        "lands on the kept retrieved threshold"
    )
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variant", choices=("a", "b"), required=True)
    parser.add_argument("--signing-key", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    import train_guard

    return train_guard.write_signed(
        scoring_document(args.variant, train_guard.load_rows()), args.signing_key, args.out
    )


if __name__ == "__main__":
    raise SystemExit(main())
