"""Region label marks (opt-in, :mod:`bastion.watermark.regions`): consistency, cost, an exact per-region test.

The victim is the watermark tests' shared digits MLP (trained once per session); the suspects
are real copies: a 1-nearest-neighbour classifier fitted on the answers a consumer got (it memorises every
answer, marks included) and the same fitted on clean labels (the null)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bastion.errors import InvalidInput
from bastion.watermark.regions import RegionMarker, attribute_regions

from .conftest import KEY, OTHER_KEY


@pytest.fixture(scope="module")
def victim(digits: Any, clean_model: Any) -> dict[str, Any]:
    from bastion.models.adapters import TorchAdapter

    model = TorchAdapter(clean_model.module, input_shape=(64,), n_classes=10, clip_values=(0.0, 1.0))
    rng = np.random.default_rng(1)
    dirs = rng.standard_normal((32, digits.x_train.shape[1]))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    scale = float((digits.x_train @ dirs.T).std(axis=0).mean())
    return {"ds": digits, "model": model, "scale": scale}


def _marker(v: dict[str, Any], key: Any = KEY, **kw: Any) -> RegionMarker:
    ds = v["ds"]
    return RegionMarker(key, n_features=ds.x_train.shape[1], n_classes=ds.n_classes, scale=v["scale"], **kw)


def _copy(x: np.ndarray, labels: np.ndarray) -> Any:
    from sklearn.neighbors import KNeighborsClassifier

    return KNeighborsClassifier(n_neighbors=1).fit(x, labels)


def test_marks_are_consistent_per_region_and_only_where_unsure(victim: dict[str, Any]) -> None:
    ds, model = victim["ds"], victim["model"]
    mk = _marker(victim, rate=0.3)
    p = model.predict_proba(ds.x_train)
    out, swapped = mk.mark("alice", ds.x_train, p, record=False)
    again, _ = mk.mark("alice", ds.x_train, p, record=False)
    np.testing.assert_array_equal(out, again)  # the same input always gets the same answer
    assert swapped.any()
    assert (p[swapped].max(axis=1) < mk.band).all()  # confident answers are never marked
    np.testing.assert_array_equal(out[~swapped], p[~swapped])
    np.testing.assert_allclose(np.sort(out[swapped], axis=1), np.sort(p[swapped], axis=1))  # scores swapped
    eligible, _marked, target, digests = mk.regions("alice", ds.x_train, p)
    assert (out[swapped].argmax(axis=1) == target[swapped]).all()
    by_region: dict[bytes, set[bool]] = {}
    for i in np.flatnonzero(eligible):  # every eligible row of a region gets the same treatment
        by_region.setdefault(digests[i], set()).add(bool(swapped[i]))
    assert all(len(s) == 1 for s in by_region.values())
    other, _ = mk.mark("bob", ds.x_train, p, record=False)  # per consumer
    assert not np.array_equal(out, other)
    keyed, _ = _marker(victim, OTHER_KEY, rate=0.3).mark("alice", ds.x_train, p, record=False)
    assert not np.array_equal(out, keyed)  # per key


def test_benign_cost_is_bounded_by_the_marked_mass(victim: dict[str, Any]) -> None:
    """Only unsure answers in marked regions change: the marked mass is about rate x the unsure share, and
    a benign client loses at most that."""
    ds, model = victim["ds"], victim["model"]
    p = model.predict_proba(ds.x_test)
    base = float((p.argmax(1) == ds.y_test).mean())
    mk = _marker(victim)
    mass = np.mean([mk.mark(f"c{i}", ds.x_test, p, record=False)[1].mean() for i in range(20)])
    unsure = float((p.max(axis=1) < mk.band).mean())
    assert 0 < mass <= 2 * mk.rate * unsure
    costs = [
        base - float((mk.apply(f"c{i}", ds.x_test, p, record=False).argmax(1) == ds.y_test).mean())
        for i in range(20)
    ]
    assert float(np.mean(costs)) <= mass + 1e-9


def test_a_memorising_copy_is_named_and_a_clean_copy_is_not(victim: dict[str, Any]) -> None:
    ds, model = victim["ds"], victim["model"]
    mk = _marker(victim, rate=0.2)
    rng = np.random.default_rng(3)
    for i in range(5):  # honest consumers beside the thief
        xs = ds.x_test[rng.integers(0, len(ds.x_test), 300)]
        mk.apply(f"customer-{i}", xs, model.predict_proba(xs))
    pool = ds.x_train
    answers = mk.apply("mallory", pool, model.predict_proba(pool)).argmax(1)
    names = ["mallory", *(f"customer-{i}" for i in range(5))]
    att = mk.attribute(predict=_copy(pool, answers).predict, consumers=names)
    m_hit, m_n, c_hit, _c_n, _ = att.tests["mallory"]
    assert att.named == ("mallory",) and att.p_value < 1e-6
    assert m_hit == m_n and c_hit == 0
    null = mk.attribute(predict=_copy(pool, model.predict(pool)).predict, consumers=names)
    assert null.named == () and null.p_value > 0.01


def test_the_region_test_holds_its_level_under_the_null(victim: dict[str, Any]) -> None:
    """A suspect independent of the key (random labels, biased towards the targets' classes) is named at
    most at the nominal rate: one Bernoulli per region, marked and control regions exchangeable."""
    ds, model = victim["ds"], victim["model"]
    p = model.predict_proba(ds.x_train)
    rng = np.random.default_rng(9)
    small = 0
    trials = 60
    for t in range(trials):
        mk = _marker(victim, rate=0.2)
        mk.apply(f"c{t}", ds.x_train, p)
        flip = rng.random(len(p)) < 0.5
        guess = np.where(flip, np.argsort(-p, axis=1)[:, 1], p.argmax(1))  # runner-up half the time
        table = dict(zip((row.tobytes() for row in ds.x_train.astype(np.float32)), guess, strict=True))
        att = mk.attribute(
            predict=lambda x, tb=table: np.array([tb[r.tobytes()] for r in np.asarray(x, np.float32)]),
            consumers=[f"c{t}"],
        )
        small += att.tests[f"c{t}"][4] < 0.05
    assert small <= 0.05 * trials + 3  # binomial slack: 60 trials at level 0.05


def test_bad_parameters_fail_closed(victim: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        _marker(victim, rate=0.0)
    with pytest.raises(InvalidInput):
        _marker(victim, by="anything")
    with pytest.raises(InvalidInput):
        _marker(victim).mark("a", np.zeros((2, 3)), np.zeros((2, 10)))
    with pytest.raises(InvalidInput):
        attribute_regions(predict=lambda x: x, records={})
