"""DP-SGD figures for bench_privacy.py: bastion's DP-SGD epoch time vs non-private and vs raw Opacus.

Anchor: raw Opacus (``PrivacyEngine().make_private`` on the same module, optimizer and loader, driven by the
same training loop). The three variants are interleaved epoch by epoch in rotating order so the load on the
shared machine hits them alike. The figure is the median CPU time of this process per epoch (other jobs on a
shared machine disturb it far less than wall time); the wall-clock median is printed beside it. Python
function calls per epoch (cProfile) show the wrapper's per-step work independently of the machine's load.

Run alone: ``.venv/bin/python benchmarks/_privacy_dp.py [--dp-dataset digits] [--dp-epochs 30]
[--dp-batch-size 128] [--dp-hidden 64]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dp-dataset", dest="dp_dataset", default="digits")
    parser.add_argument(
        "--dp-epochs", dest="dp_epochs", type=int, default=30, help="timed epochs per variant"
    )
    parser.add_argument("--dp-batch-size", dest="dp_batch_size", type=int, default=128)
    parser.add_argument("--dp-hidden", dest="dp_hidden", type=int, default=64)


def _setup(variant: str, ds: Any, *, batch_size: int, hidden: int, sigma: float) -> tuple[Any, Any, Any]:
    import torch
    from opacus import PrivacyEngine

    from bastion.models.recipes import build_mlp, make_loader
    from bastion.privacy import make_private

    model = build_mlp(n_features=ds.n_features, n_classes=ds.n_classes, hidden=(hidden, hidden), seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    loader = make_loader(ds.x_train, ds.y_train, batch_size=batch_size, seed=0)
    if variant == "non-private":
        return model, opt, loader
    if variant == "opacus":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            engine = PrivacyEngine(accountant="rdp")
            m, o, dl = engine.make_private(
                module=model, optimizer=opt, data_loader=loader, noise_multiplier=sigma, max_grad_norm=1.0
            )
        return m, o, dl
    private = make_private(
        module=model,
        optimizer=opt,
        data_loader=loader,
        noise_multiplier=sigma,
        delta=1e-5,
        max_grad_norm=1.0,
        epochs=1,
    )
    return private.module, private.optimizer, private.data_loader


def _epoch(part: tuple[Any, Any, Any]) -> tuple[float, float]:
    """One plain training epoch; returns (CPU seconds of this process, wall seconds)."""
    import torch

    m, o, dl = part
    loss_fn = torch.nn.CrossEntropyLoss()
    c0, w0 = time.process_time(), time.perf_counter()
    for xb, yb in dl:
        o.zero_grad(set_to_none=True)
        out = m(xb)
        (loss_fn(out, yb) if len(yb) else out.sum() * 0.0).backward()
        o.step()
    return time.process_time() - c0, time.perf_counter() - w0


def _python_calls(part: tuple[Any, Any, Any]) -> int:
    """Function calls in one epoch (cProfile): a load-independent measure of the wrapper's per-step work."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    _epoch(part)
    prof.disable()
    return int(pstats.Stats(prof).total_calls)  # type: ignore[attr-defined]


def run(args: Any) -> dict[str, Any]:
    """Measure and print; returns the figures as a dict."""
    import torch

    from bastion.models.data import load_dataset
    from bastion.privacy.training import DPSettings, train_recipe

    torch.set_num_threads(1)
    name = getattr(args, "dp_dataset", "digits")
    epochs = int(getattr(args, "dp_epochs", 30))
    batch_size = int(getattr(args, "dp_batch_size", 128))
    hidden = int(getattr(args, "dp_hidden", 64))
    ds = load_dataset(name)
    sigma = 1.0
    variants = ("non-private", "opacus", "bastion")
    parts = {v: _setup(v, ds, batch_size=batch_size, hidden=hidden, sigma=sigma) for v in variants}
    cpu: dict[str, list[float]] = {v: [] for v in variants}
    wall: dict[str, list[float]] = {v: [] for v in variants}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        for v in variants:  # warm-up epoch (allocations, hooks)
            _epoch(parts[v])
        for i in range(epochs):
            for v in variants[i % 3 :] + variants[: i % 3]:  # rotate the order: no variant always runs first
                c, w = _epoch(parts[v])
                cpu[v].append(c)
                wall[v].append(w)
        calls = {v: _python_calls(parts[v]) for v in ("opacus", "bastion")}
    # CPU time of this process is far less disturbed than wall time by other jobs on a shared machine.
    med = {v: statistics.median(ts) for v, ts in cpu.items()}
    medians = {v: statistics.median(ts) for v, ts in wall.items()}
    overhead = med["bastion"] / med["opacus"] - 1.0
    t0 = time.perf_counter()
    rep = train_recipe(dataset=ds, dp=DPSettings(epsilon=3.0, delta=1e-5))
    recipe_seconds = time.perf_counter() - t0
    result = {
        "dataset": name,
        "n_train": ds.n_train,
        "batch_size": batch_size,
        "hidden": [hidden, hidden],
        "timed_epochs": epochs,
        "epoch_cpu_s_median": med,
        "epoch_wall_s_median": medians,
        "dp_vs_nonprivate": med["bastion"] / med["non-private"],
        "opacus_vs_nonprivate": med["opacus"] / med["non-private"],
        "bastion_overhead_vs_opacus": overhead,
        "python_calls_per_epoch": calls,
        "recipe_eps3": {
            "accuracy": rep.accuracy,
            "epsilon": rep.epsilon,
            "epsilon_prv": rep.epsilon_prv,
            "noise_multiplier": rep.noise_multiplier,
            "steps": rep.steps,
            "seconds_total": recipe_seconds,
        },
    }
    ms = {v: med[v] * 1e3 for v in variants}
    print(
        f"DP-SGD on {name} (n={ds.n_train}, batch {batch_size}, MLP {hidden}x{hidden}), "
        f"median of {epochs} epochs, CPU time"
    )
    print(f"  anchor  raw Opacus      {ms['opacus']:8.1f} ms CPU/epoch  1.00")
    print(f"  bastion make_private    {ms['bastion']:8.1f} ms CPU/epoch  {ms['bastion'] / ms['opacus']:.3f}")
    print(
        f"  non-private             {ms['non-private']:8.1f} ms CPU/epoch  "
        f"{ms['non-private'] / ms['opacus']:.3f}"
    )
    print(f"  DP-SGD / non-private: {result['dp_vs_nonprivate']:.2f}x; bastion vs Opacus: {overhead:+.1%}")
    print(f"  Python calls per epoch: Opacus {calls['opacus']}, bastion {calls['bastion']}")
    mo = medians["bastion"] / medians["opacus"] - 1.0
    print(
        f"  (wall-clock medians: Opacus {medians['opacus'] * 1e3:.1f} ms, "
        f"bastion {medians['bastion'] * 1e3:.1f} ms, {mo:+.1%})"
    )
    print(
        f"  recipe at ε=3 (δ=1e-5): accuracy {rep.accuracy:.4f}, ε_RDP {rep.epsilon:.3f}, "
        f"ε_PRV {rep.epsilon_prv:.3f}, σ {rep.noise_multiplier:.3f}, {rep.steps} steps, "
        f"{recipe_seconds:.2f} s total"
    )
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    run(parser.parse_args())
