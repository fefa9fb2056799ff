"""Evasion attacks: correctness against ART (oracle), budgets respected, ensemble, masking warning, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bastion.adversarial.attacks import evasion as ev
from bastion.errors import InvalidInput
from bastion.models import CallableAdapter, SklearnAdapter, TorchAdapter


def _linf(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max())


SEEDS = range(5)


@pytest.mark.parametrize("eps", [0.05, 0.1])
def test_pgd_at_least_as_strong_as_art(digits_model: TorchAdapter, digits, eps: float) -> None:  # type: ignore[no-untyped-def]
    """Same model, data (the whole digits test split), labels, ε, steps, step size and one random start;
    five seeds each. ART gets the true labels ``y`` (without them it attacks the model's own predictions,
    a weaker attack). Bastion's mean robust accuracy must not exceed ART's by more than 0.5 pp."""
    art_cls = pytest.importorskip("art.estimators.classification")
    art_atk = pytest.importorskip("art.attacks.evasion")
    x, y = digits.x_test.astype(np.float32), digits.y_test
    steps = 20
    clf = art_cls.PyTorchClassifier(
        model=digits_model.module,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=(64,),
        nb_classes=10,
        clip_values=(0.0, 1.0),
    )
    ours, theirs = [], []
    for seed in SEEDS:
        x_adv = ev.pgd(digits_model, x, y, eps=eps, steps=steps, step_size=2.5 * eps / steps, seed=seed)
        ours.append(ev.accuracy(digits_model, x_adv, y))
        np.random.seed(seed)  # ART draws its random start from numpy's global generator
        attack = art_atk.ProjectedGradientDescent(
            clf,
            norm=np.inf,
            eps=eps,
            eps_step=2.5 * eps / steps,
            max_iter=steps,
            num_random_init=1,
            batch_size=len(x),
            verbose=False,
        )
        theirs.append(ev.accuracy(digits_model, attack.generate(x, y=y).astype(np.float32), y))
    assert np.mean(ours) <= np.mean(theirs) + 0.005, (ours, theirs)
    assert max(ours) < ev.accuracy(digits_model, x, y) - 0.05  # the attack does something


@pytest.mark.parametrize("norm", ["inf", "l2"])
def test_pgd_and_apgd_stay_in_budget_and_range(digits_model: TorchAdapter, eval_set, norm: str) -> None:  # type: ignore[no-untyped-def]
    x, y = eval_set
    eps = 0.1 if norm == "inf" else 1.0
    for x_adv in (
        ev.pgd(digits_model, x, y, eps=eps, norm=norm, steps=10, restarts=2),
        ev.apgd(digits_model, x, y, eps=eps, norm=norm, steps=20),
    ):
        d = (x_adv - x).reshape(len(x), -1)
        dist = np.abs(d).max(axis=1) if norm == "inf" else np.linalg.norm(d, axis=1)
        assert dist.max() <= eps * (1 + 1e-4) + 1e-6
        assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
        assert ev.accuracy(digits_model, x_adv, y) < ev.accuracy(digits_model, x, y) - 0.1


def test_attack_strength_ordering(digits_model: TorchAdapter, eval_set) -> None:  # type: ignore[no-untyped-def]
    x, y = eval_set
    clean = ev.accuracy(digits_model, x, y)
    fgsm = ev.accuracy(digits_model, ev.fgsm(digits_model, x, y, eps=0.1), y)
    pgd = ev.accuracy(digits_model, ev.pgd(digits_model, x, y, eps=0.1, steps=20), y)
    apgd = ev.accuracy(digits_model, ev.apgd(digits_model, x, y, eps=0.1, steps=40), y)
    assert clean > fgsm >= pgd - 0.02
    assert apgd <= pgd + 0.02
    assert ev.accuracy(digits_model, ev.pgd(digits_model, x, y, eps=0.0, steps=3), y) == clean


def test_square_is_black_box_and_query_counted(digits_model: TorchAdapter, eval_set) -> None:  # type: ignore[no-untyped-def]
    x, y = eval_set[0][:100], eval_set[1][:100]
    black = CallableAdapter(digits_model.predict_proba, n_classes=10, input_shape=64)
    res = ev.square(black, x, y, eps=0.1, queries=300, seed=1)
    assert _linf(res.x_adv, x) <= 0.1 + 1e-6
    assert 100 <= res.queries <= 300 * 100
    assert ev.accuracy(black, res.x_adv, y) < ev.accuracy(black, x, y) - 0.2
    with pytest.raises(InvalidInput, match="scores"):
        ev.square(
            CallableAdapter(digits_model.predict, n_classes=10, input_shape=64, outputs="labels"),
            x,
            y,
            eps=0.1,
        )


@pytest.mark.parametrize("norm", ["l2", "inf"])
def test_hop_skip_jump_label_only(digits_model: TorchAdapter, eval_set, norm: str) -> None:  # type: ignore[no-untyped-def]
    x, y = eval_set[0][:6], eval_set[1][:6]
    labels = CallableAdapter(digits_model.predict, n_classes=10, input_shape=64, outputs="labels")
    res = ev.hop_skip_jump(labels, x, y, norm=norm, iterations=6, seed=0)
    fooled = labels.predict(res.x_adv) != y
    assert fooled.mean() >= 0.8  # a starting point is found and kept on the adversarial side
    d = (res.x_adv - x).reshape(len(x), -1)
    dist = np.abs(d).max(axis=1) if norm == "inf" else np.linalg.norm(d, axis=1)
    # the boundary search shrinks the perturbation far below that of a random starting point
    assert np.median(dist[fooled]) < (0.5 if norm == "inf" else 3.0)
    assert res.queries > 0


def test_ensemble_is_worst_case_per_example(digits_model: TorchAdapter, eval_set) -> None:  # type: ignore[no-untyped-def]
    x, y = eval_set[0][:80], eval_set[1][:80]
    cfg = ev.EnsembleConfig(pgd_steps=10, apgd_steps=20, square_queries=100, hsj_iterations=3, hsj_examples=5)
    res = ev.evaluate_robustness(digits_model, x, y, eps=0.1, config=cfg)
    assert set(res.per_attack) == {"pgd", "apgd-ce", "square", "hopskipjump"}
    assert res.robust_accuracy <= min(res.per_attack.values()) + 1e-9
    assert ev.accuracy(digits_model, res.x_adv, y) <= res.robust_accuracy + 1e-9
    assert res.masking_warning is None
    assert res.to_dict()["n_examples"] == 80


class _Masked(torch.nn.Module):
    """Rounds its input to 4 levels first: zero gradients everywhere (classic gradient masking)."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(torch.round(x * 3) / 3)


