"""Privacy benchmark (issue 5): DP-SGD overhead, federated round time, HE latency.

Runs, in one process and one run:

* DP-SGD epoch time: non-private vs raw Opacus vs bastion's wrapper
  (anchor: raw Opacus; goal ≤ 5 % overhead);
* Flower federation round time on 127.0.0.1 (deployment engine);
* CKKS inference latency per sample, unbatched (TenSEAL tutorial pattern, anchor) vs packed
  (goal ≤ 2 ms/sample for logistic regression on breast_cancer).

Usage::

    python benchmarks/bench_privacy.py [--quick] [--no-fl] [--json] [--dp-epochs N ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _privacy_dp
import _privacy_fl_he


def main() -> int:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=fmt)
    parser.add_argument("--quick", action="store_true", help="smaller sizes for a fast look")
    parser.add_argument("--no-fl", action="store_true", help="skip the federated round-time measurement")
    parser.add_argument("--no-dp", action="store_true", help="skip the DP-SGD measurement")
    parser.add_argument("--json", action="store_true", help="print one JSON document at the end")
    _privacy_dp.add_arguments(parser)
    args = parser.parse_args()
    results: dict[str, object] = {}
    if not args.no_dp:
        results["dp"] = _privacy_dp.run(args)
    results["fl_he"] = _privacy_fl_he.run(args)
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
