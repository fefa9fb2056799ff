"""DP-SGD through Opacus, with privacy spent reported under two accountants.

Implements differentially private SGD (Abadi et al., "Deep Learning with Differential Privacy", CCS 2016) by
wrapping Opacus' ``PrivacyEngine`` (Yousefpour et al., 2021): per-sample gradient clipping to
``max_grad_norm``, Gaussian noise of standard deviation ``noise_multiplier × max_grad_norm``, Poisson
sampling of batches at rate ``q = 1 / len(data_loader)``.

Deviations from calling Opacus directly:

* :func:`make_private` returns one frozen :class:`PrivateTraining` whatever the options (Opacus returns
  three or four values by mode), and validates its inputs (``ε > 0``, ``0 < δ < 1``, ...) with
  :class:`~bastion.errors.InvalidInput`.
* The noise for a ``target_epsilon`` is calibrated with Opacus' ``get_noise_multiplier`` for the chosen
  accountant, so the *planned* ε of the whole run is known before the first step (the ledger checks it).
* ε is always reported under both the RDP accountant (Mironov 2017; Mironov, Talwar, Zhang 2019) and the PRV
  accountant (Gopi, Lee, Wutschitz 2021), recomputed from the engine's step history.
* ``secure_mode=True`` needs ``torchcsprng`` (Opacus' cryptographically secure noise); when it is absent the
  call fails with :class:`~bastion.errors.DependencyMissing` instead of silently falling back. torchcsprng
  does not exist for torch 2.13, so in practice the noise comes from torch's default (Mersenne-Twister/
  Philox) generator: an attacker who can predict that generator's state could subtract the noise. Every
  report that carries an ε says so (:data:`NOISE_PRNG_NOTE`, :func:`noise_source`).

Length: the two accountants, the noise search and ``make_private`` share one (sample rate, noise, steps)
history and its validation; splitting them would repeat it.
"""

from __future__ import annotations

import functools
import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from bastion.errors import DependencyMissing, InvalidInput

if TYPE_CHECKING:
    import torch
    from torch import nn
    from torch.utils.data import DataLoader

log = logging.getLogger(__name__)

Accountant = Literal["rdp", "prv"]
ACCOUNTANTS: tuple[str, ...] = ("rdp", "prv")
# Opacus' RDP orders (RDPAccountant.DEFAULT_ALPHAS)
_ALPHAS: list[float] = [1 + x / 10.0 for x in range(1, 100)] + [float(a) for a in range(12, 64)]
_CALIBRATION_TOLERANCE = 0.01
# Opacus draws DP-SGD noise from torch's default generator (not a CSPRNG) unless secure_mode, which needs
# torchcsprng (not available for torch 2.13). Reported next to every ε until a secure generator is used.
NOISE_PRNG_NOTE = (
    "DP-SGD noise came from torch's non-cryptographic PRNG (Opacus secure_mode unavailable on torch 2.13): "
    "ε assumes ideal Gaussian noise"
)


def noise_source(*, secure_mode: bool = False) -> dict[str, Any]:
    """How the DP noise was drawn, for every report that carries an ε (JSON, model metadata)."""
    if secure_mode:
        return {"generator": "torchcsprng", "cryptographic": True, "note": "Opacus secure_mode"}
    return {"generator": "torch.default_generator", "cryptographic": False, "note": NOISE_PRNG_NOTE}


def _import_opacus() -> Any:
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        import opacus
        import opacus.utils.module_utils  # the module that calls logging.basicConfig
    except ImportError as exc:  # pragma: no cover - opacus is in the privacy extra
        raise DependencyMissing("opacus is not installed", hint="pip install 'bastion-ml[privacy]'") from exc
    finally:
        # Opacus calls logging.basicConfig at import, which would print every later warning of every library
        # as a raw "12/05/2026 00:57:19:WARNING:…" line: logging is the application's to configure.
        for handler in root.handlers[:]:
            if handler not in before:
                root.removeHandler(handler)
    return opacus


def check_epsilon(epsilon: float, *, name: str = "epsilon") -> float:
    """Validate a privacy loss ε: a finite number > 0."""
    try:
        value = float(epsilon)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{name} must be a number, got {epsilon!r}") from exc
    if not (value > 0 and math.isfinite(value)):
        raise InvalidInput(f"{name} must be a finite number > 0, got {epsilon}")
    return value


