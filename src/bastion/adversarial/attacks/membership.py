"""Membership inference: the loss / confidence threshold baseline and LiRA.

* :func:`threshold_attack` — Yeom et al., "Privacy Risk in Machine Learning: Analyzing the Connection to
  Overfitting", CSF 2018: a low loss (or a high confidence in the true label) means "member".
* :func:`lira` — Carlini et al., "Membership Inference Attacks From First Principles", IEEE S&P 2022. Shadow
  models are trained on random halves of the population; the score is the logit-scaled confidence
  ``φ = log p_y − log Σ_{j≠y} p_j``. Online LiRA compares Gaussians fitted to the IN and OUT shadows' scores
  of each example, offline LiRA only the OUT side (one-sided). With few shadows a global variance is used
  ("fixed variance", as the paper recommends below 64 shadows). Deviation: no test-time augmentation.

Metrics follow the paper: AUC, TPR at 0.1 % and 1 % FPR, and a log-scale ROC.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bastion.adversarial._common import batch, check_positive
from bastion.errors import InvalidInput
from bastion.models.interface import ModelAdapter

ShadowTrainer = Callable[[np.ndarray, np.ndarray, int], ModelAdapter]
"""``train(x, y, seed) -> ModelAdapter``: trains one shadow model the way the target was trained."""


@dataclass(frozen=True)
class MembershipResult:
    """How well ``attack`` separates members from non-members."""

    attack: str
    auc: float
    tpr_at_0_1_fpr: float
    tpr_at_1_fpr: float
    n_members: int
    n_nonmembers: int
    roc_fpr: tuple[float, ...] = field(repr=False)
    roc_tpr: tuple[float, ...] = field(repr=False)
    scores: np.ndarray = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "attack": self.attack,
            "auc": self.auc,
            "tpr_at_0_1_fpr": self.tpr_at_0_1_fpr,
            "tpr_at_1_fpr": self.tpr_at_1_fpr,
            "n_members": self.n_members,
            "n_nonmembers": self.n_nonmembers,
        }


def _check_members(member: Any, n: int) -> np.ndarray:
    arr = np.asarray(member)
    if arr.shape != (n,):
        raise InvalidInput(f"member must hold one flag per example ({n}), got shape {tuple(arr.shape)}")
    flags = arr.astype(bool)
    if flags.all() or not flags.any():
        raise InvalidInput("membership evaluation needs both members and non-members")
    return flags


def roc(scores: np.ndarray, member: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC curve (fpr, tpr) of ``scores`` (higher = more likely a member), ties handled as one threshold."""
    s = np.asarray(scores, dtype=np.float64)
    m = np.asarray(member, dtype=bool)
    order = np.argsort(-s, kind="mergesort")
    s, m = s[order], m[order]
    distinct = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
    tp = np.cumsum(m)[distinct]
    fp = np.cumsum(~m)[distinct]
    tpr = np.r_[0.0, tp / max(int(m.sum()), 1)]
    fpr = np.r_[0.0, fp / max(int((~m).sum()), 1)]
    return fpr, tpr


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, target: float) -> float:
    """The highest TPR reachable with FPR ≤ ``target``."""
    ok = fpr <= target + 1e-12
    return float(tpr[ok].max()) if ok.any() else 0.0


def _result(name: str, scores: np.ndarray, member: np.ndarray) -> MembershipResult:
    fpr, tpr = roc(scores, member)
    auc = float(np.trapezoid(tpr, fpr))
    keep = np.unique(np.r_[0, np.geomspace(1, fpr.size - 1, 200).astype(int), fpr.size - 1])
    return MembershipResult(
        attack=name,
        auc=auc,
        tpr_at_0_1_fpr=tpr_at_fpr(fpr, tpr, 0.001),
        tpr_at_1_fpr=tpr_at_fpr(fpr, tpr, 0.01),
        n_members=int(member.sum()),
        n_nonmembers=int((~member).sum()),
        roc_fpr=tuple(float(v) for v in fpr[keep]),
        roc_tpr=tuple(float(v) for v in tpr[keep]),
        scores=scores,
    )


