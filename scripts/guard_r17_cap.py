"""Round 17 (issue 16): a length cap for the documents heads' whole-text term, no retraining.

    python scripts/guard_r17_cap.py --cap K --signing-key KEY --out DIR

A documents head scores a text by its best range: the whole text and its 192-position windows (and
segments). The whole-text term is the mean n-gram weight x sqrt(N n-grams) up to the model's ``length_cap``
(16384) n-grams, so an ordinary long document whose windows all stay below the threshold can reach it by its
length alone (contracts, terms of service, letters: mildly positive imperative vocabulary throughout). Round
14's ``windows_only`` drops that term for long texts; it lowered benign flags but missed its bar on injected
documents by one (round 16, indep16h). This sets the signed per-head key ``length_cap`` to K on both
documents heads: beyond K n-grams (about K / 3.5 characters) the whole-text term is the mean weight x
sqrt(K), what a text of K n-grams with the same mean scores, between the shipped head (16384) and windows
only (about the n-gram count of one window, ~700). The user heads, biases, weights and thresholds keep every
byte.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

_NOTE = "; round 17"


def cap_document(cap: int) -> bytes:
    """The packaged model's JSON with ``length_cap`` ``cap`` on both documents heads."""
    from bastion.guard.classifier import MODEL_FILE, _package_file, _parse

    doc = json.loads(_package_file(MODEL_FILE))
    for head in ("documents", "documents_alt"):
        doc[head]["length_cap"] = cap
    note = str(doc["training"].get("documents", ""))
    mine = (
        f"{_NOTE}: scoring change, no retraining: length_cap {cap} on both documents heads "
        "(the whole-text term of a longer text is its mean weight x sqrt(cap))"
    )
    # rebuilt from itself: this note replaced where it stands (a later round's note after it is kept)
    old = re.compile(
        re.escape(_NOTE) + r": scoring change, no retraining: length_cap \d+ on both documents heads "
        r"\(the whole-text term of a longer text is its mean weight x sqrt\(cap\)\)"
    )
    doc["training"]["documents"] = old.sub(lambda _: mine, note, count=1) if old.search(note) else note + mine
    data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")
    _parse(data)  # fail here, not at load, on a malformed key
    return data


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cap", type=int, required=True, metavar="K", help="n-grams, e.g. 2048")
    parser.add_argument("--signing-key", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    import train_guard

    return train_guard.write_signed(cap_document(args.cap), args.signing_key, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
