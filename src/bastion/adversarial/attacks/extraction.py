"""Model extraction: train a surrogate from a victim's answers and measure fidelity against query budgets.

Strategies for choosing queries:

* ``random`` — uniform noise over the input range (the weakest adversary: no data at all).
* ``knockoff`` — natural data from the same domain, unlabeled (Orekondy et al., "Knockoff Nets", CVPR 2019,
  random sampling strategy; no reinforcement-learned selection).
* ``jacobian`` — Jacobian-based dataset augmentation (Papernot et al., "Practical Black-Box Attacks against
  Machine Learning", AsiaCCS 2017): start from a small natural seed set and grow it by
  ``x + λ·sign(∂ surrogate_{O(x)} / ∂x)`` each round, with λ's sign flipped every τ = 3 rounds.
* ``jacobian-random`` — the same with a random step length per point (``λ·U(0.1, 2)``), which defeats PRADA's
  spike of equal distances.
* ``bucket`` — uniform noise kept inside 10 buckets of a SimHash with the monitor's *old public* hyperplanes
  (seed 0): what an attacker does against a monitor whose parameters are in the code.
* ``mixup`` — convex combinations ``λ·a + (1-λ)·b`` of two natural rows, λ ~ U(0, 1) (mixup-style queries
  as in "Black-box Ripper"-era attacks; Zhang et al. 2018 for mixup itself).
* ``adaptive`` — an attacker who knows bastion's defence but not its key: it has only a small natural seed
  (``jacobian_seed_size``), knows the detector compares each query with the training rows of its predicted
  class and that exact repeats are ignored, and so only sends rows near that manifold: interpolations
  between two seed rows *of the same predicted class*, plus Jacobian steps of random small length
  (``λ·U(0.05, 0.5)``), interleaved with lightly jittered seed rows that pull the distance statistics
  back towards natural traffic.

The surrogate is a small torch MLP trained on the victim's probabilities (its labels when the victim is
label-only). Fidelity is the agreement of surrogate and victim labels on held-out inputs; accuracy is the
surrogate's accuracy on their true labels. :func:`extract` is the public entry point (the watermark
verification uses it to test whether a watermark survives extraction).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bastion.adversarial._common import check_positive, clip_of
from bastion.adversarial.attacks.membership import train_mlp
from bastion.errors import InvalidInput
from bastion.models.adapters import TorchAdapter
from bastion.models.interface import ModelAdapter, check_input, check_labels

STRATEGIES: tuple[str, ...] = (
    "random",
    "bucket",
    "knockoff",
    "jacobian",
    "jacobian-random",
    "mixup",
    "adaptive",
)


@dataclass(frozen=True)
class ExtractionPoint:
    """Surrogate quality after ``queries`` victim queries."""

    queries: int
    fidelity: float
    accuracy: float | None


@dataclass(frozen=True)
class ExtractionResult:
    """Fidelity and accuracy of the surrogate against the query budget; ``surrogate`` is the largest one."""

    strategy: str
    points: tuple[ExtractionPoint, ...]
    victim_accuracy: float | None
    label_only: bool
    queries_used: int
    surrogate: TorchAdapter = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "points": [
                {"queries": p.queries, "fidelity": p.fidelity, "accuracy": p.accuracy} for p in self.points
            ],
            "victim_accuracy": self.victim_accuracy,
            "label_only": self.label_only,
            "queries_used": self.queries_used,
        }


class _Counter:
    """Counts the examples sent to the victim; labels come back as probabilities or one-hot rows."""

    def __init__(self, victim: ModelAdapter) -> None:
        self.victim = victim
        self.used = 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.used += int(x.shape[0])
        out = np.asarray(self.victim.predict_proba(x), dtype=np.float32)
        total = out.sum(axis=1, keepdims=True)  # truncated (top-k) answers: renormalise what came back
        return np.asarray(np.where(total > 0, out / np.maximum(total, 1e-12), out), dtype=np.float32)


def _range(
    victim: ModelAdapter, data: np.ndarray | None, clip: tuple[float, float] | None
) -> tuple[float, float]:
    if clip is not None:
        return clip
    c = clip_of(victim)
    if c is not None:
        return c
    if data is not None:
        return float(data.min()), float(data.max())
    raise InvalidInput("random queries need an input range: give clip_values or data")


def _train_surrogate(
    x: np.ndarray,
    soft: np.ndarray,
    *,
    victim: ModelAdapter,
    label_only: bool,
    hidden: Sequence[int],
    steps: int,
    seed: int,
    clip: tuple[float, float] | None,
) -> TorchAdapter:
    batch_size = 64
    epochs = max(1, int(np.ceil(steps / max(1, int(np.ceil(x.shape[0] / batch_size))))))
    labels = soft.argmax(axis=1)
    module = train_mlp(
        x,
        labels,
        n_classes=victim.n_classes,
        hidden=hidden,
        epochs=epochs,
        batch_size=batch_size,
        lr=3e-3,
        seed=seed,
        soft_targets=None if label_only else soft,
        input_shape=victim.input_shape,
    )
    return TorchAdapter(module, input_shape=victim.input_shape, n_classes=victim.n_classes, clip_values=clip)


def _jacobian_queries(
    oracle: _Counter,
    seed_x: np.ndarray,
    budget: int,
    *,
    victim: ModelAdapter,
    hidden: Sequence[int],
    steps: int,
    lam: float,
    clip: tuple[float, float] | None,
    seed: int,
    random_steps: tuple[float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    import torch

    step_rng = np.random.default_rng(seed + 7)
    xs = seed_x[:budget]
    ys = oracle(xs)
    rnd = 0
    while xs.shape[0] < budget:
        sur = _train_surrogate(
            xs, ys, victim=victim, label_only=True, hidden=hidden, steps=steps, seed=seed + rnd, clip=clip
        )
        sign = -1.0 if (rnd // 3) % 2 else 1.0
        take = min(xs.shape[0], budget - xs.shape[0])
        src = xs[-take:] if take < xs.shape[0] else xs
        src_lab = ys[-take:].argmax(axis=1) if take < xs.shape[0] else ys.argmax(axis=1)
        xt = torch.from_numpy(np.ascontiguousarray(src)).requires_grad_(True)
        out = sur.logits_tensor(xt)
        chosen = out.gather(1, torch.from_numpy(src_lab.astype(np.int64))[:, None]).sum()
        (grad,) = torch.autograd.grad(chosen, xt)
        step = np.full((len(src), 1), lam)
        if random_steps is not None:
            step = lam * step_rng.uniform(random_steps[0], random_steps[1], (len(src), 1))
        step = step.reshape((len(src),) + (1,) * (src.ndim - 1))
        new = src + sign * step * np.sign(grad.numpy())
        if clip is not None:
            new = np.clip(new, clip[0], clip[1])
        new = new.astype(np.float32)
        xs = np.concatenate([xs, new])
        ys = np.concatenate([ys, oracle(new)])
        rnd += 1
    return xs, ys


def _bucket_queries(
    rng: np.random.Generator, n: int, shape: Sequence[int], lo: float, hi: float, buckets: int = 10
) -> np.ndarray:
    """Uniform noise in ``buckets`` SimHash buckets of the monitor's former public hyperplanes (seed 0)."""
    d = int(np.prod(shape))
    planes = np.random.default_rng(0).standard_normal((d, 6)).astype(np.float32)
    weights = 1 << np.arange(6)
    center = (lo + hi) / 2.0
    allowed: set[int] = set()
    out: list[np.ndarray] = []
    while len(out) < n:
        cand = rng.uniform(lo, hi, size=(4 * n, d)).astype(np.float32)
        codes = (((cand - center) @ planes) > 0).astype(np.int64) @ weights
        for row, code in zip(cand, codes, strict=True):
            if len(allowed) < buckets:
                allowed.add(int(code))
            if int(code) in allowed:
                out.append(row)
                if len(out) == n:
                    break
    return np.stack(out).reshape((n, *shape))


