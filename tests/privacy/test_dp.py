"""DP-SGD wrapper: accounting against Google's dp-accounting, input validation, utility on digits."""

from __future__ import annotations

import dataclasses

import dp_accounting
import numpy as np
import pytest
import torch
from dp_accounting import rdp

from bastion.errors import DependencyMissing, InvalidInput
from bastion.models.data import load_dataset
from bastion.models.recipes import build_mlp, make_loader, train_model
from bastion.privacy import make_private
from bastion.privacy.dp import epsilon_for, noise_for_epsilon, spent_for
from bastion.privacy.training import DPSettings, plan_private_run, train_recipe


def reference_rdp_epsilon(noise: float, q: float, steps: int, delta: float) -> float:
    """ε from dp-accounting's RDP accountant (independent implementation) for a Poisson-sampled Gaussian."""
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(noise)), steps
    )
    acc = rdp.RdpAccountant()
    acc.compose(event)
    return float(acc.get_epsilon(delta))


@pytest.mark.parametrize(
    ("noise", "q", "steps", "delta"),
    [
        (1.1, 256 / 60000, 14063, 1e-5),
        (2.65625, 1 / 11, 330, 1e-5),
        (0.8, 0.01, 1000, 1e-6),
        (4.0, 0.5, 50, 1e-3),
        (1.0, 1.0, 10, 1e-5),
    ],
)
def test_rdp_epsilon_matches_dp_accounting_within_one_percent(
    noise: float, q: float, steps: int, delta: float
) -> None:
    ours = epsilon_for(noise_multiplier=noise, sample_rate=q, steps=steps, delta=delta, accountant="rdp")
    ref = reference_rdp_epsilon(noise, q, steps, delta)
    assert ours == pytest.approx(ref, rel=0.01)


def test_prv_is_reported_beside_rdp_and_is_tighter() -> None:
    s = spent_for(noise_multiplier=1.1, sample_rate=256 / 60000, steps=14063, delta=1e-5, max_grad_norm=1.0)
    assert s.epsilon == s.epsilon_rdp
    assert s.epsilon_prv < s.epsilon_rdp
    assert s.epsilon_prv == pytest.approx(2.39, abs=0.05)  # Opacus PRV (dp-accounting PLD gives 2.38)
    assert (
        spent_for(noise_multiplier=1.1, sample_rate=0.1, steps=0, delta=1e-5, max_grad_norm=1.0).epsilon == 0
    )


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_calibrated_noise_never_exceeds_the_target(accountant: str) -> None:
    sigma = noise_for_epsilon(
        target_epsilon=2.0, delta=1e-5, sample_rate=0.05, steps=400, accountant=accountant
    )
    eps = epsilon_for(noise_multiplier=sigma, sample_rate=0.05, steps=400, delta=1e-5, accountant=accountant)
    assert 1.9 <= eps <= 2.0
    # less noise would overshoot: the calibration is tight, not merely safe
    assert (
        epsilon_for(
            noise_multiplier=sigma * 0.95, sample_rate=0.05, steps=400, delta=1e-5, accountant=accountant
        )
        > 2.0
    )


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_calibration_is_opacus_get_noise_multiplier(accountant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # issue 12 item 30: the docstring promised Opacus' calibration while a private bisection ran
    from opacus.accountants import utils as opacus_utils

    args = {"target_epsilon": 3.0, "target_delta": 1e-5, "sample_rate": 0.02, "steps": 500}
    expected = opacus_utils.get_noise_multiplier(**args, accountant=accountant, epsilon_tolerance=0.01)
    ours = noise_for_epsilon(
        target_epsilon=3.0, delta=1e-5, sample_rate=0.02, steps=500, accountant=accountant
    )
    assert ours == expected
    calls: list[dict[str, object]] = []
    real = opacus_utils.get_noise_multiplier

    def spy(**kwargs: object) -> float:
        calls.append(kwargs)
        return float(real(**kwargs))  # type: ignore[arg-type]

    monkeypatch.setattr(opacus_utils, "get_noise_multiplier", spy)
    noise_for_epsilon(target_epsilon=2.5, delta=1e-5, sample_rate=0.02, steps=500, accountant=accountant)
    assert len(calls) == 1 and calls[0]["accountant"] == accountant and calls[0]["steps"] == 500
    # unreachable targets are one clear error, not Opacus' ValueError
    monkeypatch.setattr(opacus_utils, "get_noise_multiplier", lambda **_: (_ for _ in ()).throw(ValueError()))
    with pytest.raises(InvalidInput, match="cannot reach"):
        noise_for_epsilon(target_epsilon=1e-6, delta=1e-5, sample_rate=0.02, steps=500)


def test_every_private_report_states_the_noise_generator() -> None:
    report = train_recipe(dataset=load_dataset("wine"), dp=DPSettings(epsilon=5.0), epochs=1, batch_size=32)
    source = report.to_dict()["noise_source"]
    assert source["cryptographic"] is False and "non-cryptographic" in source["note"]
    assert report.metadata()["noise_source"] == source
    plain = train_recipe(dataset=load_dataset("wine"), epochs=1)
    assert plain.to_dict()["noise_source"] is None


def _parts(
    n: int = 200, bs: int = 20
) -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.utils.data.DataLoader]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    model = build_mlp(n_features=4, n_classes=2, hidden=(8,), seed=0)
    return model, torch.optim.SGD(model.parameters(), lr=0.1), make_loader(x, y, batch_size=bs)


