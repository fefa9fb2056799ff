"""Round 14 (issue 16, guard16u): ordinary long documents on the retrieved channel.

    python scripts/guard_r14_docs.py report [val|test|train] [--model DIR]  # flagged counts
    python scripts/guard_r14_docs.py train --docs J --signing-key KEY --out DIR  # main head retrained

``report`` scans every row of ``data/guard/r14_documents.json`` of the split on the retrieved channel with a
signed model (default: the packaged one) and prints the flagged counts: benign / injected, with and without
override words, by genre and by language. ``train`` writes the packaged model with its main documents head
retrained (``scripts/_guard_r14_docs.py``; ``documents_alt``, the user heads and the thresholds kept), signed
with KEY. Not shipped (round 14): J 20 failed the old indirect-recall gate (see _guard_r14_docs). Shipped
(round 16): ``train --docs 5 --twins`` gave round 16's packaged model byte for byte; round 29: ``train --docs 5
--twins --r29-pairs 30 --bias-delta -0.3`` gives the packaged model byte for byte.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def report(split: str, model_dir: Path | None = None) -> dict[str, tuple[int, int]]:
    """``{figure: (flagged, n)}`` for the rows of ``split`` of r14_documents.json (retrieved channel)."""
    from _guard_r14_docs import docs_rows
    from guard_candidate import candidate_model

    from bastion.guard import PromptDetector

    det = PromptDetector(model=candidate_model(model_dir))
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in docs_rows(split):
        flag = det.scan(r["text"], channel="retrieved").flagged
        what, genre = str(r["kind"]).split(":", 1)
        names = [what, f"{what}: {genre}"]
        names.append(f"{what}: {'en' if r['lang'] == 'en' else 'other languages'}")
        if r["label"] == 0:
            names.append(f"{what}: lang {r['lang']}")
        else:
            names.append("injected (all)")
        for name in names:
            out[name][0] += int(flag)
            out[name][1] += 1
    return {k: (v[0], v[1]) for k, v in sorted(out.items())}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    rep = sub.add_parser("report", help="flagged counts on r14_documents.json")
    rep.add_argument("split", nargs="?", default="test", choices=("train", "val", "test"))
    rep.add_argument("--model", type=Path, help="a signed model directory (default: the packaged model)")
    tr = sub.add_parser("train", help="retrain the main documents head")
    tr.add_argument("--docs", type=int, required=True, metavar="J", help="r14 retrieved train rows xJ")
    tr.add_argument(
        "--twins",
        action="store_true",
        help="weight each garak latent-injection clean page by its page's injected train rows (round 15)",
    )
    tr.add_argument(
        "--r22-docs",
        type=int,
        default=0,
        metavar="K",
        help="also data/guard/r22_documents.json train documents xK, the length cap kept (round 22b)",
    )
    tr.add_argument(
        "--r28-docs",
        type=int,
        default=0,
        metavar="K",
        help="also data/guard/r28_documents.json train documents xK, the length cap kept (round 28)",
    )
    tr.add_argument(
        "--r29-pairs",
        type=int,
        default=0,
        metavar="K",
        help="also data/guard/r29_pairs.json train documents (matched pairs) xK, length cap kept (round 29)",
    )
    tr.add_argument(
        "--r29-benign-only",
        action="store_true",
        help="with --r29-pairs: only the pairs' benign twins, as hard negatives (round 29)",
    )
    tr.add_argument(
        "--bias-delta",
        type=float,
        default=0.0,
        metavar="D",
        help="move the retrained main documents head's bias by D after the shift (operating point; round 29)",
    )
    tr.add_argument("--keep-cap", action="store_true", help="keep the packaged head's length cap (a control)")
    tr.add_argument(
        "--r28-calibration",
        choices=("", "all", "plain"),
        default="",
        help="shift the bias on the calibration pool plus the r28 benign val documents (all, or only those "
        "that neither address nor discuss AI tools; round 28)",
    )
    tr.add_argument(
        "--r28-balanced",
        action="store_true",
        help="weight the r28 rows kind by kind so that benign and injected weigh the same (round 28)",
    )
    tr.add_argument("--signing-key", type=Path, required=True)
    tr.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.cmd == "report":
        print(f"r14_documents.json, {args.split} split, retrieved channel, model: {args.model or 'packaged'}")
        print("| figure | flagged | rate |")
        print("|---|---|---|")
        for name, (hits, n) in report(args.split, args.model).items():
            print(f"| {name} | {hits}/{n} | {hits / max(n, 1):.3f} |")
        return 0
    import train_guard
    from _guard_r14_docs import r14_docs_document

    doc = r14_docs_document(
        train_guard.load_rows(),
        j=args.docs,
        twins=args.twins,
        r22=args.r22_docs,
        r28=args.r28_docs,
        keep_cap=args.keep_cap,
        r28_calibration=args.r28_calibration,
        r28_balanced=args.r28_balanced,
        r29=args.r29_pairs,
        r29_benign_only=args.r29_benign_only,
        bias_delta=args.bias_delta,
    )
    return train_guard.write_signed(doc, args.signing_key, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