def check_delta(delta: float, *, allow_zero: bool = False) -> float:
    """Validate δ: ``0 < δ < 1`` (``0 ≤ δ < 1`` with ``allow_zero``)."""
    try:
        value = float(delta)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"delta must be a number, got {delta!r}") from exc
    low_ok = value >= 0 if allow_zero else value > 0
    if not (low_ok and value < 1 and math.isfinite(value)):
        bound = "0 ≤ delta < 1" if allow_zero else "0 < delta < 1"
        raise InvalidInput(f"{bound} required, got {delta}")
    return value


def _check_accountant(accountant: str) -> str:
    if accountant not in ACCOUNTANTS:
        raise InvalidInput(f"unknown accountant {accountant!r} (use one of {', '.join(ACCOUNTANTS)})")
    return accountant


@dataclass(frozen=True)
class PrivacySpent:
    """Privacy loss of a DP-SGD run (or a plan): ε under RDP and PRV, and the parameters that produced it."""

    epsilon: float
    epsilon_rdp: float
    epsilon_prv: float
    delta: float
    noise_multiplier: float
    sample_rate: float
    steps: int
    max_grad_norm: float
    accountant: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "epsilon": self.epsilon,
            "epsilon_rdp": self.epsilon_rdp,
            "epsilon_prv": self.epsilon_prv,
            "delta": self.delta,
            "noise_multiplier": self.noise_multiplier,
            "sample_rate": self.sample_rate,
            "steps": self.steps,
            "max_grad_norm": self.max_grad_norm,
            "accountant": self.accountant,
        }


def epsilon_for(
    *,
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    delta: float,
    accountant: str = "rdp",
) -> float:
    """ε of ``steps`` Poisson-subsampled Gaussian steps under Opacus' ``accountant`` (0 for no steps)."""
    return _epsilon_from_history([(noise_multiplier, sample_rate, steps)], delta=delta, accountant=accountant)


def _epsilon_from_history(
    history: Sequence[tuple[float, float, int]], *, delta: float, accountant: str
) -> float:
    _check_accountant(accountant)
    check_delta(delta)
    hist = tuple((float(nm), float(q), int(n)) for nm, q, n in history if int(n) > 0)
    if not hist:
        return 0.0
    if any(nm <= 0 for nm, _, _ in hist):
        return math.inf
    if accountant == "rdp":
        return _rdp_epsilon(hist, delta)
    return _prv_epsilon(hist, delta)


@functools.lru_cache(maxsize=512)
def _rdp_per_step(sample_rate: float, noise_multiplier: float) -> tuple[float, ...]:
    _import_opacus()
    from opacus.accountants.analysis import rdp as opacus_rdp

    rdp = opacus_rdp.compute_rdp(q=sample_rate, noise_multiplier=noise_multiplier, steps=1, orders=_ALPHAS)
    return tuple(float(v) for v in rdp)


def _rdp_epsilon(history: tuple[tuple[float, float, int], ...], delta: float) -> float:
    """Opacus' RDP accountant (same orders, same conversion), with the per-step RDP curve cached."""
    from opacus.accountants.analysis import rdp as opacus_rdp

    total = [0.0] * len(_ALPHAS)
    for nm, q, n in history:
        total = [t + n * r for t, r in zip(total, _rdp_per_step(q, nm), strict=True)]
    eps, _ = opacus_rdp.get_privacy_spent(orders=_ALPHAS, rdp=total, delta=delta)
    return float(eps)


@functools.lru_cache(maxsize=256)
def _prv_epsilon(history: tuple[tuple[float, float, int], ...], delta: float) -> float:
    _import_opacus()
    from opacus.accountants import PRVAccountant

    acc = PRVAccountant()
    acc.history = list(history)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return float(acc.get_epsilon(delta=delta))
        except (ValueError, RuntimeError, OverflowError, FloatingPointError):
            return math.inf  # outside the PRV accountant's numerical range: never report less than the truth


