"""Adversarial audit benchmark.

1. PGD-40 (L∞, ε = 0.1, step 2.5ε/40, one random start) on the digits test split (450 rows, scikit-learn's
   built-in digits, split with seed 0): bastion vs IBM ART 1.20 on the same model, the same inputs and the
   same true labels ``y``, in the same run (anchor: ART), for two models: an MLP(64) and a small CNN (two
   3×3 conv layers on the 8×8 images). ART runs with its best settings for this size: the whole set as one
   batch, float32 inputs, labels given (without ``y`` ART attacks the model's own predictions, a weaker
   attack). Strength first: robust accuracy over ``--seeds`` random starts (mean and sample standard
   deviation; ART's start is drawn from numpy's global generator, seeded the same). Then speed: the best of
   ``--repeats`` timed runs, as wall time and as process CPU time (the steadier figure on a shared
   machine); the two tools alternate run by run.
   The MLP is also timed with a no-op forward hook on its first layer, which sends bastion's PGD down the
   autograd path (the hand-written Linear/ReLU pass runs only for exact layer types without hooks): the
   ratio is what the fast path buys.
2. LiRA on the demo model (``--lira``): the audit's membership family at the ``standard`` budget (16
   shadows, 450 members + 450 non-members) over ``--seeds`` seeds, shadows trained the way the audit does
   now (random halves of every known row: 898 rows) and the way it did before (random halves of the
   900-row evaluation sample: 450 rows); AUC and TPR at 1 % / 0.1 % FPR, mean ± sd, for the loss threshold,
   offline and online LiRA.
3. Wall time of ``bastion audit --demo --budget quick`` (a fresh process: imports, demo training, all four
   attack families, report writing). Goal: under 2 minutes on 2 cores.

Run: ``python benchmarks/bench_audit.py [--repeats 10] [--seeds 5] [--threads 1] [--skip-cli] [--lira]``
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def _best_pair(fa: Callable[[], None], fb: Callable[[], None], repeats: int) -> tuple[float, ...]:
    """Best wall and CPU time of each function, run alternately."""
    wall = {0: [], 1: []}  # type: dict[int, list[float]]
    cpu = {0: [], 1: []}  # type: dict[int, list[float]]
    for _ in range(repeats):
        for k, fn in enumerate((fa, fb)):
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            cpu[k].append(time.process_time() - c0)
            wall[k].append(time.perf_counter() - w0)
    return min(wall[0]), min(cpu[0]), min(wall[1]), min(cpu[1])


def _train_cnn(x: np.ndarray, y: np.ndarray, *, epochs: int = 20, seed: int = 0):  # type: ignore[no-untyped-def]
    import torch

    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(32 * 4 * 4, 10),
    )
    xt = torch.from_numpy(x.reshape(-1, 1, 8, 8).astype(np.float32))
    yt = torch.from_numpy(y.astype(np.int64))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(xt.shape[0], generator=gen).split(64):
            loss = torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return net.eval()


def _pgd_pair(name: str, module, input_shape: tuple[int, ...], x, y, repeats: int, seeds: int) -> float:  # type: ignore[no-untyped-def]
    import torch
    from art.attacks.evasion import ProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    from bastion.adversarial.attacks import evasion as ev
    from bastion.models import TorchAdapter

    model = TorchAdapter(module, input_shape=input_shape, n_classes=10, clip_values=(0.0, 1.0))
    x = np.ascontiguousarray(x.reshape((-1, *input_shape)), dtype=np.float32)
    n = x.shape[0]
    eps, steps = 0.1, 40
    clf = PyTorchClassifier(
        model=module,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=input_shape,
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
    seed = {"value": 0}

    def run_bastion() -> np.ndarray:
        return ev.pgd(
            model, x, y, eps=eps, steps=steps, step_size=2.5 * eps / steps, batch_size=n, seed=seed["value"]
        )

    def run_art() -> np.ndarray:
        np.random.seed(seed["value"])
        return np.asarray(art.generate(x, y=y), dtype=np.float32)

    acc_b, acc_a = [], []
    for s in range(seeds):
        seed["value"] = s
        acc_b.append(ev.accuracy(model, run_bastion(), y))
        acc_a.append(ev.accuracy(model, run_art(), y))
    seed["value"] = 0
    wb, cb, wa, ca = _best_pair(run_bastion, run_art, repeats)
    clean = ev.accuracy(model, x, y)
    mb, sb, ma, sa = np.mean(acc_b), np.std(acc_b, ddof=1), np.mean(acc_a), np.std(acc_a, ddof=1)
    print(
        f"PGD-40 on digits {name}, {n} examples, eps={eps}, clean accuracy {clean:.3f}; robust accuracy "
        f"over {seeds} seeds (mean ± sd), time best of {repeats}"
    )
    print(f"  bastion: {n / wb:8.0f} ex/s wall, {n / cb:8.0f} ex/s CPU   robust accuracy {mb:.4f} ± {sb:.4f}")
    print(f"  ART (y): {n / wa:8.0f} ex/s wall, {n / ca:8.0f} ex/s CPU   robust accuracy {ma:.4f} ± {sa:.4f}")
    verdict = "holds" if mb <= ma + 0.005 else "DOES NOT HOLD"
    print(
        f"  strength: bastion mean - ART mean = {100 * (mb - ma):+.2f} pp (must be <= +0.5 pp: {verdict}); "
        f"speed-up vs ART: {ca / cb:.1f}x CPU, {wa / wb:.1f}x wall"
    )
    if ev._mlp_ops(model) is not None:
        import copy

        twin = copy.deepcopy(module)  # the same weights; a no-op hook sends PGD down the autograd path
        twin[1].register_forward_hook(lambda _m, _i, out: out)
        hooked = TorchAdapter(twin, input_shape=input_shape, n_classes=10, clip_values=(0.0, 1.0))
        assert ev._mlp_ops(hooked) is None and ev._mlp_ops(model) is not None

        def run_autograd() -> None:
            ev.pgd(hooked, x, y, eps=eps, steps=steps, step_size=2.5 * eps / steps, batch_size=n)

        _, cf, _, cg = _best_pair(run_bastion, run_autograd, repeats)
        print(
            f"  fast path: {n / cf:8.0f} ex/s CPU; autograd path (forward hook): {n / cg:8.0f} ex/s CPU "
            f"-> the fast path is {cg / cf:.2f}x"
        )
    return ca / cb


def bench_pgd(repeats: int, threads: int, seeds: int) -> None:
    import torch

    from bastion.adversarial.attacks.membership import mlp_shadow_trainer
    from bastion.models.data import load_dataset

    torch.set_num_threads(threads)
    print(f"torch threads={threads}")
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
    mlp = trainer(ds.x_train, ds.y_train, 0)
    _pgd_pair("MLP(64)", mlp.module, (64,), ds.x_test, ds.y_test, repeats, seeds)
    cnn = _train_cnn(ds.x_train, ds.y_train)
    _pgd_pair("CNN(conv16-conv32-pool-fc)", cnn, (1, 8, 8), ds.x_test, ds.y_test, repeats, seeds)


def bench_lira(seeds: int) -> None:
    import torch

    from bastion.adversarial.attacks import membership as mi
    from bastion.adversarial.audit import BUDGETS, demo_target, run_audit

    torch.set_num_threads(1)
    target = demo_target(seed=0)
    assert target.x_train is not None and target.y_train is not None and target.trainer is not None
    b = BUDGETS["standard"]
    n_side = min(b.mia_per_side, len(target.x_train), len(target.x))
    rows: dict[str, dict[str, list[float]]] = {}

    def add(setup: str, name: str, auc: float, tpr1: float, tpr01: float) -> None:
        d = rows.setdefault(f"{setup:<24} {name:<10}", {"auc": [], "tpr1": [], "tpr01": []})
        d["auc"].append(auc)
        d["tpr1"].append(tpr1)
        d["tpr01"].append(tpr01)

    for seed in range(seeds):
        t0 = time.perf_counter()
        m = (
            run_audit(target=target, attacks=["membership"], budget="standard", seed=seed)
            .sections["membership"]
            .metrics
        )
        new_s = time.perf_counter() - t0
        for key, name in (
            ("loss_threshold", "threshold"),
            ("lira_offline", "offline"),
            ("lira_online", "online"),
        ):
            add(
                "pool, 898-row shadows",
                name,
                m[f"{key}_auc"],
                m[f"{key}_tpr_at_1_fpr"],
                m[f"{key}_tpr_at_0_1_fpr"],
            )
        # the previous procedure: shadows on random halves of the evaluation sample only
        rng = np.random.default_rng(seed)
        mi_idx = rng.permutation(len(target.x_train))[:n_side]
        mo_idx = rng.permutation(len(target.x))[:n_side]
        x = np.concatenate([target.x_train[mi_idx], target.x[mo_idx]])
        yy = np.concatenate([target.y_train[mi_idx], target.y[mo_idx]])
        member = np.r_[np.ones(n_side, bool), np.zeros(n_side, bool)]
        t0 = time.perf_counter()
        old = mi.lira(
            target.model, x, yy, member=member, train_shadow=target.trainer, n_shadows=b.n_shadows, seed=seed
        )
        old_s = time.perf_counter() - t0
        for name, r in (("offline", old.offline), ("online", old.online)):
            add("sample, 450-row shadows", name, r.auc, r.tpr_at_1_fpr, r.tpr_at_0_1_fpr)
        print(f"  seed {seed}: membership family {new_s:.1f} s (new), LiRA alone {old_s:.1f} s (old)")
    print(
        f"LiRA on the demo MLP (target trained on {len(target.x_train)} rows), {b.n_shadows} shadows, "
        f"{n_side} members + {n_side} non-members, {seeds} seeds (mean ± sd):"
    )
    print(f"  {'shadows, attack':<35} {'AUC':>15} {'TPR@1%FPR':>15} {'TPR@0.1%FPR':>15}")
    for label, d in sorted(rows.items()):
        cells = " ".join(
            f"{np.mean(v):7.3f} ± {np.std(v, ddof=1) if len(v) > 1 else 0.0:5.3f}" for v in d.values()
        )
        print(f"  {label:<35} {cells}")


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
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-cli", action="store_true")
    parser.add_argument("--lira", action="store_true", help="also run the LiRA comparison (slow)")
    args = parser.parse_args()
    bench_pgd(args.repeats, args.threads, args.seeds)
    if args.lira:
        bench_lira(args.seeds)
    if not args.skip_cli:
        bench_cli()


if __name__ == "__main__":
    main()