def true_class_logit(model: ModelAdapter, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """LiRA's ``φ = log p_y − log Σ_{j≠y} p_j`` (from logits when the model exposes them: no saturation)."""
    rows = np.arange(len(y))
    logits_fn = getattr(model, "logits", None)
    if callable(logits_fn):
        z = np.asarray(logits_fn(x), dtype=np.float64)
        zy = z[rows, y]
        z[rows, y] = -np.inf
        zmax = z.max(axis=1)
        return np.asarray(zy - (zmax + np.log(np.exp(z - zmax[:, None]).sum(axis=1))))
    p = np.asarray(model.predict_proba(x), dtype=np.float64)
    py = np.clip(p[rows, y], 1e-30, None)
    rest = np.clip(p.sum(axis=1) - p[rows, y], 1e-30, None)
    return np.asarray(np.log(py) - np.log(rest))


def _log_true_prob(model: ModelAdapter, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """log p_y, from logits when available (float32 probabilities saturate at 1 and tie every member)."""
    rows = np.arange(len(y))
    logits_fn = getattr(model, "logits", None)
    if callable(logits_fn):
        z = np.asarray(logits_fn(x), dtype=np.float64)
        zmax = z.max(axis=1)
        return np.asarray(z[rows, y] - zmax - np.log(np.exp(z - zmax[:, None]).sum(axis=1)))
    p = np.asarray(model.predict_proba(x), dtype=np.float64)
    return np.asarray(np.log(np.clip(p[rows, y], 1e-30, None)))


def threshold_attack(
    model: ModelAdapter, x: Any, y: Any, *, member: Any, score: str = "loss"
) -> MembershipResult:
    """The baseline: rank examples by low loss (``score="loss"``) or high true-class confidence."""
    xs, ys = batch(model, x, y)
    flags = _check_members(member, xs.shape[0])
    if score == "loss":
        values = _log_true_prob(model, xs, ys)  # −loss
    elif score == "confidence":
        values = np.exp(_log_true_prob(model, xs, ys))
    else:
        raise InvalidInput(f"score must be 'loss' or 'confidence', got {score!r}")
    return _result(f"{score}-threshold", values, flags)


@dataclass(frozen=True)
class LiraResult:
    """Offline and online LiRA on the same shadows."""

    offline: MembershipResult
    online: MembershipResult
    n_shadows: int


def lira(
    model: ModelAdapter,
    x: Any,
    y: Any,
    *,
    member: Any,
    train_shadow: ShadowTrainer,
    n_shadows: int = 16,
    seed: int = 0,
    score_rows: Any = None,
    progress: Callable[[int, int], None] | None = None,
) -> LiraResult:
    """Likelihood-ratio membership inference with ``n_shadows`` shadow models.

    ``(x, y)`` is the population: the target's members (``member`` true) and non-members. Each shadow is
    trained by ``train_shadow`` on a random half of the population, so for the IN and OUT Gaussians to
    describe the target, the population should be about twice the target's training set (the paper's
    setting: the target, too, saw a random half). ``score_rows`` (indices) restricts the evaluation to a
    subset of the population, e.g. a balanced sample of members and non-members; by default every row
    is scored.
    """
    n_shadows = check_positive("n_shadows", n_shadows)
    if n_shadows < 2:
        raise InvalidInput("LiRA needs at least 2 shadow models")
    xs, ys = batch(model, x, y)
    flags = _check_members(member, xs.shape[0])
    n = xs.shape[0]
    rng = np.random.default_rng(seed)
    # Balanced assignment: every example is IN for half of the shadows.
    keep = np.zeros((n_shadows, n), dtype=bool)
    for i in range(n):
        keep[rng.permutation(n_shadows)[: n_shadows // 2], i] = True
    shadow_scores = np.empty((n_shadows, n), dtype=np.float64)
    for k in range(n_shadows):
        shadow = train_shadow(xs[keep[k]], ys[keep[k]], seed * 1000 + k)
        shadow_scores[k] = true_class_logit(shadow, xs, ys)
        if progress is not None:
            progress(k + 1, n_shadows)
    target = true_class_logit(model, xs, ys)

    def masked_mean(mask: np.ndarray) -> np.ndarray:
        cnt = mask.sum(axis=0)
        total = np.where(mask, shadow_scores, 0.0).sum(axis=0)
        return np.where(cnt > 0, total / np.maximum(cnt, 1), np.nan)

    mu_in, mu_out = masked_mean(keep), masked_mean(~keep)
    gap = np.nanmean(mu_in - mu_out)
    mu_in = np.where(np.isnan(mu_in), mu_out + gap, mu_in)
    mu_out = np.where(np.isnan(mu_out), mu_in - gap, mu_out)
    sd_in = float(np.std(shadow_scores[keep] - mu_in[np.nonzero(keep)[1]])) + 1e-6
    sd_out = float(np.std(shadow_scores[~keep] - mu_out[np.nonzero(~keep)[1]])) + 1e-6

    def log_normal(v: np.ndarray, mu: np.ndarray, sd: float) -> np.ndarray:
        return np.asarray(-0.5 * ((v - mu) / sd) ** 2 - math.log(sd))

    online = log_normal(target, mu_in, sd_in) - log_normal(target, mu_out, sd_out)
    offline = (target - mu_out) / sd_out
    rows = np.arange(n) if score_rows is None else np.asarray(score_rows, dtype=np.int64).reshape(-1)
    if rows.size and (rows.min() < 0 or rows.max() >= n):
        raise InvalidInput(f"score_rows must index the {n} population rows")
    sub = _check_members(flags[rows], rows.size)
    return LiraResult(
        offline=_result("lira-offline", offline[rows], sub),
        online=_result("lira-online", online[rows], sub),
        n_shadows=n_shadows,
    )


def mlp_shadow_trainer(
    *,
    input_shape: Sequence[int],
    n_classes: int,
    hidden: Sequence[int] = (64,),
    epochs: int = 60,
    batch_size: int = 128,
    lr: float = 1e-2,
    weight_decay: float = 0.0,
    clip_values: tuple[float, float] | None = None,
) -> ShadowTrainer:
    """A fast shadow recipe: a torch MLP on the flattened input trained with Adam (small and CPU-friendly)."""
    shape = tuple(int(d) for d in input_shape)

    def train(x: np.ndarray, y: np.ndarray, seed: int) -> ModelAdapter:
        module = train_mlp(
            x.reshape(x.shape[0], -1),
            y,
            n_classes=n_classes,
            hidden=hidden,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            seed=seed,
            input_shape=shape,
        )
        from bastion.models.adapters import TorchAdapter

        return TorchAdapter(module, input_shape=shape, n_classes=n_classes, clip_values=clip_values)

    return train


def train_mlp(
    x: np.ndarray,
    y: np.ndarray,
    *,
    n_classes: int,
    hidden: Sequence[int] = (64,),
    epochs: int = 60,
    batch_size: int = 128,
    lr: float = 1e-2,
    weight_decay: float = 0.0,
    seed: int = 0,
    soft_targets: np.ndarray | None = None,
    input_shape: Sequence[int] | None = None,
) -> Any:
    """Train a small torch MLP (Flatten → Linear/ReLU … → Linear) with Adam; returns the module in eval mode.

    With ``soft_targets`` (probabilities) it minimises the cross-entropy to those instead of hard labels.
    """
    import torch

    gen = torch.Generator()
    gen.manual_seed(int(seed))
    torch.manual_seed(int(seed))
    d = int(np.prod(x.shape[1:]))
    layers: list[torch.nn.Module] = [torch.nn.Flatten()]
    width = d
    for h in hidden:
        layers += [torch.nn.Linear(width, int(h)), torch.nn.ReLU()]
        width = int(h)
    layers.append(torch.nn.Linear(width, n_classes))
    net = torch.nn.Sequential(*layers)
    shape = tuple(input_shape) if input_shape is not None else tuple(x.shape[1:])
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32).reshape((x.shape[0], *shape)))
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    st = None if soft_targets is None else torch.from_numpy(np.asarray(soft_targets, dtype=np.float32))
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    n = xt.shape[0]
    net.train()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            out = net(xt[idx])
            if st is None:
                loss = torch.nn.functional.cross_entropy(out, yt[idx])
            else:
                loss = -(st[idx] * torch.log_softmax(out, dim=1)).sum(dim=1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    net.eval()
    return net


__all__ = [
    "LiraResult",
    "MembershipResult",
    "ShadowTrainer",
    "lira",
    "mlp_shadow_trainer",
    "roc",
    "threshold_attack",
    "tpr_at_fpr",
    "train_mlp",
    "true_class_logit",
]