def test_make_private_returns_one_frozen_result_and_accounts_the_real_run() -> None:
    d = load_dataset("breast_cancer")
    model = build_mlp(n_features=d.n_features, n_classes=d.n_classes, hidden=(16,), seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    loader = make_loader(d.x_train, d.y_train, batch_size=32)
    private = make_private(
        module=model,
        optimizer=opt,
        data_loader=loader,
        target_epsilon=2.0,
        delta=1e-5,
        max_grad_norm=1.0,
        epochs=3,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        private.noise_multiplier = 0.0  # type: ignore[misc]
    assert private.spent().steps == 0 and private.spent().epsilon == 0
    planned = private.planned()
    assert 1.9 <= planned.epsilon <= 2.0
    assert private.sample_rate == pytest.approx(1 / len(loader))
    r = train_model(
        model=private.module,
        dataset=d,
        epochs=3,
        optimizer=private.optimizer,
        data_loader=private.data_loader,
    )
    spent = private.spent()
    assert spent.steps == r.steps == private.planned_steps
    assert spent.epsilon == pytest.approx(planned.epsilon, rel=1e-9)
    ref = reference_rdp_epsilon(spent.noise_multiplier, spent.sample_rate, spent.steps, 1e-5)
    assert spent.epsilon_rdp == pytest.approx(ref, rel=0.01)
    assert 0 < spent.epsilon_prv < spent.epsilon_rdp
    assert r.accuracy > 0.85


@pytest.mark.filterwarnings("ignore:Full backward hook")
def test_dp_sgd_clips_and_noises_the_gradient() -> None:
    """One step with a huge-loss example: the update is bounded by lr·(C + noise), unlike plain SGD."""
    model, _, _ = _parts()
    before = [p.detach().clone() for p in model.parameters()]
    x = torch.full((1, 4), 1e3)
    y = 1 - model(x).argmax(dim=1)  # the wrong class: a huge loss and gradient
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    plain_norm = torch.sqrt(sum((p.grad**2).sum() for p in model.parameters()))
    assert plain_norm > 10.0
    model2, opt2, loader2 = _parts()
    private = make_private(
        module=model2,
        optimizer=opt2,
        data_loader=loader2,
        noise_multiplier=1e-6,
        delta=1e-5,
        max_grad_norm=1.0,
        epochs=1,
    )
    private.optimizer.zero_grad()
    torch.nn.functional.cross_entropy(private.module(x), y).backward()
    private.optimizer.step()
    after = list(private.module.parameters())
    step = torch.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(after, before, strict=True)))
    # expected batch size is 20: the clipped (norm ≤ 1) gradient is averaged over 20, times lr 0.1
    assert step <= 0.1 * 1.0 / 20 + 1e-4


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"target_epsilon": 0.0}, "target_epsilon"),
        ({"target_epsilon": -1.0}, "target_epsilon"),
        ({"target_epsilon": float("inf")}, "target_epsilon"),
        ({"target_epsilon": 1.0, "delta": 1.0}, "delta"),
        ({"target_epsilon": 1.0, "delta": 0.0}, "delta"),
        ({"target_epsilon": 1.0, "noise_multiplier": 1.0}, "exactly one"),
        ({}, "exactly one"),
        ({"noise_multiplier": 0.0}, "noise_multiplier"),
        ({"target_epsilon": 1.0, "max_grad_norm": 0.0}, "max_grad_norm"),
        ({"target_epsilon": 1.0, "epochs": 0}, "epochs"),
        ({"target_epsilon": 1.0, "accountant": "gdp-ish"}, "accountant"),
    ],
)
def test_make_private_rejects_bad_parameters(kwargs: dict, match: str) -> None:
    model, opt, loader = _parts()
    args = {"delta": 1e-5, "max_grad_norm": 1.0, "epochs": 1} | kwargs
    with pytest.raises(InvalidInput, match=match):
        make_private(module=model, optimizer=opt, data_loader=loader, **args)


