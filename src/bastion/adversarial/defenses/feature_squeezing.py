"""Feature squeezing (Xu, Evans & Qi, "Feature Squeezing: Detecting Adversarial Examples in Deep Neural
Networks", NDSS 2018) and the adaptive attack that defeats it.

The detector compares the model's probabilities on an input with those on squeezed copies (bit-depth
reduction and a median filter); the score is the largest L1 distance, and the threshold is set so that a
chosen fraction (5 %) of clean inputs is flagged. :func:`bpda_attack` is the adaptive attacker of Athalye,
Carlini & Wagner ("Obfuscated Gradients Give a False Sense of Security", ICML 2018): PGD minimising the
clipped Carlini-Wagner margin plus ``λ · max(0, score − 0.9 · threshold)`` for several λ, with Backward Pass
Differentiable Approximation (straight-through gradients) for the non-differentiable bit-depth squeezer.
Report its figure next to the non-adaptive one.

On very small images (digits are 8×8) a median filter destroys the content and the clean scores swamp the
threshold; use ``median_size=0`` there (the audit does so below 16×16 pixels).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bastion.adversarial._common import (
    batch,
    check_eps,
    check_positive,
    clip_of,
    frozen,
    image_view,
    require_torch,
    seeded_generator,
)
from bastion.errors import InvalidInput
from bastion.models.adapters import TorchAdapter
from bastion.models.interface import ModelAdapter, check_input

if TYPE_CHECKING:
    import torch


def _bits(t: torch.Tensor, bits: int, clip: tuple[float, float], *, straight_through: bool) -> torch.Tensor:
    import torch

    lo, hi = clip
    levels = 2**bits - 1
    q = torch.round((t - lo) / (hi - lo) * levels) / levels * (hi - lo) + lo
    return t + (q - t).detach() if straight_through else q


def _median(t: torch.Tensor, size: int, view: tuple[int, int, int]) -> torch.Tensor:
    import torch

    c, h, w = view
    img = t.reshape(t.shape[0], c, h, w)
    pad_before = (size - 1) // 2
    pad_after = size - 1 - pad_before
    padded = torch.nn.functional.pad(img, (pad_before, pad_after, pad_before, pad_after), mode="reflect")
    patches = padded.unfold(2, size, 1).unfold(3, size, 1)  # (n, c, h, w, size, size)
    med = patches.reshape(*patches.shape[:4], -1).median(dim=-1).values
    return med.reshape(t.shape)


@dataclass(frozen=True)
class FeatureSqueezingDetector:
    """A calibrated detector: flag ``x`` when ``score(x) > threshold``."""

    model: TorchAdapter
    bit_depth: int
    median_size: int
    threshold: float
    target_fpr: float
    clip: tuple[float, float]

    def _score_tensor(self, t: torch.Tensor, *, straight_through: bool = False) -> torch.Tensor:
        import torch

        view = image_view(self.model.input_shape)
        p = torch.softmax(self.model.logits_tensor(t), dim=1)
        scores = []
        if self.bit_depth > 0:
            q = _bits(t, self.bit_depth, self.clip, straight_through=straight_through)
            scores.append((p - torch.softmax(self.model.logits_tensor(q), dim=1)).abs().sum(dim=1))
        if self.median_size > 1 and view[1] > 1:
            m = _median(t, self.median_size, view)
            scores.append((p - torch.softmax(self.model.logits_tensor(m), dim=1)).abs().sum(dim=1))
        return torch.stack(scores, dim=1).max(dim=1).values

    def scores(self, x: Any) -> np.ndarray:
        import torch

        xs = check_input(x, self.model.input_shape)
        with frozen(self.model.module), torch.no_grad():
            return self._score_tensor(self.model.to_tensor(xs)).numpy().astype(np.float64)

    def detect(self, x: Any) -> np.ndarray:
        """True for inputs the detector flags as adversarial."""
        return self.scores(x) > self.threshold


def calibrate_feature_squeezing(
    *,
    model: ModelAdapter,
    clean_x: Any,
    bit_depth: int = 1,
    median_size: int = 2,
    target_fpr: float = 0.05,
) -> FeatureSqueezingDetector:
    """Build the detector with its threshold at the ``1 − target_fpr`` quantile of clean scores."""
    tm = require_torch(model)
    clip = clip_of(tm)
    if clip is None:
        raise InvalidInput("feature squeezing needs the model's input range (clip_values)")
    if bit_depth < 0 or median_size < 0 or (bit_depth == 0 and median_size < 2):
        raise InvalidInput("enable at least one squeezer (bit_depth >= 1 or median_size >= 2)")
    if not 0 < target_fpr < 1:
        raise InvalidInput("target_fpr must be between 0 and 1")
    detector = FeatureSqueezingDetector(
        model=tm,
        bit_depth=bit_depth,
        median_size=median_size,
        threshold=np.inf,
        target_fpr=target_fpr,
        clip=clip,
    )
    clean = detector.scores(clean_x)
    threshold = float(np.quantile(clean, 1.0 - target_fpr, method="higher"))
    return FeatureSqueezingDetector(
        model=tm,
        bit_depth=bit_depth,
        median_size=median_size,
        threshold=threshold,
        target_fpr=target_fpr,
        clip=clip,
    )


def bpda_attack(
    detector: FeatureSqueezingDetector,
    x: Any,
    y: Any,
    *,
    eps: float,
    steps: int = 100,
    step_size: float | None = None,
    weights: tuple[float, ...] = (1.0, 10.0, 100.0),
    kappa: float = 1.0,
    seed: int = 0,
) -> np.ndarray:
    """Adaptive L∞ PGD against model + detector; keeps, per example, the first input that is misclassified
    *and* scores under the detector's threshold (else the last iterate of the last weight)."""
    import torch

    from bastion.adversarial.attacks.evasion._torch import _project, _random_start

    tm = detector.model
    eps = check_eps(eps)
    steps = check_positive("steps", steps)
    xs, ys = batch(tm, x, y)
    alpha = step_size if step_size is not None else 2.5 * eps / steps
    gen = seeded_generator(seed)
    lo, hi = detector.clip
    x0 = torch.from_numpy(xs)
    y0 = torch.from_numpy(ys)
    best = x0.clone()
    done = torch.zeros(x0.shape[0], dtype=torch.bool)
    with frozen(tm.module):
        for lam in weights:
            xa = (x0 + _random_start(x0, eps, "inf", gen)).clamp(lo, hi)
            for _ in range(steps):
                xa = xa.detach().requires_grad_(True)
                logits = tm.logits_tensor(xa)
                score = detector._score_tensor(xa, straight_through=True)
                true = logits.gather(1, y0[:, None]).squeeze(1)
                other = logits.masked_fill(torch.nn.functional.one_hot(y0, logits.shape[1]).bool(), -1e9)
                margin = (true - other.max(dim=1).values).clamp(min=-kappa)
                penalty = torch.relu(score - 0.9 * detector.threshold)
                (grad,) = torch.autograd.grad(-(margin + lam * penalty).sum(), xa)
                with torch.no_grad():
                    ok = (logits.argmax(1) != y0) & (score <= detector.threshold) & ~done
                    best[ok] = xa.detach()[ok]
                    done |= ok
                    xa = (x0 + _project(xa + alpha * grad.sign() - x0, eps, "inf")).clamp(lo, hi)
            with torch.no_grad():
                logits = tm.logits_tensor(xa)
                score = detector._score_tensor(xa)
                ok = (logits.argmax(1) != y0) & (score <= detector.threshold) & ~done
                best[ok] = xa[ok]
                done |= ok
                best[~done] = xa[~done]
            if bool(done.all()):
                break
    return best.numpy()


