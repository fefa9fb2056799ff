"""Adversarial audit benchmark.

1. PGD-40 (L∞, ε = 0.1, step 2.5ε/40, one random start) throughput in examples/s: bastion vs IBM ART on the
   same digits MLP, the same inputs, in the same run (anchor: ART). Robust accuracies are printed too, so a
   faster but weaker attack cannot hide.
2. Wall time of ``bastion audit --demo --budget quick`` (a fresh process: imports, demo training, all four
   attack families, report writing). Goal: under 2 minutes on 2 cores.

Run: ``python benchmarks/bench_audit.py [--repeats 3] [--threads 1] [--skip-cli]``
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _best(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_pgd(repeats: int, threads: int) -> None:
    import torch
    from art.attacks.evasion import ProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    from bastion.adversarial.attacks import evasion as ev
    from bastion.adversarial.attacks.membership import mlp_shadow_trainer
    from bastion.models.data import load_dataset

    torch.set_num_threads(threads)
    ds = load_dataset("digits", seed=0)
    trainer = mlp_shadow_trainer(
        input_shape=(64,),
        n_classes=10,
        hidden=(64,),
        epochs=30,
        batch_size=64,
        lr=3e-3,
        clip_values=(0.0, 1.0),
    )
    model = trainer(ds.x_train, ds.y_train, 0)
    x, y = ds.x_test, ds.y_test
    n = x.shape[0]
    eps, steps = 0.1, 40
    clf = PyTorchClassifier(
        model=model.module,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=(64,),
        nb_classes=10,
        clip_values=(0.0, 1.0),
    )
    art = ProjectedGradientDescent(
        clf,
        norm=np.inf,
        eps=eps,
        eps_step=2.5 * eps / steps,
        max_iter=steps,
        num_random_init=1,
        batch_size=n,
        verbose=False,
    )
    out: dict[str, np.ndarray] = {}

    def run_bastion() -> None:
        out["bastion"] = ev.pgd(model, x, y, eps=eps, steps=steps, step_size=2.5 * eps / steps, batch_size=n)

    def run_art() -> None:
        out["art"] = art.generate(x.astype(np.float32)).astype(np.float32)

    run_bastion()
    run_art()  # warm-up both
    t_b = _best(run_bastion, repeats)
    t_a = _best(run_art, repeats)
    acc_b = ev.accuracy(model, out["bastion"], y)
    acc_a = ev.accuracy(model, out["art"], y)
    print(f"PGD-40 on digits MLP(64), {n} examples, eps={eps}, torch threads={threads}, best of {repeats}")
    print(f"  bastion: {n / t_b:10.0f} examples/s   robust accuracy {acc_b:.3f}")
    print(f"  ART:     {n / t_a:10.0f} examples/s   robust accuracy {acc_a:.3f}")
    print(
        f"  speed-up vs ART: {t_a / t_b:.1f}x (goal >= 5x); accuracy gap {100 * (acc_b - acc_a):+.1f} pp "
        "(goal <= +1 pp)"
    )


def bench_cli() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                "from bastion.cli import main; main()",
                "audit",
                "--demo",
                "--budget",
                "quick",
                "--out",
                str(Path(tmp) / "out"),
                "--format",
                "json",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - t0
    status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}: {proc.stderr.strip()[-200:]}"
    print(f"bastion audit --demo --budget quick: {wall:.1f} s wall ({status}); goal < 120 s on 2 cores")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-cli", action="store_true")
    args = parser.parse_args()
    bench_pgd(args.repeats, args.threads)
    if not args.skip_cli:
        bench_cli()


if __name__ == "__main__":
    main()
