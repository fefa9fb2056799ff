"""scikit-learn scorers: ``GridSearchCV(scoring="accuracy")`` loads, a scorer wrapping anything else does not.

A scorer (``sklearn.metrics._scorer._Scorer``) calls the function its state names whenever the estimator is
scored, so the state is the attack surface: the adaptive attacker keeps the exact construction sklearn writes
(``NEWOBJ`` + ``BUILD``) and swaps the function for ``os.system`` or for an allow-listed callable that is not
a metric (LightGBM's ``Booster`` opens the path it is given; ``pairwise_kernels`` calls its ``metric``). Every
attack is judged by ``bastion scan``, by ``safe_load`` and, with the scan bypassed, by the restricted
unpickler; the control (plain ``pickle.loads``, no defence) shows the attacker's callable in place.
"""

from __future__ import annotations

import copyreg
import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, fbeta_score, make_scorer
from sklearn.metrics._scorer import _CurveScorer, _Scorer
from sklearn.metrics.pairwise import pairwise_kernels
from sklearn.model_selection import GridSearchCV

from bastion.errors import UnsafeArtifact
from bastion.scan import safe_load, scan
from bastion.scan._unpickler import LoadRefused, restricted_loads

X, Y = load_iris(return_X_y=True)
GOOD = {"_score_func": accuracy_score, "_sign": 1, "_kwargs": {}, "_response_method": "predict"}


class _Forged:
    """Pickles as ``NEWOBJ(cls) + BUILD(state)``: the construction sklearn itself writes, any state."""

    def __init__(self, cls: type, state: Any, args: tuple[Any, ...] = ()) -> None:
        self.cls, self.state, self.args = cls, state, args

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # pickle checks NEWOBJ's class against it
        return self.cls

    def __reduce__(self) -> Any:
        if self.args:
            return (self.cls, self.args)  # called with arguments (REDUCE)
        return (copyreg.__newobj__, (self.cls,), self.state)  # type: ignore[attr-defined]


def _grid(scoring: Any = "accuracy") -> GridSearchCV:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GridSearchCV(LogisticRegression(max_iter=200), {"C": [0.1, 1.0]}, scoring=scoring, cv=2).fit(
            X, Y
        )


@pytest.fixture(scope="module")
def grids() -> list[GridSearchCV]:
    scorings: list[Any] = ["accuracy", "roc_auc_ovr", make_scorer(fbeta_score, beta=2, average="macro")]
    models = [_grid(scoring) for scoring in scorings]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models.append(
            GridSearchCV(
                LogisticRegression(max_iter=200),
                {"C": [1.0]},
                scoring=["accuracy", "f1_macro"],
                refit="accuracy",
                cv=2,
            ).fit(X, Y)
        )
    return models


@pytest.mark.parametrize("proto", [0, 2, 4, 5])
def test_grid_search_with_named_scorers_loads(tmp_path: Path, grids: list[GridSearchCV], proto: int) -> None:
    for model in grids:
        p = tmp_path / f"grid{proto}.pkl"
        p.write_bytes(pickle.dumps(model, proto))
        report = scan(paths=[p])
        assert report.exit_code == 0, [i.message for i in report.files[0].issues]
        assert safe_load(p).score(X, Y) == model.score(X, Y)


def test_grid_search_joblib_and_curve_scorer_load(tmp_path: Path, grids: list[GridSearchCV]) -> None:
    p = tmp_path / "grid.joblib"
    joblib.dump(grids[0], p)
    assert scan(paths=[p]).exit_code == 0
    assert safe_load(p).score(X, Y) > 0.9
    curve = _CurveScorer(accuracy_score, 1, {}, thresholds=10, response_method="predict_proba")
    loaded = restricted_loads(pickle.dumps(curve, 4))
    assert isinstance(loaded, _CurveScorer) and loaded._score_func is accuracy_score


def _attacks() -> dict[str, Any]:
    lgb = pytest.importorskip("lightgbm")
    booster = lgb.basic.Booster
    dup = pickle.dumps(_Forged(_Scorer, {**GOOD, "x_core_func": booster}), 2)
    assert dup.count(b"x_core_func") == 1
    return {
        "os.system": _Forged(_Scorer, {**GOOD, "_score_func": os.system}),
        "allow-listed Booster": _Forged(_Scorer, {**GOOD, "_score_func": booster}),
        "allow-listed pairwise_kernels": _Forged(_Scorer, {**GOOD, "_score_func": pairwise_kernels}),
        "allow-listed copyreg._reconstructor": _Forged(
            _CurveScorer, {**GOOD, "_score_func": copyreg._reconstructor, "_thresholds": 3}
        ),
        "callable inside _kwargs": _Forged(_Scorer, {**GOOD, "_kwargs": {"metric": booster}}),
        "unknown field": _Forged(_Scorer, {**GOOD, "_estimator": booster}),
        "response method not a predict": _Forged(_Scorer, {**GOOD, "_response_method": "__class__"}),
        "key equal to _score_func": _Forged(_Scorer, {np.str_("_score_func"): booster, "_sign": 1}),
        "slot-state tuple": _Forged(_Scorer, (GOOD, {"_score_func": booster})),
        "called with arguments": _Forged(_Scorer, None, args=(booster, 1, {})),
        "duplicate _score_func key": dup.replace(b"x_core_func", b"_score_func"),
    }


@pytest.mark.parametrize("name", sorted(_attacks()))
def test_adaptive_scorer_attacks_are_refused(tmp_path: Path, name: str) -> None:
    attack = _attacks()[name]
    data = attack if isinstance(attack, bytes) else pickle.dumps(attack, 2)
    # without the defence: plain pickle builds a scorer that will call the attacker's callable
    undefended = pickle.loads(data)  # nothing in these states runs at load
    assert isinstance(undefended, _Scorer | _CurveScorer)
    assert vars(undefended) != GOOD
    for proto_data in (data, pickle.dumps(undefended, 4) if name != "duplicate _score_func key" else data):
        p = tmp_path / "scorer.pkl"
        p.write_bytes(proto_data)
        report = scan(paths=[p])
        assert report.exit_code == 1, name
        with pytest.raises(UnsafeArtifact):
            safe_load(p)
        with pytest.raises(LoadRefused):
            restricted_loads(proto_data)


def test_reconstructor_form_only_with_object_and_no_state(grids: list[GridSearchCV]) -> None:
    # protocol 0/1 writes copyreg._reconstructor(_Scorer, object, None): equivalent to NEWOBJ, accepted
    assert isinstance(restricted_loads(pickle.dumps(grids[0].scorer_, 0)), _Scorer)
    data = pickle.dumps(grids[0].scorer_, 0).replace(b"c__builtin__\nobject", b"c__builtin__\ndict")
    with pytest.raises(LoadRefused):
        restricted_loads(data)
