"""FL and HE parts of the privacy benchmark (combined into benchmarks/bench_privacy.py).

* FL: a real Flower federation on 127.0.0.1 (SuperLink + K SuperNodes, TLS), FedAvg on digits; the round time
  is the wall time between the server's evaluations of consecutive rounds (first round reported apart: it
  includes each client's one-off dataset load).
* HE: logistic regression on breast_cancer, TenSEAL CKKS N = 8192. Anchor: one sample per ciphertext
  (TenSEAL's tutorial pattern, ``dot``). Packed: feature-major SIMD, measured on the test set (143 rows)
  and on a full ciphertext (4096 rows, the test set tiled), end to end (encrypt + server + decrypt) and
  server only.
  Also the square-activation MLP on digits, packed.

Run alone: ``python benchmarks/_privacy_fl_he.py [--quick] [--no-fl]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def _he(quick: bool) -> dict[str, Any]:
    from bastion.models.data import load_dataset
    from bastion.privacy.he import HEClient, evaluate, serve_infer, train_logistic, train_poly_mlp

    ds = load_dataset("breast_cancer")
    model = train_logistic(x=ds.x_train, y=ds.y_train)
    single_n = 16 if quick else 64
    res = evaluate(model=model, x=ds.x_test, y=ds.y_test, single_samples=single_n)
    single, packed = res.layout("single"), res.layout("packed")

    # a full ciphertext: 4096 slots at N = 8192
    client = HEClient.for_model(model)
    slots = client.params.slots
    x_full = np.resize(ds.x_test, (slots, ds.x_test.shape[1]))
    ctx = client.public_context()
    reps = 1 if quick else 3
    e2e, server = [], []
    agree = 1.0
    for _ in range(reps):
        t0 = time.perf_counter()
        req = client.encrypt(x_full)
        t1 = time.perf_counter()
        resp = serve_infer(ctx, req, model)
        t2 = time.perf_counter()
        logits = client.decrypt(resp)
        t3 = time.perf_counter()
        e2e.append((t3 - t0) / slots * 1000)
        server.append((t2 - t1) / slots * 1000)
        agree = min(agree, float((model.labels_from_logits(logits) == model.predict(x_full)).mean()))

    out: dict[str, Any] = {
        "he_single_ms_per_sample": single.ms_per_sample,
        "he_single_server_ms_per_sample": single.server_ms_per_sample,
        "he_single_samples": single.samples,
        "he_packed_test_ms_per_sample": packed.ms_per_sample,
        "he_packed_test_server_ms_per_sample": packed.server_ms_per_sample,
        "he_packed_test_samples": packed.samples,
        "he_packed_full_ms_per_sample": statistics.median(e2e),
        "he_packed_full_server_ms_per_sample": statistics.median(server),
        "he_packed_full_samples": slots,
        "he_agreement": min(res.agreement, agree),
        "he_speedup_full_vs_single": single.ms_per_sample / statistics.median(e2e),
        "he_speedup_test_vs_single": single.ms_per_sample / packed.ms_per_sample,
        "he_public_context_bytes_packed": packed.context_bytes,
        "he_public_context_bytes_single": single.context_bytes,
    }
    digits = load_dataset("digits")
    mlp = train_poly_mlp(
        x=digits.x_train, y=digits.y_train, n_classes=digits.n_classes, hidden=16, epochs=10 if quick else 30
    )
    mres = evaluate(model=mlp, x=digits.x_test, y=digits.y_test)
    out["he_mlp_digits_packed_ms_per_sample"] = mres.layout("packed").ms_per_sample
    out["he_mlp_digits_agreement"] = mres.agreement
    out["he_mlp_digits_samples"] = mres.samples
    return out


def _fl(quick: bool) -> dict[str, Any]:
    from bastion.privacy.federated import FederationConfig, run_federation

    rounds = 2 if quick else 4
    cfg = FederationConfig(dataset="digits", clients=3, rounds=rounds, timeout_s=600)
    with tempfile.TemporaryDirectory() as tmp:
        res = run_federation(cfg, tls_dir=Path(tmp) / "tls", model_out=Path(tmp) / "m.safetensors")
    later = [r.seconds for r in res.rounds[1:]] or [res.rounds[0].seconds]
    return {
        "fl_clients": 3,
        "fl_rounds": rounds,
        "fl_first_round_s": res.rounds[0].seconds,
        "fl_round_s": statistics.median(later),
        "fl_wall_s": res.wall_seconds,
        "fl_final_accuracy": res.final_accuracy,
    }


def run(args: Any) -> dict[str, Any]:
    """Measure and print the FL and HE figures; return them as a dict."""
    quick = bool(getattr(args, "quick", False))
    out: dict[str, Any] = {}
    out.update(_he(quick))
    o = out
    print(
        "HE logistic/breast_cancer: single (anchor, TenSEAL tutorial) "
        f"{o['he_single_ms_per_sample']:.1f} ms/sample [{o['he_single_samples']} samples]; "
        f"packed {o['he_packed_test_ms_per_sample']:.2f} ms/sample [{o['he_packed_test_samples']}] "
        f"({o['he_speedup_test_vs_single']:.0f}x), {o['he_packed_full_ms_per_sample']:.3f} ms/sample "
        f"[{o['he_packed_full_samples']}, full ciphertext] ({o['he_speedup_full_vs_single']:.0f}x); "
        f"server only {o['he_packed_full_server_ms_per_sample']:.3f} ms/sample; "
        f"agreement {o['he_agreement']:.4f}"
    )
    print(
        f"HE square-MLP/digits packed: {out['he_mlp_digits_packed_ms_per_sample']:.2f} ms/sample "
        f"[{out['he_mlp_digits_samples']}], agreement {out['he_mlp_digits_agreement']:.4f}"
    )
    if not getattr(args, "no_fl", False):
        out.update(_fl(quick))
        print(
            f"FL digits, {out['fl_clients']} clients over TLS: round {out['fl_round_s']:.2f} s "
            f"(median of rounds 2..{out['fl_rounds']}), first round {out['fl_first_round_s']:.2f} s, "
            f"final accuracy {out['fl_final_accuracy']:.4f}"
        )
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-fl", action="store_true")
    parser.add_argument("--json", action="store_true")
    ns = parser.parse_args()
    result = run(ns)
    if ns.json:
        json.dump(result, sys.stdout, indent=2)
        print()
