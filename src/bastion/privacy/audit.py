"""Empirical privacy audit of DP-SGD in one training run.

Implements Steinke, Nasr and Jagielski, "Privacy Auditing with One (1) Training Run" (NeurIPS 2023):

1. ``m`` canaries; each is included in training independently with probability 1/2 (the secret ``S``).
2. Train once with DP-SGD, exactly as bastion trains (``make_private`` over Opacus, same clipping, noise and
   Poisson sampling as the claimed run).
3. Score every canary, guess "included" for the ``k`` highest scores and "excluded" for the ``k`` lowest,
   abstain on the rest; count the correct guesses ``v`` among ``r = 2k``.
4. Under (ε, δ)-DP the number of correct guesses is dominated by ``Binomial(r, e^ε / (1 + e^ε))`` plus a δ
   term (their Theorem 5.2 / Algorithm 2: p-value ``β + 2·m·δ·α``). The largest ε whose p-value is below
   ``1 − confidence`` is a lower bound ε̂ on the true ε at that confidence.

Canaries are the paper's white-box *gradient* (Dirac) canaries: canary ``i`` contributes the per-example
gradient ``C · e_{j_i}`` (norm exactly the clipping norm ``C``) on its own coordinate ``j_i`` of the first
layer, whenever Poisson sampling picks it. The coordinates belong to extra input columns that are zero for
every real example, so real gradients never touch them and the canary's score is simply how far its
coordinate moved: ``score_i = −(θ_T − θ_0)[j_i]``. The canary gradients enter Opacus' optimizer through the
per-sample gradients, before clipping and noise, so a broken noise or clipping path shows up in ε̂.

Deviations: several guess sizes ``k`` are tried with a Bonferroni correction (the paper fixes one ``k``), so
the reported ε̂ stays a valid lower bound at the stated confidence. Only the DP-SGD mechanism is audited, not
the data loading around it.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bastion.errors import InvalidInput
from bastion.models.data import Dataset
from bastion.privacy.dp import check_delta, check_epsilon, make_private

log = logging.getLogger(__name__)

DEFAULT_CANARIES = 1000
DEFAULT_K_FRACTIONS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5)


def p_value(*, m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    """P[≥ ``v`` correct of ``r`` guesses] on ``m`` canaries under (ε, δ)-DP (the paper's p-value)."""
    from scipy import stats

    if not 0 <= v <= r <= m:
        raise InvalidInput(f"need 0 ≤ v ≤ r ≤ m, got v={v}, r={r}, m={m}")
    q = 1.0 / (1.0 + math.exp(-epsilon))
    beta = float(stats.binom.sf(v - 1, r, q))  # P[Binomial(r, q) ≥ v]
    alpha = 0.0
    if delta > 0 and v > 0:
        pmf = stats.binom.pmf(np.arange(v - 1, -1, -1), r, q)  # P[Bin = v-1], P[Bin = v-2], ..., P[Bin = 0]
        cumulative = np.cumsum(pmf)  # P[v > Bin ≥ v - i] for i = 1..v
        alpha = float(np.max(cumulative / np.arange(1, v + 1)))
    return min(1.0, beta + alpha * delta * 2 * m)


def epsilon_lower_bound(*, m: int, r: int, v: int, delta: float, confidence: float = 0.95) -> float:
    """The largest ε rejected at ``confidence`` given ``v`` correct of ``r`` guesses on ``m`` canaries."""
    if not 0 < confidence < 1:
        raise InvalidInput(f"confidence must be in (0, 1), got {confidence}")
    check_delta(delta, allow_zero=True)
    level = 1.0 - confidence
    if r == 0 or p_value(m=m, r=r, v=v, epsilon=0.0, delta=delta) >= level:
        return 0.0
    lo, hi = 0.0, 1.0
    while p_value(m=m, r=r, v=v, epsilon=hi, delta=delta) < level:
        lo, hi = hi, hi * 2
        if hi > 1e3:
            return lo
    for _ in range(50):
        mid = (lo + hi) / 2
        if p_value(m=m, r=r, v=v, epsilon=mid, delta=delta) < level:
            lo = mid
        else:
            hi = mid
    return lo


@dataclass(frozen=True)
class AuditResult:
    """ε̂ (a lower bound at ``confidence``) beside the claimed ε; ``consistent`` is ε̂ ≤ claimed ε."""

    epsilon_lower_bound: float
    claimed_epsilon: float
    delta: float
    confidence: float
    canaries: int
    included: int
    guesses: int
    correct: int
    k: int
    noise_multiplier: float
    effective_noise_multiplier: float
    sample_rate: float
    steps: int
    accuracy: float
    seconds: float
    dataset: str
    ks_tried: tuple[int, ...] = field(default=())

    @property
    def consistent(self) -> bool:
        return self.epsilon_lower_bound <= self.claimed_epsilon

    def to_dict(self) -> dict[str, Any]:
        return {
            "epsilon_lower_bound": self.epsilon_lower_bound,
            "claimed_epsilon": self.claimed_epsilon,
            "consistent": self.consistent,
            "delta": self.delta,
            "confidence": self.confidence,
            "canaries": self.canaries,
            "included": self.included,
            "guesses": self.guesses,
            "correct": self.correct,
            "k": self.k,
            "ks_tried": list(self.ks_tried),
            "noise_multiplier": self.noise_multiplier,
            "effective_noise_multiplier": self.effective_noise_multiplier,
            "sample_rate": self.sample_rate,
            "steps": self.steps,
            "accuracy": self.accuracy,
            "seconds": self.seconds,
            "dataset": self.dataset,
        }


def best_guess_bound(
    *,
    scores: np.ndarray,
    included: np.ndarray,
    delta: float,
    confidence: float = 0.95,
    k_fractions: Sequence[float] = DEFAULT_K_FRACTIONS,
) -> tuple[float, int, int, int, tuple[int, ...]]:
    """(ε̂, k, r, v, ks) for the best of several guess sizes, Bonferroni-corrected over the sizes tried."""
    m = len(scores)
    ks = tuple(sorted({max(1, int(f * m)) for f in k_fractions if 0 < f <= 0.5}))
    if not ks:
        raise InvalidInput("no valid guess size: k fractions must be in (0, 0.5]")
    corrected = 1.0 - (1.0 - confidence) / len(ks)
    order = np.argsort(-scores, kind="stable")
    best = (0.0, ks[0], 2 * ks[0], 0)
    for k in ks:
        top, bottom = order[:k], order[m - k :]
        v = int(included[top].sum() + (~included[bottom]).sum())
        eps = epsilon_lower_bound(m=m, r=2 * k, v=v, delta=delta, confidence=corrected)
        if eps > best[0] or (eps == best[0] and k == ks[0]):
            best = (eps, k, 2 * k, v)
    return (*best, ks)


def audit_dp_sgd(
    *,
    dataset: Dataset,
    epsilon: float,
    delta: float = 1e-5,
    canaries: int = DEFAULT_CANARIES,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 1.0,
    max_grad_norm: float = 1.0,
    hidden: Sequence[int] = (64,),
    confidence: float = 0.95,
    seed: int = 0,
    unsafe_noise_multiplier: float | None = None,
) -> AuditResult:
    """Train once with DP-SGD at the claimed (ε, δ) plus ``canaries`` gradient canaries and return ε̂.

    ``unsafe_noise_multiplier`` replaces the calibrated noise *after* calibration, simulating a broken DP
    implementation that still claims ``epsilon`` (to check that the audit catches it); it logs a warning.
    """
    import torch
    from torch import nn

    from bastion.models.recipes import build_mlp, evaluate, make_loader

    eps = check_epsilon(epsilon)
    delta = check_delta(delta)
    if not 2 <= canaries <= 100_000:
        raise InvalidInput(f"canaries must be in 2..100000, got {canaries}")
    if epochs < 1 or batch_size < 1:
        raise InvalidInput("epochs and batch_size must be ≥ 1")
    if not hidden or int(hidden[0]) < 1:
        raise InvalidInput("the audit model needs at least one hidden layer")
    rng = np.random.default_rng(seed)
    width = int(hidden[0])
    n_extra = math.ceil(canaries / width)
    n_in = dataset.n_features + n_extra
    # Each canary owns one weight of the first layer on an extra input column that is zero for real data.
    slots = rng.permutation(width * n_extra)[:canaries]
    rows, cols = slots % width, dataset.n_features + slots // width
    included = rng.random(canaries) < 0.5

    def pad(x: np.ndarray) -> np.ndarray:
        return np.concatenate([x, np.zeros((len(x), n_extra), dtype=np.float32)], axis=1)

    x_train, x_test = pad(dataset.x_train), pad(dataset.x_test)
    model = build_mlp(n_features=n_in, n_classes=dataset.n_classes, hidden=hidden, seed=seed)
    first = model[0]
    assert isinstance(first, nn.Linear)
    w0 = first.weight.detach().clone()
    loader = make_loader(x_train, dataset.y_train, batch_size=min(batch_size, len(x_train)), seed=seed)
    private = make_private(
        module=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=lr),
        data_loader=loader,
        target_epsilon=eps,
        delta=delta,
        max_grad_norm=max_grad_norm,
        epochs=epochs,
    )
    effective = private.noise_multiplier
    if unsafe_noise_multiplier is not None:
        if not (unsafe_noise_multiplier >= 0 and math.isfinite(unsafe_noise_multiplier)):
            raise InvalidInput("unsafe_noise_multiplier must be a finite number ≥ 0")
        log.warning(
            "privacy audit: noise multiplier forced to %s (calibrated %.4g) — simulating broken DP",
            unsafe_noise_multiplier,
            private.noise_multiplier,
        )
        effective = float(unsafe_noise_multiplier)
        private.optimizer.noise_multiplier = effective  # type: ignore[attr-defined]
    q = private.sample_rate
    params = [p for p in private.module.parameters() if p.requires_grad]
    # Opacus wraps the module in place: ``first.weight`` is the parameter the optimizer updates.
    w_index = next(i for i, p in enumerate(params) if p is first.weight)
    member_idx = np.flatnonzero(included)
    criterion = nn.CrossEntropyLoss()
    start = time.perf_counter()
    steps = 0
    private.module.train()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        for _ in range(epochs):
            for xb, yb in private.data_loader:
                private.optimizer.zero_grad(set_to_none=True)
                out = private.module(xb)
                loss = criterion(out, yb) if len(yb) else out.sum() * 0.0
                loss.backward()
                picked = member_idx[rng.random(len(member_idx)) < q]  # canaries Poisson-sampled like data
                if len(picked):
                    _inject(params, w_index, rows[picked], cols[picked], max_grad_norm)
                private.optimizer.step()
                steps += 1
    seconds = time.perf_counter() - start
    moved = (first.weight.detach() - w0).numpy()
    scores = -moved[rows, cols]
    eps_hat, k, r, v, ks = best_guess_bound(
        scores=scores, included=included, delta=delta, confidence=confidence
    )
    accuracy = evaluate(model, x_test, dataset.y_test)
    return AuditResult(
        epsilon_lower_bound=eps_hat,
        claimed_epsilon=eps,
        delta=delta,
        confidence=confidence,
        canaries=canaries,
        included=int(included.sum()),
        guesses=r,
        correct=v,
        k=k,
        noise_multiplier=private.noise_multiplier,
        effective_noise_multiplier=effective,
        sample_rate=q,
        steps=steps,
        accuracy=accuracy,
        seconds=seconds,
        dataset=dataset.name,
        ks_tried=ks,
    )


def _inject(params: list[Any], w_index: int, rows: np.ndarray, cols: np.ndarray, norm: float) -> None:
    """Append a per-sample gradient row per picked canary: ``norm · e_j`` on its own weight, 0 elsewhere."""
    import torch

    c = len(rows)
    for i, p in enumerate(params):
        gs = p.grad_sample
        if isinstance(gs, list):
            gs = torch.cat(gs, dim=0)
        extra = torch.zeros((c, *p.shape), dtype=p.dtype)
        if i == w_index:
            extra[torch.arange(c), torch.as_tensor(rows), torch.as_tensor(cols)] = float(norm)
        p.grad_sample = torch.cat([gs, extra], dim=0) if gs is not None else extra


__all__ = ["AuditResult", "audit_dp_sgd", "best_guess_bound", "epsilon_lower_bound", "p_value"]