@dataclass(frozen=True)
class SqueezingEvaluation:
    """Detection of successful adversarial examples, non-adaptive (PGD) and adaptive (BPDA)."""

    eps: float
    threshold: float
    clean_fpr: float
    pgd_success: int
    pgd_detected: float
    adaptive_success: int
    adaptive_evasion_rate: float
    adaptive_detected: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def evaluate_feature_squeezing(
    detector: FeatureSqueezingDetector,
    *,
    clean_x: Any,
    x: Any,
    y: Any,
    eps: float,
    steps: int = 40,
    adaptive_steps: int = 100,
    seed: int = 0,
) -> SqueezingEvaluation:
    """Detection rate of PGD examples that fool the model, and how an adaptive BPDA attacker fares.

    ``adaptive_evasion_rate`` is the fraction of initially correct inputs turned into undetected
    misclassifications by the adaptive attack: the honest figure for the defended system.
    """
    from bastion.adversarial.attacks.evasion import pgd

    tm = detector.model
    xs, ys = batch(tm, x, y)
    clean_fpr = float(detector.detect(clean_x).mean())
    correct = tm.predict(xs) == ys
    x_pgd = pgd(tm, xs, ys, eps=eps, steps=steps, seed=seed)
    fooled = correct & (tm.predict(x_pgd) != ys)
    detected = detector.detect(x_pgd)
    x_ad = bpda_attack(detector, xs, ys, eps=eps, steps=adaptive_steps, seed=seed + 1)
    fooled_ad = correct & (tm.predict(x_ad) != ys)
    det_ad = detector.detect(x_ad)
    n_correct = max(int(correct.sum()), 1)
    return SqueezingEvaluation(
        eps=eps,
        threshold=detector.threshold,
        clean_fpr=clean_fpr,
        pgd_success=int(fooled.sum()),
        pgd_detected=float(detected[fooled].mean()) if fooled.any() else 1.0,
        adaptive_success=int(fooled_ad.sum()),
        adaptive_evasion_rate=float((fooled_ad & ~det_ad).sum() / n_correct),
        adaptive_detected=float(det_ad[fooled_ad].mean()) if fooled_ad.any() else 1.0,
    )


__all__ = [
    "FeatureSqueezingDetector",
    "SqueezingEvaluation",
    "bpda_attack",
    "calibrate_feature_squeezing",
    "evaluate_feature_squeezing",
]