def test_gradient_masking_warning(digits_model: TorchAdapter, eval_set) -> None:  # type: ignore[no-untyped-def]
    x, y = eval_set[0][:100], eval_set[1][:100]
    masked = TorchAdapter(
        _Masked(digits_model.module), input_shape=(64,), n_classes=10, clip_values=(0.0, 1.0)
    )
    keep = masked.predict(x) == y
    cfg = ev.EnsembleConfig(pgd_steps=10, apgd_steps=10, square_queries=300, hsj_iterations=0)
    res = ev.evaluate_robustness(masked, x[keep], y[keep], eps=0.2, config=cfg)
    assert res.per_attack["square"] < res.per_attack["pgd"] - 0.05
    assert res.masking_warning is not None and "gradient masking" in res.masking_warning


def test_clear_errors(digits_model: TorchAdapter, eval_set) -> None:  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LogisticRegression

    x, y = eval_set
    sk = SklearnAdapter(LogisticRegression(max_iter=500).fit(x, y))
    with pytest.raises(InvalidInput, match="needs gradients"):
        ev.pgd(sk, x, y, eps=0.1)
    with pytest.raises(InvalidInput, match="norm"):
        ev.pgd(digits_model, x, y, eps=0.1, norm="l1")
    with pytest.raises(InvalidInput, match="eps"):
        ev.pgd(digits_model, x, y, eps=float("nan"))
    with pytest.raises(InvalidInput, match="shape"):
        ev.pgd(digits_model, x[:, :10], y, eps=0.1)
    with pytest.raises(InvalidInput, match="NaN"):
        ev.apgd(digits_model, np.full_like(x, np.nan), y, eps=0.1)
    with pytest.raises(InvalidInput, match="empty"):
        ev.fgsm(digits_model, x[:0], y[:0], eps=0.1)
    with pytest.raises(InvalidInput, match="one label per example"):
        ev.pgd(digits_model, x, y[:5], eps=0.1)