def spent_for(
    *,
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    delta: float,
    max_grad_norm: float,
    accountant: str = "rdp",
) -> PrivacySpent:
    """:class:`PrivacySpent` of a uniform run: ε under both accountants; ``epsilon`` is ``accountant``'s."""
    history = [(noise_multiplier, sample_rate, steps)]
    return _spent_from_history(history, delta=delta, max_grad_norm=max_grad_norm, accountant=accountant)


def _spent_from_history(
    history: Sequence[tuple[float, float, int]], *, delta: float, max_grad_norm: float, accountant: str
) -> PrivacySpent:
    rdp = _epsilon_from_history(history, delta=delta, accountant="rdp")
    prv = _epsilon_from_history(history, delta=delta, accountant="prv")
    steps = sum(int(n) for _, _, n in history)
    nm = float(history[-1][0]) if history else 0.0
    q = float(history[-1][1]) if history else 0.0
    return PrivacySpent(
        epsilon=rdp if accountant == "rdp" else prv,
        epsilon_rdp=rdp,
        epsilon_prv=prv,
        delta=delta,
        noise_multiplier=nm,
        sample_rate=q,
        steps=steps,
        max_grad_norm=max_grad_norm,
        accountant=accountant,
    )


def noise_for_epsilon(
    *, target_epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str = "rdp"
) -> float:
    """The noise multiplier for ``target_epsilon`` after ``steps`` steps: Opacus' ``get_noise_multiplier``.

    Opacus bisects until its ε is below the target and within 0.01 of it; the result is re-checked here with
    the same accountant, and a noise that would overshoot the target is refused (never optimistic).
    """
    check_epsilon(target_epsilon, name="target_epsilon")
    check_delta(delta)
    _check_accountant(accountant)
    if not 0 < sample_rate <= 1:
        raise InvalidInput(f"sample rate must be in (0, 1], got {sample_rate}")
    if steps < 1:
        raise InvalidInput(f"steps must be ≥ 1, got {steps}")
    _import_opacus()
    from opacus.accountants.utils import get_noise_multiplier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            sigma = float(
                get_noise_multiplier(
                    target_epsilon=float(target_epsilon),
                    target_delta=float(delta),
                    sample_rate=float(sample_rate),
                    steps=int(steps),
                    accountant=accountant,
                    epsilon_tolerance=_CALIBRATION_TOLERANCE,
                )
            )
        except (ValueError, RuntimeError, OverflowError, FloatingPointError) as exc:
            raise InvalidInput(
                f"cannot reach epsilon={target_epsilon} with delta={delta} in {steps} steps ({exc})"
            ) from exc
    reached = epsilon_for(
        noise_multiplier=sigma, sample_rate=sample_rate, steps=steps, delta=delta, accountant=accountant
    )
    if not reached <= float(target_epsilon) * (1 + 1e-9):
        raise InvalidInput(
            f"calibration overshoots: noise {sigma:.4g} gives epsilon={reached:.4g} > {target_epsilon}"
        )
    return sigma


@dataclass(frozen=True)
class PrivateTraining:
    """The DP-wrapped module, optimizer and (Poisson-sampled) data loader, plus what the run will spend.

    ``spent()`` reports ε for the steps taken so far; ``planned()`` for ``epochs`` full epochs.
    """

    module: nn.Module
    optimizer: torch.optim.Optimizer
    data_loader: DataLoader[Any]
    noise_multiplier: float
    max_grad_norm: float
    delta: float
    sample_rate: float
    epochs: int
    steps_per_epoch: int
    accountant: str
    secure_mode: bool
    target_epsilon: float | None = None
    engine: Any = field(default=None, repr=False, compare=False)

    @property
    def planned_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def planned(self) -> PrivacySpent:
        return spent_for(
            noise_multiplier=self.noise_multiplier,
            sample_rate=self.sample_rate,
            steps=self.planned_steps,
            delta=self.delta,
            max_grad_norm=self.max_grad_norm,
            accountant=self.accountant,
        )

    def spent(self) -> PrivacySpent:
        history = [(nm, q, n) for nm, q, n in self.engine.accountant.history]
        if not history:
            history = [(self.noise_multiplier, self.sample_rate, 0)]
        return _spent_from_history(
            history, delta=self.delta, max_grad_norm=self.max_grad_norm, accountant=self.accountant
        )


