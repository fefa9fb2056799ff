"""API watermark (DAWN-style): keyed deterministic selection at < 0.5 %, consistent answers, bounded MAC'd
marks, and detection in a surrogate extracted through the watermarked API (the audit's extraction attack)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bastion.errors import IntegrityError, InvalidInput, NotFound
from bastion.models.adapters import CallableAdapter, TorchAdapter
from bastion.watermark import ApiMarks, ApiWatermark, verify_marks

from .conftest import KEY, OTHER_KEY


def _probs(n: int, k: int = 10, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = rng.random((n, k)).astype(np.float32) + 0.01
    return p / p.sum(axis=1, keepdims=True)


def test_selection_rate_is_below_half_a_percent_and_deterministic() -> None:
    wm = ApiWatermark(KEY)
    x = np.random.default_rng(1).integers(0, 17, size=(40_000, 64)) / 16.0  # digit-like pixel levels
    marked = wm.is_marked(x)
    assert 0.002 < marked.mean() < 0.005
    assert np.array_equal(marked, ApiWatermark(KEY).is_marked(x))
    assert not np.array_equal(marked, ApiWatermark(OTHER_KEY).is_marked(x))
    # quantised: float jitter (e.g. float32 round trips) keeps the decision
    assert np.array_equal(marked, wm.is_marked(x.astype(np.float32) + 1e-5))
    assert wm.is_marked(x[0]).shape == (1,)
    with pytest.raises(InvalidInput):
        ApiWatermark(KEY, rate=0.05)


def test_apply_swaps_top_class_on_marked_rows_only_and_is_consistent() -> None:
    wm = ApiWatermark(KEY, rate=0.005)
    x = np.random.default_rng(2).random((4000, 64))
    probs = _probs(4000)
    out = wm.apply(x, probs)
    marked = wm.is_marked(x)
    assert marked.sum() > 5
    assert np.array_equal(out[~marked], probs[~marked])
    assert np.all(out[marked].argmax(axis=1) != probs[marked].argmax(axis=1))
    assert np.allclose(out.sum(axis=1), probs.sum(axis=1))
    assert np.allclose(np.sort(out, axis=1), np.sort(probs, axis=1))
    again = wm.apply(x[marked], probs[marked])  # the same query gets the same answer
    assert np.array_equal(again, out[marked])
    assert len(wm) == int(marked.sum())  # repeats are recorded once
    with pytest.raises(InvalidInput):
        wm.apply(x[:3], probs[:2])


def test_marks_are_bounded_macd_and_reject_a_wrong_key(tmp_path: Path) -> None:
    wm = ApiWatermark(KEY, rate=0.005, max_records=5)
    with pytest.raises(NotFound):
        wm.marks()
    x = np.random.default_rng(3).random((20_000, 64))
    wm.apply(x, _probs(20_000))
    marks = wm.marks()
    assert len(marks.labels) == 5 and marks.x.shape == (5, 64)
    path = marks.save(tmp_path / "marks.json")
    loaded = ApiMarks.load(path)
    loaded.check(KEY)
    with pytest.raises(InvalidInput, match="wrong watermark key"):
        loaded.check(OTHER_KEY)
    forged = ApiMarks(
        key_id=loaded.key_id,
        n_classes=loaded.n_classes,
        rate=loaded.rate,
        quantum=loaded.quantum,
        x=loaded.x,
        labels=(loaded.labels + 1) % 10,
        mac=loaded.mac,
    )
    with pytest.raises(IntegrityError):
        forged.check(KEY)


@pytest.mark.slow
def test_surrogate_extracted_through_the_api_carries_the_mark(
    digits, clean_model, independent_models
) -> None:
    from bastion.adversarial.attacks.extraction import extract

    victim = TorchAdapter(clean_model.module, input_shape=(64,), n_classes=10, clip_values=(0.0, 1.0))
    wm = ApiWatermark(KEY, rate=0.005)
    api = CallableAdapter(lambda q: wm.apply(q, victim.predict_proba(q)), n_classes=10, input_shape=(64,))
    pool = np.concatenate([digits.x_train, digits.x_test])  # distinct natural queries (knockoff)
    stolen = extract(
        victim=api,
        strategy="knockoff",
        budgets=(len(pool),),
        data=pool,
        eval_x=digits.x_test,
        eval_y=digits.y_test,
        hidden=(256,),
        train_steps=3000,
        seed=0,
    )
    assert stolen.points[-1].fidelity > 0.95
    marks = wm.marks()
    result = verify_marks(model=stolen.surrogate, marks=marks, key=KEY)
    assert result.p_value < 1e-4 and result.chance == pytest.approx(1 / 9)
    # without the API watermark in the loop: the victim itself and independent models show nothing
    assert verify_marks(model=victim, marks=marks, key=KEY).hits == 0
    for trained in independent_models:
        other = TorchAdapter(trained.module, input_shape=(64,), n_classes=10)
        assert verify_marks(model=other, marks=marks, key=KEY).p_value > 0.01
    with pytest.raises(InvalidInput, match="wrong watermark key"):
        verify_marks(model=stolen.surrogate, marks=marks, key=OTHER_KEY)
    narrow = TorchAdapter(clean_model.module, input_shape=(64,), n_classes=10)
    with pytest.raises(InvalidInput, match="classes"):
        verify_marks(
            model=CallableAdapter(lambda q: np.full((len(q), 3), 1 / 3), n_classes=3, input_shape=(64,)),
            marks=marks,
            key=KEY,
        )
    assert narrow.n_classes == 10