def test_make_private_rejects_batchnorm_and_secure_mode_without_csprng() -> None:
    model, opt, loader = _parts()
    bn = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    with pytest.raises(InvalidInput, match="not supported"):
        make_private(
            module=bn,
            optimizer=torch.optim.SGD(bn.parameters(), lr=0.1),
            data_loader=loader,
            target_epsilon=1.0,
            delta=1e-5,
            max_grad_norm=1.0,
            epochs=1,
        )
    try:
        import torchcsprng  # noqa: F401
    except ImportError:
        with pytest.raises(DependencyMissing, match="torchcsprng"):
            make_private(
                module=model,
                optimizer=opt,
                data_loader=loader,
                target_epsilon=1.0,
                delta=1e-5,
                max_grad_norm=1.0,
                epochs=1,
                secure_mode=True,
            )


def test_plan_matches_the_run() -> None:
    d = load_dataset("breast_cancer")
    dp = DPSettings(epsilon=5.0, delta=1e-4)
    plan, per_epoch = plan_private_run(n_train=d.n_train, batch_size=32, epochs=4, dp=dp)
    report = train_recipe(dataset=d, dp=dp, epochs=4, batch_size=32, lr=0.5)
    assert report.steps == plan.steps == per_epoch * 4
    assert report.epsilon == pytest.approx(plan.epsilon, rel=1e-9) and report.epsilon <= 5.0
    assert report.noise_multiplier == plan.noise_multiplier


def test_dp_training_on_digits_at_epsilon_3_keeps_85_percent() -> None:
    d = load_dataset("digits")
    report = train_recipe(dataset=d, dp=DPSettings(epsilon=3.0, delta=1e-5))
    assert report.private and report.epsilon is not None and report.epsilon <= 3.0
    assert report.accuracy >= 0.85
    assert report.epsilon_rdp == pytest.approx(
        reference_rdp_epsilon(report.noise_multiplier, report.sample_rate, report.steps, 1e-5), rel=0.01
    )


def test_dpsettings_validation() -> None:
    for bad in (
        {"epsilon": 0},
        {"epsilon": 1, "delta": 1.5},
        {"epsilon": 1, "accountant": "x"},
        {"epsilon": 1, "max_grad_norm": -1},
    ):
        with pytest.raises(InvalidInput):
            DPSettings(**bad)


def test_importing_opacus_leaves_logging_to_the_application() -> None:
    # issue 14 item 12: Opacus' import-time logging.basicConfig printed raw "12/04/2026 …:WARNING:" lines
    import subprocess
    import sys

    code = (
        "import logging\n"
        "from bastion.privacy.dp import noise_for_epsilon\n"
        "noise_for_epsilon(target_epsilon=3.0, delta=1e-5, sample_rate=0.1, steps=10)\n"
        "print(len(logging.getLogger().handlers))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert proc.stdout.strip() == "0"