def test_fast_mlp_gradient_equals_autograd(digits_model: TorchAdapter, eval_set) -> None:  # type: ignore[no-untyped-def]
    x, y = eval_set
    xt, yt = torch.from_numpy(x[:50]), torch.from_numpy(y[:50])
    ops = ev._mlp_ops(digits_model)
    assert ops is not None and [k for k, _ in ops] == ["linear", "relu", "linear"]
    fast = ev._loss_and_grad(digits_model, xt, yt, ops)
    slow = ev._loss_and_grad(digits_model, xt, yt, None)
    for a, b in zip(fast, slow, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # anything but a plain Linear/ReLU stack takes the autograd path
    tanh = torch.nn.Sequential(torch.nn.Linear(64, 4), torch.nn.Tanh(), torch.nn.Linear(4, 10))
    assert ev._mlp_ops(TorchAdapter(tanh, input_shape=(64,), n_classes=10)) is None
    masked = TorchAdapter(_Masked(digits_model.module), input_shape=(64,), n_classes=10)
    assert ev._mlp_ops(masked) is None


class _FlippedLinear(torch.nn.Linear):
    """A subclass of nn.Linear with its own forward (as a defended or LoRA-style layer would have)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -super().forward(x)


def _copy_mlp(model: TorchAdapter) -> torch.nn.Sequential:
    import copy

    return copy.deepcopy(model.module)


def _variants(model: TorchAdapter) -> dict[str, TorchAdapter]:
    """The digits MLP changed in ways the hand-written MLP pass would silently ignore."""
    sub = _copy_mlp(model)
    last = sub[-1]
    flipped = _FlippedLinear(last.in_features, last.out_features)
    flipped.load_state_dict(last.state_dict())
    sub[-1] = flipped
    hooked = _copy_mlp(model)
    hooked[-1].register_forward_hook(lambda _m, _i, out: -out)  # a hook that changes the function
    pre = _copy_mlp(model)
    pre[1].register_forward_pre_hook(lambda _m, args: (args[0] * 0.5,))  # a normalising pre-hook
    return {
        name: TorchAdapter(m, input_shape=(64,), n_classes=10, clip_values=(0.0, 1.0))
        for name, m in (("subclass", sub), ("forward hook", hooked), ("pre-hook", pre))
    }


def test_fast_path_only_for_exact_types_without_hooks(digits_model: TorchAdapter, eval_set) -> None:  # type: ignore[no-untyped-def]
    """A subclassed or hooked layer changes the model's function: PGD must attack that function (the
    textbook autograd PGD on the real module), not the plain Linear/ReLU stack underneath."""
    x, y = eval_set[0][:100], eval_set[1][:100]
    for name, variant in _variants(digits_model).items():
        assert ev._mlp_ops(variant) is None, name
        ours = ev.pgd(variant, x, y, eps=0.1, steps=10, batch_size=len(x))
        ref = _reference_pgd(variant, x, y, eps=0.1, steps=10)
        same = np.abs(ours - ref).reshape(len(x), -1).max(axis=1) <= 1e-5
        assert same.mean() >= 0.98, name
        # and what it returns really is adversarial for the variant, not for the plain MLP
        assert abs(ev.accuracy(variant, ours, y) - ev.accuracy(variant, ref, y)) <= 0.01, name
    # a global hook or an overridden adapter also disables the fast path
    handle = torch.nn.modules.module.register_module_forward_hook(lambda _m, _i, out: out)
    try:
        assert ev._mlp_ops(digits_model) is None
    finally:
        handle.remove()
    assert ev._mlp_ops(digits_model) is not None

    class Scaled(TorchAdapter):
        def logits_tensor(self, x: torch.Tensor) -> torch.Tensor:
            return super().logits_tensor(x) * 2

    scaled = Scaled(digits_model.module, input_shape=(64,), n_classes=10, clip_values=(0.0, 1.0))
    assert ev._mlp_ops(scaled) is None


def _reference_pgd(
    model: TorchAdapter, x: np.ndarray, y: np.ndarray, *, eps: float, steps: int
) -> np.ndarray:
    """Textbook PGD on every row for every step (autograd), keeping the first misclassified iterate."""
    alpha = 2.5 * eps / steps
    x0, y0 = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(0)
    xa = (x0 + (torch.rand(x0.shape, generator=gen) * 2 - 1) * eps).clamp(0.0, 1.0)
    best, fooled = x0.clone(), torch.zeros(len(y), dtype=torch.bool)
    for _ in range(steps + 1):
        xg = xa.detach().requires_grad_(True)
        logits = model.logits_tensor(xg)
        newly = (logits.argmax(1) != y0) & ~fooled
        best[newly], fooled = xa[newly], fooled | newly
        (grad,) = torch.autograd.grad(torch.nn.functional.cross_entropy(logits, y0, reduction="sum"), xg)
        xa = torch.min(torch.max(xa + alpha * grad.sign(), x0 - eps), x0 + eps).clamp(0.0, 1.0)
    best[~fooled] = xg.detach()[~fooled]
    return best.numpy()


def test_pgd_working_set_gives_the_textbook_result(digits_model: TorchAdapter, eval_set) -> None:  # type: ignore[no-untyped-def]
    """Dropping fooled rows from the batch and the hand-written MLP gradient change speed, not results."""
    x, y = eval_set
    ours = ev.pgd(digits_model, x, y, eps=0.1, steps=10, batch_size=len(x))
    ref = _reference_pgd(digits_model, x, y, eps=0.1, steps=10)
    same = np.abs(ours - ref).reshape(len(x), -1).max(axis=1) <= 1e-5
    assert same.mean() >= 0.98  # a float-rounding sign flip may send a rare row elsewhere
    assert abs(ev.accuracy(digits_model, ours, y) - ev.accuracy(digits_model, ref, y)) <= 0.01


def test_pgd_on_a_cnn_restores_the_weight_layout(digits, eval_set) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 64, 10),
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    xt = torch.from_numpy(digits.x_train.reshape(-1, 1, 8, 8))
    yt = torch.from_numpy(digits.y_train)
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(net(xt), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model = TorchAdapter(net, input_shape=(1, 8, 8), n_classes=10, clip_values=(0.0, 1.0))
    x, y = eval_set[0][:100].reshape(-1, 1, 8, 8), eval_set[1][:100]
    net.train()
    x_adv = ev.pgd(model, x, y, eps=0.1, steps=10)
    # eval mode, frozen and channels-last weights only during the attack
    assert net.training
    assert all(p.is_contiguous() and p.requires_grad for p in net.parameters())
    assert np.abs(x_adv - x).max() <= 0.1 + 1e-6
    assert ev.accuracy(model, x_adv, y) < ev.accuracy(model, x, y) - 0.1
    ref = _reference_pgd(model, x, y, eps=0.1, steps=10)
    assert abs(ev.accuracy(model, x_adv, y) - ev.accuracy(model, ref, y)) <= 0.02