def _adaptive_queries(
    oracle: _Counter,
    seed_x: np.ndarray,
    budget: int,
    *,
    victim: ModelAdapter,
    hidden: Sequence[int],
    steps: int,
    lam: float,
    clip: tuple[float, float] | None,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Near-manifold synthetic queries (see the module docstring): same-class interpolation, small random
    Jacobian steps, and jittered seed rows, one third each."""
    rng = np.random.default_rng(seed + 11)
    xs = seed_x[:budget]
    ys = oracle(xs)
    spread = float(np.std(seed_x)) or 1.0
    while xs.shape[0] < budget:
        take = min(max(len(seed_x), 30), budget - xs.shape[0])
        labels = ys[: len(seed_x)].argmax(axis=1)
        parts: list[np.ndarray] = []
        for _ in range(take):
            kind = rng.integers(0, 3)
            a = int(rng.integers(0, len(seed_x)))
            if kind == 0:
                same = np.flatnonzero(labels == labels[a])
                b = int(rng.choice(same))
                t = rng.uniform(0.2, 0.8)
                parts.append(t * seed_x[a] + (1 - t) * seed_x[b])
            elif kind == 1:
                step = lam * rng.uniform(0.05, 0.5)
                parts.append(
                    xs[int(rng.integers(0, len(xs)))] + step * np.sign(rng.standard_normal(seed_x.shape[1:]))
                )
            else:
                parts.append(seed_x[a] + 0.02 * spread * rng.standard_normal(seed_x.shape[1:]))
        new = np.stack(parts).astype(np.float32)
        if clip is not None:
            new = np.clip(new, clip[0], clip[1]).astype(np.float32)
        xs = np.concatenate([xs, new])
        ys = np.concatenate([ys, oracle(new)])
    return xs, ys


def extract(
    *,
    victim: ModelAdapter,
    strategy: str = "knockoff",
    budgets: Sequence[int] = (100, 300, 1000),
    data: Any = None,
    eval_x: Any,
    eval_y: Any = None,
    clip_values: tuple[float, float] | None = None,
    hidden: Sequence[int] = (128,),
    train_steps: int = 600,
    jacobian_lambda: float = 0.1,
    jacobian_seed_size: int | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    reference: ModelAdapter | None = None,
) -> ExtractionResult:
    """Steal ``victim`` with ``strategy`` and report surrogate fidelity/accuracy at each query budget.

    ``data`` is the attacker's unlabeled natural data (needed by ``knockoff`` and ``jacobian``); ``eval_x``
    (and optionally ``eval_y``) are held-out inputs to measure fidelity (and accuracy) on. ``reference`` is
    the clean model to measure fidelity against when ``victim`` is a defended endpoint (default: ``victim``).
    """
    if strategy not in STRATEGIES:
        raise InvalidInput(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    plan = sorted({check_positive("budget", b) for b in budgets})
    if not plan:
        raise InvalidInput("give at least one query budget")
    ex = check_input(eval_x, victim.input_shape, name="eval_x")
    ey = None if eval_y is None else check_labels(eval_y, ex.shape[0], victim.n_classes, name="eval_y")
    pool = None if data is None else check_input(data, victim.input_shape, name="data")
    if strategy in ("knockoff", "jacobian", "jacobian-random", "mixup", "adaptive") and pool is None:
        raise InvalidInput(f"the {strategy} strategy needs natural data (data=...)")
    label_only = bool(getattr(victim, "label_only", False))
    clip = clip_values or clip_of(victim)
    rng = np.random.default_rng(seed)
    oracle = _Counter(victim)
    top = plan[-1]
    if strategy == "random":
        lo, hi = _range(victim, pool if pool is not None else ex, clip)
        qx = rng.uniform(lo, hi, size=(top, *victim.input_shape)).astype(np.float32)
        qy = oracle(qx)
    elif strategy == "knockoff":
        assert pool is not None
        idx = rng.permutation(pool.shape[0])
        if top > pool.shape[0]:
            idx = np.concatenate([idx, rng.integers(0, pool.shape[0], size=top - pool.shape[0])])
        qx = pool[idx[:top]]
        qy = oracle(qx)
    elif strategy == "bucket":
        lo, hi = _range(victim, pool if pool is not None else ex, clip)
        qx = _bucket_queries(rng, top, victim.input_shape, lo, hi)
        qy = oracle(qx)
    elif strategy == "mixup":
        assert pool is not None
        first, second = rng.integers(0, pool.shape[0], top), rng.integers(0, pool.shape[0], top)
        lam = rng.uniform(0.0, 1.0, (top,) + (1,) * (pool.ndim - 1)).astype(np.float32)
        qx = (lam * pool[first] + (1.0 - lam) * pool[second]).astype(np.float32)
        qy = oracle(qx)
    else:
        assert pool is not None
        n_seed = jacobian_seed_size or min(pool.shape[0], max(10 * victim.n_classes, plan[0] // 2))
        seed_x = pool[rng.permutation(pool.shape[0])[:n_seed]]
        if strategy == "adaptive":
            qx, qy = _adaptive_queries(
                oracle,
                seed_x,
                top,
                victim=victim,
                hidden=hidden,
                steps=max(100, train_steps // 3),
                lam=jacobian_lambda,
                clip=clip,
                seed=seed,
            )
        else:
            qx, qy = _jacobian_queries(
                oracle,
                seed_x,
                top,
                victim=victim,
                hidden=hidden,
                steps=max(100, train_steps // 3),
                lam=jacobian_lambda,
                clip=clip,
                seed=seed,
                random_steps=(0.1, 2.0) if strategy == "jacobian-random" else None,
            )
    victim_pred = (reference or victim).predict(ex)
    points = []
    surrogate: TorchAdapter | None = None
    for i, b in enumerate(plan):
        surrogate = _train_surrogate(
            qx[:b],
            qy[:b],
            victim=victim,
            label_only=label_only,
            hidden=hidden,
            steps=train_steps,
            seed=seed + 100 + i,
            clip=clip,
        )
        pred = surrogate.predict(ex)
        points.append(
            ExtractionPoint(
                queries=int(b),
                fidelity=float((pred == victim_pred).mean()),
                accuracy=None if ey is None else float((pred == ey).mean()),
            )
        )
        if progress is not None:
            progress(i + 1, len(plan))
    assert surrogate is not None
    return ExtractionResult(
        strategy=strategy,
        points=tuple(points),
        victim_accuracy=None if ey is None else float((victim_pred == ey).mean()),
        label_only=label_only,
        queries_used=oracle.used,
        surrogate=surrogate,
    )


__all__ = ["STRATEGIES", "ExtractionPoint", "ExtractionResult", "extract"]
