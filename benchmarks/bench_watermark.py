"""Watermark robustness and cost on digits (plain script; prints a Markdown table).

Anchors, measured in the same run:

* detection: the watermarked model as trained (trigger accuracy / p-value) and the same architecture trained
  without the watermark (the chance level);
* cost: one plain ``predict_proba`` of the served model per request, against which the API watermark's
  ``apply`` is reported as a ratio.

Rows: the trigger-set watermark after fine-tuning on clean data and after magnitude pruning, independently
trained models, a surrogate extracted from the watermarked model (trigger set), and surrogates extracted
through the API watermark (knockoff on distinct natural queries, Jacobian augmentation, random queries).

    .venv/bin/python benchmarks/bench_watermark.py            # full size
    .venv/bin/python benchmarks/bench_watermark.py --quick    # fewer seeds, shorter surrogate training
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch

from bastion.adversarial.attacks.extraction import extract
from bastion.models.adapters import CallableAdapter, TorchAdapter
from bastion.models.data import load_dataset
from bastion.models.recipes import build_mlp, evaluate, train_model
from bastion.watermark import (
    ApiWatermark,
    TrainingWatermark,
    WatermarkKey,
    adapter_for,
    embed,
    fine_tune,
    prune_magnitude,
    verify_marks,
    verify_triggers,
)


def _train(ds, seed, hooks=()):
    model = build_mlp(n_features=ds.n_features, n_classes=ds.n_classes, hidden=(64,), seed=seed)
    acc = train_model(model=model, dataset=ds, epochs=20, lr=0.05, seed=seed, hooks=hooks).accuracy
    return model, acc


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = (1, 2, 3) if args.quick else (1, 2, 3, 4, 5)
    steps = 1500 if args.quick else 3000
    ds = load_dataset("digits")
    key = WatermarkKey.from_secret(bytes(range(32)))
    rows: list[tuple[str, str, str, str]] = []

    def row(name: str, v, acc: float | None, note: str = "") -> None:
        acc_s = "" if acc is None else f"{acc:.4f}"
        rows.append(
            (name, f"{v.hits}/{v.queries} ({v.trigger_accuracy:.2f})", f"{v.p_value:.2g}", acc_s + note)
        )

    wm = TrainingWatermark(key=key, dataset=ds)
    ts = wm.trigger_set

    def check(module):
        return verify_triggers(model=adapter_for(module, ts.spec), trigger_set=ts)

    clean, clean_acc = _train(ds, 0)
    marked, marked_acc = _train(ds, 0, hooks=(wm.hook,))
    row("anchor: same model, no watermark (chance)", check(clean), clean_acc)
    row(
        "anchor: watermarked while training (hook)",
        check(marked),
        marked_acc,
        f" (drop {100 * (clean_acc - marked_acc):.2f} pp)",
    )
    for s in seeds:
        other, acc = _train(ds, s)
        row(f"independent model, seed {s}", check(other), acc)

    fine = copy.deepcopy(clean)
    res = embed(model=fine, dataset=ds, key=key)
    row(
        "watermarked by fine-tuning (`embed`)",
        res.verification,
        res.accuracy_after,
        f" (drop {100 * res.accuracy_drop:.2f} pp)",
    )

    for epochs in (5, 10, 20):
        tuned = copy.deepcopy(marked)
        acc = fine_tune(tuned, ds, epochs=epochs, lr=0.02, seed=11)
        row(f"hook model fine-tuned on clean data, {epochs} epochs (lr 0.02)", check(tuned), acc)
    tuned = copy.deepcopy(marked)
    acc = fine_tune(tuned, ds, epochs=10, lr=0.05, seed=11)
    row("hook model fine-tuned on clean data, 10 epochs (lr 0.05)", check(tuned), acc)
    for frac in (0.3, 0.5, 0.7):
        pruned = copy.deepcopy(marked)
        prune_magnitude(pruned, fraction=frac)
        row(
            f"hook model, {int(frac * 100)} % magnitude pruning",
            check(pruned),
            evaluate(pruned, ds.x_test, ds.y_test),
        )

    pool = np.concatenate([ds.x_train, ds.x_test])
    marked_victim = TorchAdapter(marked, input_shape=(64,), n_classes=10, clip_values=(0.0, 1.0))
    stolen = extract(
        victim=marked_victim,
        strategy="knockoff",
        budgets=(len(pool),),
        data=pool,
        eval_x=ds.x_test,
        eval_y=ds.y_test,
        hidden=(256,),
        train_steps=steps,
        seed=0,
    )
    row(
        "surrogate of the hook model (knockoff, 1797 queries): trigger set",
        check(stolen.surrogate.module),
        stolen.points[-1].accuracy,
        f" (fidelity {stolen.points[-1].fidelity:.3f})",
    )

    victim = TorchAdapter(clean, input_shape=(64,), n_classes=10, clip_values=(0.0, 1.0))
    for strategy, budget in (("knockoff", len(pool)), ("jacobian", 4000), ("random", 5000)):
        api_wm = ApiWatermark(key, rate=0.005)
        api = CallableAdapter(
            lambda q, w=api_wm: w.apply(q, victim.predict_proba(q)), n_classes=10, input_shape=(64,)
        )
        data = ds.x_train if strategy == "jacobian" else pool
        res_x = extract(
            victim=api,
            strategy=strategy,
            budgets=(budget,),
            data=data,
            eval_x=ds.x_test,
            eval_y=ds.y_test,
            hidden=(256,),
            train_steps=steps,
            seed=0,
        )
        marks = api_wm.marks()
        row(
            f"API watermark (0.5 %), surrogate via {strategy}, {budget} queries",
            verify_marks(model=res_x.surrogate, marks=marks, key=key),
            res_x.points[-1].accuracy,
            f" (fidelity {res_x.points[-1].fidelity:.3f})",
        )
        if strategy == "knockoff":
            plain = extract(
                victim=victim,
                strategy=strategy,
                budgets=(budget,),
                data=data,
                eval_x=ds.x_test,
                eval_y=ds.y_test,
                hidden=(256,),
                train_steps=steps,
                seed=0,
            )
            row(
                "  same attack without the API watermark, tested on the same marks",
                verify_marks(model=plain.surrogate, marks=marks, key=key),
                plain.points[-1].accuracy,
            )

    print("| suspect | trigger hits (accuracy) | p-value | clean test accuracy |")
    print("|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")

    # cost: API watermark per request vs one plain inference (the anchor)
    x1 = ds.x_test[:1]
    api_wm = ApiWatermark(key, rate=0.005)
    n = 2000
    t0 = time.perf_counter()
    for _ in range(n):
        p = victim.predict_proba(x1)
    t_infer = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    for _ in range(n):
        api_wm.apply(x1, p)
    t_apply = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    verify_triggers(model=adapter_for(marked, ts.spec), trigger_set=ts)
    t_verify = time.perf_counter() - t0
    print()
    print("| measurement | time | ratio vs anchor |")
    print("|---|---|---|")
    print(f"| anchor: predict_proba, batch of 1 | {t_infer * 1e6:.0f} µs | 1.00 |")
    print(f"| ApiWatermark.apply, batch of 1 | {t_apply * 1e6:.0f} µs | {t_apply / t_infer:.2f} |")
    print(f"| verify (50 triggers, local model) | {t_verify * 1e3:.1f} ms | {t_verify / t_infer:.0f} |")


if __name__ == "__main__":
    main()