def make_private(
    *,
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    data_loader: DataLoader[Any],
    delta: float,
    max_grad_norm: float,
    epochs: int,
    target_epsilon: float | None = None,
    noise_multiplier: float | None = None,
    secure_mode: bool = False,
    accountant: Accountant = "rdp",
) -> PrivateTraining:
    """Make a module, its optimizer and its data loader differentially private (DP-SGD, via Opacus).

    Give exactly one of ``target_epsilon`` (the noise is calibrated for ``epochs`` epochs under
    ``accountant``) or ``noise_multiplier``. Raises InvalidInput for bad parameters or a module Opacus cannot
    handle, DependencyMissing for ``secure_mode`` without ``torchcsprng``.
    """
    opacus = _import_opacus()
    from opacus.validators import ModuleValidator

    if (target_epsilon is None) == (noise_multiplier is None):
        raise InvalidInput("give exactly one of target_epsilon or noise_multiplier")
    _check_accountant(accountant)
    delta = check_delta(delta)
    if not (float(max_grad_norm) > 0 and math.isfinite(float(max_grad_norm))):
        raise InvalidInput(f"max_grad_norm must be a finite number > 0, got {max_grad_norm}")
    if int(epochs) < 1:
        raise InvalidInput(f"epochs must be ≥ 1, got {epochs}")
    if target_epsilon is not None:
        target_epsilon = check_epsilon(target_epsilon, name="target_epsilon")
    if noise_multiplier is not None and not (float(noise_multiplier) > 0 and math.isfinite(noise_multiplier)):
        raise InvalidInput(f"noise_multiplier must be a finite number > 0, got {noise_multiplier}")
    try:
        steps_per_epoch = len(data_loader)
    except TypeError as exc:
        raise InvalidInput("the data loader must have a length") from exc
    if steps_per_epoch < 1:
        raise InvalidInput("the data loader is empty")
    errors = ModuleValidator.validate(module, strict=False)
    if errors:
        raise InvalidInput(f"module not supported by DP-SGD: {errors[0]}")
    if secure_mode:
        try:
            import torchcsprng  # noqa: F401
        except ImportError as exc:
            raise DependencyMissing(
                "secure_mode needs torchcsprng (cryptographically secure noise), which is not installed",
                hint="install torchcsprng for your torch build, or train without secure_mode",
            ) from exc
    sample_rate = 1.0 / steps_per_epoch
    if noise_multiplier is None:
        assert target_epsilon is not None
        sigma = noise_for_epsilon(
            target_epsilon=target_epsilon,
            delta=delta,
            sample_rate=sample_rate,
            steps=int(epochs) * steps_per_epoch,
            accountant=accountant,
        )
    else:
        sigma = float(noise_multiplier)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        engine = opacus.PrivacyEngine(accountant=accountant, secure_mode=secure_mode)
        try:
            wrapped = engine.make_private(
                module=module,
                optimizer=optimizer,
                data_loader=data_loader,
                noise_multiplier=sigma,
                max_grad_norm=float(max_grad_norm),
                poisson_sampling=True,
            )
        except (ValueError, NotImplementedError) as exc:
            raise InvalidInput(f"Opacus could not wrap the training: {exc}") from exc
    dp_module, dp_optimizer, dp_loader = wrapped[0], wrapped[1], wrapped[-1]
    return PrivateTraining(
        module=dp_module,
        optimizer=dp_optimizer,
        data_loader=dp_loader,
        noise_multiplier=sigma,
        max_grad_norm=float(max_grad_norm),
        delta=delta,
        sample_rate=sample_rate,
        epochs=int(epochs),
        steps_per_epoch=steps_per_epoch,
        accountant=accountant,
        secure_mode=secure_mode,
        target_epsilon=target_epsilon,
        engine=engine,
    )


__all__ = [
    "ACCOUNTANTS",
    "NOISE_PRNG_NOTE",
    "PrivacySpent",
    "PrivateTraining",
    "check_delta",
    "check_epsilon",
    "epsilon_for",
    "make_private",
    "noise_for_epsilon",
    "noise_source",
    "spent_for",
]
