"""Model theft against bastion's extraction defence, with the PRADA-only monitor as the baseline beside it.

Usage: .venv/bin/python benchmarks/bench_extraction.py [--datasets digits,breast_cancer]
       [--budgets 500,1000,2000,10000] [--streams 100] [--stream-rows 2000] [--attacks all] [--keys 0]
       (``--keys N``: the benign streams and every synthetic attack's first flag again under N fresh random
       deployment keys, since the coverage monitor's hyperplanes and calibration come from the key;
       ``--monitor-keys N``: only the coverage monitor, alone, under N random keys — fast;
       ``--seeded N``: only the seeded attacks of ``_extraction_seeded`` under N random keys: first flag,
       copy@2000, a copy of their natural rows alone, the gain, and the copy's attribution; with
       ``--attacks thirds-boundary,thirds-class`` the round-20 thirds mixers instead;
       ``--video N``: only benign video streams up-converted 3x, under N random keys, ``_extraction_video``;
       with ``--attacks scenes15-blend,scenes45-blend`` (its stream kinds) those only)
       (``--attacks labels-adaptive,labels-adaptive-train``: the adaptive label-only attackers against the
       label marks, attacker pool the test / the training split; ``labels-adaptive-band[-train]`` the same
       with the opt-in low-confidence band ``--band 0.9 --band-rate 0.5``; ``labels-region[-train]`` the same
       attackers against the opt-in region marks, ``--region-by/-band/-rate/-cell/-projections``; none of
       these is part of ``all``)
       (``sybil``: the mixup attack spread over fresh accounts of ``SYBIL_ROWS`` = 29 rows, each from its own
       address, so no account reaches ``min_rows``; its flag is the newcomers' pool's, at the attacker's row
       count)

For each dataset one victim MLP (64 hidden units, trained on the built-in training split) is served 3 ways,
same run, same model, same queries: ``none`` (full probabilities, the consumer top-3 rounding of the default
output rule applied), ``prada`` (the anchor: the PRADA + coverage monitor with the label-only response of the
previous gateway) and ``bastion`` (:class:`bastion.serve.theft.TheftDefence`, default policy, with the
per-consumer API watermark). Each attack (``bastion.adversarial.attacks.extraction``) trains a surrogate from
the answers at each budget; fidelity (agreement with the clean victim) and accuracy are measured on the
training split (the attacker's natural pool is the test split: the two never overlap), and the query count at
first flag is printed. Then the natural-data surrogate is checked for attribution (p-value, consumer named)
and ``--streams`` benign streams of ``--stream-rows`` rows (repeats, single class, bursts, batch jobs) give
false-flag count and the benign accuracy cost of every response.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from typing import Any

import numpy as np

from bastion.adversarial.attacks.extraction import extract
from bastion.adversarial.attacks.membership import mlp_shadow_trainer
from bastion.models.data import load_dataset
from bastion.serve.config import MonitorConfig
from bastion.serve.monitor import ExtractionMonitor
from bastion.serve.responses import truncate
from bastion.serve.theft import DefendedModel, TheftDefence, TheftPolicy
from bastion.watermark.api import ConsumerWatermark
from bastion.watermark.labels import LabelMarker
from bastion.watermark.regions import RegionMarker

# nearmix: the round-8 review's adaptive near-manifold mixer (F1); -noise / -unsent: the same attacker knowing
# the mixtures test (noise on each mix; mixes of natural rows it never sent)
NEARMIX = ("nearmix", "nearmix-noise", "nearmix-unsent")
NEARMIX_NOISE = 0.5  # nearmix-noise: the noise's norm, x the gap
SYNTHETIC = ("random", "bucket", "jacobian", "jacobian-random", "mixup", "adaptive", *NEARMIX)
ATTACKS = (*SYNTHETIC, "sybil", "knockoff", "knockoff-labels", "knockoff-labels-filter")
# JBDA made to look like noise by an attacker who knows the informative-step test (round 9; quiet_jbda)
QUIET = ("jbda-gauss", "jbda-half", "noise-aug")
SYBIL_ROWS = 29  # sybil: rows per account, below min_rows (40): no account is ever judged on its own
LABEL_ADAPTIVE = ("plain", "twice-0.02", "twice-0.1", "smooth", "subset", "clean-cv", "two-accounts")
FILTER_NOISE = (0.02, 0.1)  # the query-twice attacker's noise, per feature, in units of the projection spread
SECRET = b"bench-deployment-secret-32-bytes"
LABEL_RATE = 0.01  # the deployment's label-mark rate (build_defence), capped at 1 % of distinct cells


class Plain:
    """Undefended: the consumer role's output rule (top-3, 3 decimals)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.input_shape, self.n_classes = model.input_shape, model.n_classes
        self.clip_values = getattr(model, "clip_values", None)
        self.label_only = False
        self.first_flag: int | None = None

    def predict_proba(self, x: Any) -> np.ndarray:
        return truncate(self.model.predict_proba(x), top_k=3, decimals=3)

    def predict(self, x: Any) -> np.ndarray:
        return np.asarray(self.predict_proba(x).argmax(axis=1))


class PradaOnly(Plain):
    """The anchor: the previous monitor (PRADA + coverage, public seed), label-only once flagged."""

    def __init__(self, model: Any, center: float) -> None:
        super().__init__(model)
        d = int(np.prod(model.input_shape))
        self.monitor = ExtractionMonitor(config=MonitorConfig(), n_features=d, center=center)
        bits = MonitorConfig().coverage_bits  # the previous gateway's public hyperplanes (seed 0)
        self.monitor._planes = np.random.default_rng(0).standard_normal((d, bits)).astype(np.float32)
        self.seen = 0

    def predict_proba(self, x: Any) -> np.ndarray:
        arr = np.asarray(x, dtype=np.float32)
        out = truncate(self.model.predict_proba(arr), top_k=3, decimals=3)
        for start in range(0, len(arr), 20):
            part = arr[start : start + 20]
            verdict = self.monitor.observe("attacker", part.reshape(len(part), -1))
            self.seen += len(part)
            if verdict.flagged:
                if self.first_flag is None:
                    self.first_flag = self.seen
                onehot = np.eye(self.n_classes)[out[start : start + 20].argmax(axis=1)]
                out[start : start + 20] = onehot
        return out


def setup(name: str) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    d = load_dataset(name, seed=0)
    nf = int(np.prod(d.x_train.shape[1:]))
    clip = (0.0, 1.0) if name == "digits" else None
    victim = mlp_shadow_trainer(
        input_shape=(nf,),
        n_classes=d.n_classes,
        hidden=(64,),
        epochs=30,
        batch_size=64,
        lr=3e-3,
        clip_values=clip,
    )(d.x_train, d.y_train, 0)
    rng = np.random.default_rng(1)
    dirs = rng.standard_normal((32, nf))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    scale = float((d.x_train @ dirs.T).std(axis=0).mean())
    center = 0.5 if name == "digits" else 0.0
    return {"data": d, "victim": victim, "scale": scale, "center": center, "clip": clip}


def defence(env: dict[str, Any], policy: TheftPolicy | None = None, secret: bytes = SECRET) -> TheftDefence:
    d = env["data"]
    wm = ConsumerWatermark(
        secret,
        n_features=d.x_train.shape[1],
        n_classes=d.n_classes,
        scale=env["scale"],
        cycles=0.5,
        wave_format=2,  # as build_defence serves (the deployment wave's carrier keyed per region)
    )
    labels = LabelMarker(
        secret, n_features=d.x_train.shape[1], n_classes=d.n_classes, scale=env["scale"], rate=LABEL_RATE
    )
    return TheftDefence(
        reference_x=d.x_train,
        reference_y=d.y_train,
        n_classes=d.n_classes,
        policy=policy,
        secret=secret,
        watermark=wm,
        labels=labels,
        center=env["center"],
        predict=env["victim"].predict_proba,  # the informative-step test (bastion.serve._theft_steps)
    )


class MarksOnly(Plain):
    """Only the label marks (no detector, no other response): isolates the marks' robustness to the filter."""

    def __init__(self, model: Any, env: dict[str, Any]) -> None:
        super().__init__(model)
        d = env["data"]
        self.defence = defence(env)  # its label marker, and its respond() for the honest customers
        self.labels = self.defence.labels
        self.consumers = ("mallory",)
        _ = d

    def predict_proba(self, x: Any) -> np.ndarray:
        assert self.labels is not None
        return self.labels.apply("mallory", x, self.model.predict_proba(x))


class Sybil(DefendedModel):
    """One attacker over many accounts (F6): a fresh identity, from its own address, every ``per`` rows."""

    def __init__(self, model: Any, guard: TheftDefence, per: int = SYBIL_ROWS) -> None:
        super().__init__(model, guard, consumers=("sybil-0", "addr:203.0.0.0"))
        self.per = per

    def predict_proba(self, x: Any) -> np.ndarray:
        arr = np.asarray(x, dtype=np.float32)
        out = np.full((len(arr), self.n_classes), 1.0 / self.n_classes)
        start = 0
        while start < len(arr) and self.refused is None:
            a = self.answered // self.per
            self.consumers = (f"sybil-{a}", f"addr:203.0.{a // 250}.{a % 250}")
            n = self.per - self.answered % self.per
            out[start : start + n] = super().predict_proba(arr[start : start + n])
            start += n
        return out


class AtFlag:
    """A served model that records the rows it answered before its first flag: a thief that notices the
    flag (the answers change) can stop there and train on those answers alone (round-9 review, F6)."""

    def __init__(self, served: Any, batch: int = 20) -> None:
        self.served, self.batch = served, batch
        self.rows: list[np.ndarray] = []
        self.answers: list[np.ndarray] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.served, name)

    def predict_proba(self, x: Any) -> np.ndarray:
        arr = np.asarray(x, dtype=np.float32)
        out = []
        for start in range(0, len(arr), self.batch):
            part = arr[start : start + self.batch]
            ans = self.served.predict_proba(part)
            if self.served.first_flag is None:
                self.rows.append(part)
                self.answers.append(ans)
            out.append(ans)
        return np.concatenate(out) if out else np.zeros((0, self.served.n_classes))

    def predict(self, x: Any) -> np.ndarray:
        return np.asarray(self.predict_proba(x).argmax(axis=1))

    def copy(self, env: dict[str, Any]) -> str:
        """Fidelity of a copy trained on the answers before the flag (all of them when never flagged)."""
        n = sum(len(r) for r in self.rows)
        if n < 10:
            return f"- ({n} rows)"
        xs = np.concatenate(self.rows).reshape(n, *np.shape(self.rows[0])[1:])
        res = _soft_copies(env, xs, np.concatenate(self.answers), [n])
        return f"{res.points[0].fidelity:.3f} ({n} rows)"


class Table:
    """Answers the attacker holds, looked up by the exact input (what the filtered attack trains on)."""

    def __init__(self, like: Any, x: np.ndarray, proba: np.ndarray) -> None:
        self.input_shape, self.n_classes = like.input_shape, like.n_classes
        self.clip_values = getattr(like, "clip_values", None)
        self.label_only = True
        self.first_flag: int | None = None
        self._answers = {row.tobytes(): p for row, p in zip(x.astype(np.float32), proba, strict=True)}

    def predict_proba(self, x: Any) -> np.ndarray:
        return np.stack([self._answers[row.tobytes()] for row in np.asarray(x, np.float32)])

    def predict(self, x: Any) -> np.ndarray:
        return np.asarray(self.predict_proba(x).argmax(axis=1))


def filtered_knockoff(env: dict[str, Any], served: Any, budgets: list[int], noise: float) -> tuple[Any, int]:
    """The adaptive label-only attacker who knows the label-mark algorithm but not the key: it asks for each
    natural row twice (once with per-feature Gaussian noise of ``noise`` x the projection spread) and keeps
    only the rows whose two labels agree (so a mark that differs between the two is dropped), then trains on
    the labels of the kept rows. Returns the extraction result and the number of rows dropped."""
    d = env["data"]
    pool = d.x_test.astype(np.float32)
    jitter = np.random.default_rng(17).normal(0.0, noise * env["scale"], pool.shape).astype(np.float32)
    first = served.predict_proba(pool)
    second = served.predict_proba(pool + jitter)
    keep = first.argmax(1) == second.argmax(1)
    table = Table(env["victim"], pool[keep], first[keep])
    res = extract(
        victim=table,
        strategy="knockoff",
        budgets=[max(1, b - 2 * len(pool)) for b in budgets],  # the double pass is part of the budget
        data=pool[keep],
        eval_x=d.x_train,
        eval_y=d.y_train,
        reference=env["victim"],
        seed=3,
    )
    return res, int((~keep).sum())


def _label_copy(env: dict[str, Any], x: np.ndarray, labels: np.ndarray, kind: str, ex: Any, ey: Any) -> Any:
    """The adaptive label-only attacker's copy (knows the label-mark algorithm, not the key): ``smooth``
    trains on label-smoothed targets (0.8 one-hot + 0.2 uniform), ``subset`` on a random half of its rows,
    ``clean-cv`` drops every row whose label a copy trained on the other 4 of 5 folds disagrees with (noisy-
    label cleaning: the marks are label noise to it), the rest on all labels."""
    k, victim = env["data"].n_classes, env["victim"]
    if kind == "subset":
        keep = np.random.default_rng(5).random(len(x)) < 0.5
        x, labels = x[keep], labels[keep]
    if kind == "clean-cv":
        folds = np.random.default_rng(6).integers(0, 5, len(x))
        keep = np.ones(len(x), bool)
        for f in range(5):
            tr = folds != f
            cv = extract(
                victim=Table(victim, x[tr], np.eye(k)[labels[tr]]),
                strategy="knockoff",
                budgets=[2000],
                data=x[tr],
                eval_x=ex[:10],
                reference=victim,
                seed=40 + f,
            )
            keep[~tr] = cv.surrogate.predict(x[~tr]) == labels[~tr]
        x, labels = x[keep], labels[keep]
    soft = np.eye(k)[labels]
    table = Table(victim, x, 0.8 * soft + 0.2 / k if kind == "smooth" else soft)
    table.label_only = kind != "smooth"
    res = extract(
        victim=table,
        strategy="knockoff",
        budgets=[2000],
        data=x,
        eval_x=ex,
        eval_y=ey,
        reference=victim,
        seed=3,
    )
    return res, len(labels)


def label_cost(
    env: dict[str, Any],
    band: tuple[float, float] | None,
    consumers: int = 40,
    marker: Any = None,
    split: str = "test",
) -> float:
    """Mean benign accuracy cost (pp) of the label marks alone (or ``marker``) on a natural split, per
    consumer (each consumer an honest stream of the whole split)."""
    d, victim = env["data"], env["victim"]
    mk = marker if marker is not None else _marker(env, band)
    x, y = (d.x_test, d.y_test) if split == "test" else (d.x_train, d.y_train)
    p = victim.predict_proba(x)
    base = float((p.argmax(1) == y).mean())
    costs = [
        base - float((mk.apply(f"c{i}", x, p, record=False).argmax(1) == y).mean()) for i in range(consumers)
    ]
    return 100.0 * float(np.mean(costs))


def _region_marker(env: dict[str, Any], cfg: dict[str, Any]) -> RegionMarker:
    d = env["data"]
    return RegionMarker(
        SECRET, n_features=d.x_train.shape[1], n_classes=d.n_classes, scale=env["scale"], **cfg
    )


def _marker(env: dict[str, Any], band: tuple[float, float] | None) -> LabelMarker:
    d = env["data"]
    kw: dict[str, Any] = {"rate": LABEL_RATE}
    if band is not None:
        kw.update(band=band[0], band_rate=band[1])
    return LabelMarker(SECRET, n_features=d.x_train.shape[1], n_classes=d.n_classes, scale=env["scale"], **kw)


def label_adaptive(
    env: dict[str, Any],
    pool_split: str,
    band: tuple[float, float] | None = None,
    region: dict[str, Any] | None = None,
) -> None:
    """Label-only copies against the label marks alone (or, with ``region``, the opt-in region marks of
    :class:`bastion.watermark.regions.RegionMarker`, evidence counted per region), per adaptive attacker,
    with the attacker's natural pool the test split (fidelity on the training split) or the training split
    (fidelity on the test split): marks kept and the attribution p among 20 consumers, for the marked copy
    and for a copy trained on clean labels from the same rows (the null: no defence, no marks)."""
    d, victim = env["data"], env["victim"]
    pool, ex, ey = (
        (d.x_test, d.x_train, d.y_train) if pool_split == "test" else (d.x_train, d.x_test, d.y_test)
    )
    pool = np.asarray(pool, np.float32)
    what = f"+ band {band}" if band else "(default)"
    if region is not None:
        costs = [
            label_cost(env, None, marker=_region_marker(env, region), split=s) for s in ("test", "train")
        ]
        print(
            f"region marks {region}: benign cost {costs[0]:.2f} pp test split / {costs[1]:.2f} pp train "
            "split (40 honest consumers, each the whole split)"
        )
    else:
        print(f"label marks {what}: benign cost {label_cost(env, band):.2f} pp (40 consumers, test split)")
    for kind in LABEL_ADAPTIVE:
        if region is not None and kind == "two-accounts":
            continue  # the region test has no pooled pair test
        mk: Any = _marker(env, band) if region is None else _region_marker(env, region)
        rng = np.random.default_rng(11)
        customers = [f"customer-{i}" for i in range(19 if kind != "two-accounts" else 18)]
        for c in customers:
            xs = d.x_test[rng.integers(0, len(d.x_test), 400)]
            mk.apply(c, xs, victim.predict_proba(xs))
        p = victim.predict_proba(pool)
        thieves = ["mallory"] if kind != "two-accounts" else ["mallory-1", "mallory-2"]
        split = np.random.default_rng(12).permutation(len(pool))
        labels = np.empty(len(pool), np.int64)
        for j, name in enumerate(thieves):
            idx = split[j :: len(thieves)]
            labels[idx] = mk.apply(name, pool[idx], p[idx]).argmax(1)
        x, dropped = pool, 0
        if kind.startswith("twice-"):  # the query-twice filter: drop rows whose two answers differ
            jitter = np.random.default_rng(17).normal(0.0, float(kind[6:]) * env["scale"], pool.shape)
            second = mk.apply(
                "mallory", pool + jitter, victim.predict_proba((pool + jitter).astype(np.float32))
            )
            keep = labels == second.argmax(1)
            x, labels, dropped = pool[keep], labels[keep], int((~keep).sum())
        res, kept = _label_copy(env, x, labels, "plain" if kind.startswith("twice-") else kind, ex, ey)
        clean, _ = _label_copy(env, x, np.asarray(victim.predict(x)), "plain", ex, ey)
        names = [*thieves, *customers]
        att = mk.attribute(predict=res.surrogate.predict, consumers=names)
        null = mk.attribute(predict=clean.surrogate.predict, consumers=names)
        marks = "; ".join(
            f"{t} {att.tests[t][0]}/{att.tests[t][1]} vs {att.tests[t][2]}/{att.tests[t][3]}"
            if t in att.tests
            else f"{t} too few marks to test"
            for t in thieves
        )
        dropped = dropped or len(x) - kept
        pair = f"; pair p={att.group_p_value:.2g}" if region is None else "; counted per region"
        print(
            f"labels-{kind:13s} pool={pool_split}({len(pool)}) trained on {kept} rows (dropped {dropped}) "
            f"fid {res.points[0].fidelity:.3f} acc {res.points[0].accuracy:.3f}: named {list(att.named)} "
            f"p={att.best_p:.2g} ({marks}{pair}) | "
            f"clean-label copy p={null.best_p:.2g}",
            flush=True,
        )


def label_attribution(guard: TheftDefence, surrogate: Any, env: dict[str, Any]) -> str:
    """Add 19 honest customers (natural data), then test the label-only copy against the label marks."""
    d = env["data"]
    customers = [f"customer-{i}" for i in range(19)]
    rng = np.random.default_rng(11)
    for c in customers:
        xs = d.x_test[rng.integers(0, len(d.x_test), 400)]
        for start in range(0, 400, 20):
            part = xs[start : start + 20]
            guard.respond(consumers=(c,), x=part, proba=env["victim"].predict_proba(part))
    assert guard.labels is not None
    att = guard.labels.attribute(predict=surrogate.predict, consumers=["mallory", *customers])
    m = att.tests.get("mallory")
    hits = f"marked {m[0]}/{m[1]} vs control {m[2]}/{m[3]}" if m else "too few marks"
    return f"label marks: {att.consumer} p={att.p_value:.2g} ({hits})"


def run_attack(env: dict[str, Any], strategy: str, served: Any, budgets: list[int]) -> Any:
    d = env["data"]
    if strategy in NEARMIX:
        return near_manifold(env, strategy, served, budgets)
    if strategy in QUIET:
        return quiet_jbda(env, strategy, served, budgets)
    return extract(
        victim=served,
        strategy=strategy,
        budgets=budgets,
        data=d.x_test,
        eval_x=d.x_train,
        eval_y=d.y_train,
        clip_values=env["clip"] or (float(d.x_train.min()), float(d.x_train.max())),
        jacobian_seed_size=10 * d.n_classes,
        reference=env["victim"],
        seed=3,
    )


def _mixes(
    pool: np.ndarray, labels: np.ndarray, n: int, sent: list[np.ndarray], noise: float, grid: float | None
) -> np.ndarray:
    """F1's synthetic rows: Dirichlet mixes of 2-4 near ``pool`` rows of one label (85 %) or boundary probes
    ``λa + (1-λ)b`` towards a near row of another label (λ ~ U(0.6, 0.9)), plus Gaussian noise of norm
    ``noise`` x the gap, on the data's grid; each kept only if it is a gap (0.45 x the pool's median nearest
    distance, above the small-steps radius) from every one of the last 600 rows sent."""
    rng = np.random.default_rng(5)
    nn = np.linalg.norm(pool[:, None] - pool[None], axis=2)
    np.fill_diagonal(nn, np.inf)
    gap = 0.45 * float(np.median(nn.min(axis=1)))
    out: list[np.ndarray] = []
    for _ in range(200 * n):
        if len(out) >= n:
            break
        a = int(rng.integers(len(pool)))
        same = np.flatnonzero((labels == labels[a]) & (np.arange(len(pool)) != a))
        other = np.flatnonzero(labels != labels[a])
        if rng.uniform() < 0.15 or len(same) == 0:
            b = other[np.argsort(nn[a, other])[rng.integers(min(3, len(other)))]]
            lam = rng.uniform(0.6, 0.9)
            x = lam * pool[a] + (1 - lam) * pool[b]
        else:
            near = same[np.argsort(nn[a, same])[:7]]
            pick = rng.choice(near, size=int(rng.integers(1, min(3, len(near)) + 1)), replace=False)
            w = rng.dirichlet(np.full(len(pick) + 1, 2.0))
            x = w[0] * pool[a] + w[1:] @ pool[pick]
        if noise:
            step = rng.standard_normal(x.shape)
            x = x + noise * gap * step / np.linalg.norm(step)
        if grid is not None:
            x = np.clip(np.round(x * grid) / grid, 0.0, 1.0)
        if np.linalg.norm(np.asarray((sent + out)[-600:]) - x, axis=1).min() >= gap:
            out.append(x.astype(np.float32))
    return np.asarray(out, dtype=np.float32).reshape(-1, pool.shape[1])


def near_manifold(env: dict[str, Any], strategy: str, served: Any, budgets: list[int]) -> Any:
    """The adaptive near-manifold mixer (F1 of the round-8 review): 10 natural rows a class (the JBDA seed
    size), then mixes of them (``_mixes``). ``nearmix-noise``: each mix moved by noise of ``NEARMIX_NOISE``
    x the gap (out of its seeds' hull); ``nearmix-unsent``: it sends 5 rows a class and mixes only the
    other 5 (rows it never sent, labelled by their nearest sent row). Surrogates as ``extract``'s."""
    d = env["data"]
    x = np.asarray(d.x_test, dtype=np.float32).reshape(len(d.x_test), -1)
    rng = np.random.default_rng(3)
    idx = np.concatenate(
        [rng.choice(np.flatnonzero(d.y_test == c), 10, replace=False) for c in range(d.n_classes)]
    )
    seed_x = x[idx]
    unsent = strategy == "nearmix-unsent"
    send = seed_x[np.arange(len(idx)) % 10 < 5] if unsent else seed_x
    seed_p = np.asarray(served.predict_proba(send), dtype=np.float32)
    labels = seed_p.argmax(axis=1)
    top = max(budgets)
    grid = 16.0 if env["clip"] == (0.0, 1.0) else None
    if unsent:
        pool = seed_x[np.arange(len(idx)) % 10 >= 5]
        near = np.linalg.norm(pool[:, None] - send[None], axis=2).argmin(axis=1)
        syn = _mixes(pool, labels[near], top - len(send), list(send), 0.0, grid)
    else:
        syn = _mixes(
            send,
            labels,
            top - len(send),
            list(send),
            NEARMIX_NOISE if strategy == "nearmix-noise" else 0.0,
            grid,
        )
    qx = np.concatenate([send, syn])
    qy = (
        np.concatenate([seed_p, np.asarray(served.predict_proba(syn), dtype=np.float32)])
        if len(syn)
        else seed_p
    )
    return _soft_copies(env, qx, qy, budgets)


def quiet_jbda(env: dict[str, Any], strategy: str, served: Any, budgets: list[int]) -> Any:
    """JBDA made to look like noise, by an attacker who knows the informative-step test
    (:mod:`bastion.serve._theft_steps`): 10 natural rows a class, then rounds of steps from the newest rows
    (``λ·U(0.1, 2)`` per row, λ = 0.1, its sign flipped every 3 rounds, as ``jacobian-random``) where
    ``jbda-gauss`` scales each feature's gradient sign by |N(0, 1)|, ``jbda-half`` takes the gradient's sign
    on a random half of the features and a random sign on the rest, and ``noise-aug`` takes random signs only
    (noise augmentation around the seeds: no gradient, nothing for the test to find). Surrogates as
    ``extract``'s (soft labels, 600 steps), at each budget."""
    import torch

    from bastion.adversarial.attacks.extraction import _train_surrogate

    d, victim, clip = env["data"], env["victim"], env["clip"]
    x = np.asarray(d.x_test, dtype=np.float32).reshape(len(d.x_test), -1)
    rng = np.random.default_rng(3)
    idx = np.concatenate(
        [rng.choice(np.flatnonzero(d.y_test == c), 10, replace=False) for c in range(d.n_classes)]
    )
    xs = x[idx]
    ys = np.asarray(served.predict_proba(xs), dtype=np.float32)
    top, rnd = max(budgets), 0
    while len(xs) < top:
        take = min(len(xs), top - len(xs))
        src = xs[-take:]
        sign = np.sign(np.random.default_rng(rnd).standard_normal(src.shape)).astype(np.float32)
        if strategy != "noise-aug":
            sur = _train_surrogate(
                xs, ys, victim=victim, label_only=True, hidden=(128,), steps=200, seed=3 + rnd, clip=clip
            )
            xt = torch.from_numpy(np.ascontiguousarray(src)).requires_grad_(True)
            lab = torch.from_numpy(ys[-take:].argmax(axis=1).astype(np.int64))
            (grad,) = torch.autograd.grad(sur.logits_tensor(xt).gather(1, lab[:, None]).sum(), xt)
            g = np.sign(grad.numpy())
            if strategy == "jbda-gauss":
                sign = g * np.abs(rng.standard_normal(src.shape)).astype(np.float32)
            else:
                sign = np.where(rng.uniform(size=src.shape) < 0.5, g, sign)
        flip = -1.0 if (rnd // 3) % 2 else 1.0
        new = src + flip * 0.1 * rng.uniform(0.1, 2.0, (take, 1)) * sign
        new = (np.clip(new, *clip) if clip else new).astype(np.float32)
        xs = np.concatenate([xs, new])
        ys = np.concatenate([ys, np.asarray(served.predict_proba(new), dtype=np.float32)])
        rnd += 1
    return _soft_copies(env, xs, ys, budgets)


def _soft_copies(env: dict[str, Any], xs: np.ndarray, ys: np.ndarray, budgets: list[int]) -> Any:
    """Surrogates trained on the first ``b`` answers (probabilities, renormalised) for each budget ``b``:
    fidelity to the victim and accuracy on the training split (``.points``) and the last copy."""
    from types import SimpleNamespace

    from bastion.adversarial.attacks.extraction import ExtractionPoint, _train_surrogate

    d, victim = env["data"], env["victim"]
    total = ys.sum(axis=1, keepdims=True)
    ys = np.where(total > 0, ys / np.maximum(total, 1e-12), ys)
    ref = victim.predict(d.x_train)
    points, surrogate = [], None
    for i, b in enumerate(sorted(budgets)):
        surrogate = _train_surrogate(
            xs[:b],
            ys[:b],
            victim=victim,
            label_only=False,
            hidden=(128,),
            steps=600,
            seed=103 + i,
            clip=env["clip"],
        )
        pred = surrogate.predict(d.x_train)
        points.append(
            ExtractionPoint(
                queries=min(b, len(xs)),
                fidelity=float((pred == ref).mean()),
                accuracy=float((pred == d.y_train).mean()),
            )
        )
    return SimpleNamespace(points=points, surrogate=surrogate)


def response_costs(env: dict[str, Any]) -> dict[str, float]:
    """Accuracy change (pp) on the natural test split when each response is applied to every row."""
    from bastion.serve.reference import projection_scale
    from bastion.serve.responses import decoy_cells, misinform, poison

    d = env["data"]
    guard = defence(env)
    x, y = d.x_test, d.y_test
    p = env["victim"].predict_proba(x)
    base = float((p.argmax(1) == y).mean())
    pct, ratio = guard.scorer.score(np.asarray(x, np.float64).reshape(len(x), -1), p.argmax(1))
    digest = np.arange(len(x), dtype=np.uint64)
    pol = guard.policy
    mis = misinform(p, secret=b"k" * 32, cells=decoy_cells(x, secret=b"k" * 32, scale=projection_scale(x)))
    variants = {
        "watermark": guard.watermark.apply("customer", x, p),
        "rounding/top-3": truncate(p, top_k=pol.top_k, decimals=pol.decimals),
        "poisoning": poison(p, secret=b"k" * 32, consumer="c", eps=pol.poison_eps, x_digest=digest),
        "misinformation (hard-OOD rows, always on)": np.where((ratio > pol.hard_ood)[:, None], mis, p),
        "misinformation (flagged: rows above the flagged percentile)": np.where(
            (pct >= pol.flagged_ood_pct)[:, None], mis, p
        ),
        "misinformation (strong suspicion: every row)": mis,
    }
    return {k: 100.0 * (float((v.argmax(1) == y).mean()) - base) for k, v in variants.items()}


def request_cost(env: dict[str, Any], rows: int, repeats: int = 300) -> float:
    """Mean ms of one ``respond`` call for a natural request of ``rows`` rows (model output precomputed)."""
    d = env["data"]
    guard = defence(env)
    p = env["victim"].predict_proba(d.x_test)
    n = len(d.x_test) - rows
    for i in range(30):
        j = (i * rows) % n
        guard.respond(consumers=("u", "addr:x"), x=d.x_test[j : j + rows], proba=p[j : j + rows])
    start = time.perf_counter()
    for i in range(repeats):
        j = (i * rows) % n
        guard.respond(consumers=("u", "addr:x"), x=d.x_test[j : j + rows], proba=p[j : j + rows])
    return (time.perf_counter() - start) / repeats * 1000.0


def benign_streams(env: dict[str, Any], n_streams: int, rows: int, secret: bytes = SECRET) -> dict[str, Any]:
    """Benign clients over natural (test-split) data: repeats, single class, bursts after idle, batch jobs."""
    d = env["data"]
    victim = env["victim"]
    now = [0.0]
    guard = defence(env, secret=secret)
    guard._clock = lambda: now[0]
    rng = np.random.default_rng(7)
    flags, correct_plain, correct_def, total, mis = [], 0, 0, 0, 0
    kinds = ("mixed", "repeat3", "single-class", "burst", "batch")
    for s in range(n_streams):
        kind = kinds[s % len(kinds)]
        if kind == "single-class":
            cls = int(rng.integers(0, d.n_classes))
            idx = np.flatnonzero(d.y_test == cls)
            order = idx[rng.integers(0, len(idx), rows)]
        elif kind == "repeat3":
            order = np.repeat(rng.integers(0, len(d.x_test), rows // 3 + 1), 3)[:rows]
        else:
            order = rng.integers(0, len(d.x_test), rows)
        batch = 100 if kind == "batch" else 10
        consumer = (f"benign-{s}", f"addr:10.0.{s // 250}.{s % 250}")
        for start in range(0, rows, batch):
            if kind == "burst" and start and start % 500 == 0:
                now[0] += 6 * 3600.0  # idle, then a burst
            xs = d.x_test[order[start : start + batch]]
            ys = d.y_test[order[start : start + batch]]
            p = victim.predict_proba(xs)
            ans = guard.respond(consumers=consumer, x=xs, proba=p)
            correct_plain += int((p.argmax(1) == ys).sum())
            correct_def += int((ans.proba.argmax(1) == ys).sum())
            mis += ans.misinformed
            total += len(xs)
            if ans.flagged:
                flags.append((s, kind, start, ans.reason))
                break
        now[0] += 60.0
    return {
        "streams": n_streams,
        "rows": total,
        "false_flags": len({f[0] for f in flags}),
        "flag_details": flags[:5],
        "acc_plain": correct_plain / total,
        "acc_defended": correct_def / total,
        "misinformed_rows": mis,
    }


def monitor_keys(env: dict[str, Any], keys: int, streams: int, rows: int) -> None:
    """The coverage monitor alone (what varies with the key), calibrated on the training split under ``keys``
    random keys: the largest coverage of ``streams`` benign held-out streams (the item-5 behaviours) against
    the key's threshold, and the row at which uniformly random clients are first flagged."""
    import os

    d = env["data"]
    x_test = np.asarray(d.x_test, dtype=np.float32).reshape(len(d.x_test), -1)
    lo, hi = env["clip"] or (float(d.x_train.min()), float(d.x_train.max()))
    kinds = ("mixed", "repeat3", "single-class", "burst", "batch")
    flagged_keys, margins, firsts, off, draws = 0, [], [], 0, []
    before = [0, 0]  # uncalibrated (the key's first draw, fixed 0.90): keys flagging benign / random caught
    for k in range(keys):
        key = os.urandom(32)
        mon = ExtractionMonitor(
            config=MonitorConfig(),
            n_features=x_test.shape[1],
            center=env["center"],
            key=key,
            reference=d.x_train,
            reference_labels=d.y_train,
        )
        plain = ExtractionMonitor(
            config=MonitorConfig(), n_features=x_test.shape[1], center=env["center"], key=key
        )
        assert mon.calibration is not None
        draws.append(mon.calibration.draw)
        codes, plain_codes = mon.codes(x_test), plain.codes(x_test)
        rng = np.random.default_rng(k)
        peak = plain_peak = 0.0
        for s in range(streams):
            kind = kinds[s % len(kinds)]
            if kind == "single-class":
                idx = np.flatnonzero(d.y_test == rng.integers(0, d.n_classes))
                order = idx[rng.integers(0, len(idx), rows)]
            elif kind == "repeat3":
                order = np.repeat(rng.integers(0, len(x_test), rows // 3 + 1), 3)[:rows]
            else:
                order = rng.integers(0, len(x_test), rows)
            batch = 100 if kind == "batch" else 10
            peak = max(peak, float(np.nanmax(mon.coverage_trace(codes[order], batch=batch))))
            plain_peak = max(
                plain_peak, float(np.nanmax(plain.coverage_trace(plain_codes[order], batch=batch)))
            )
        flagged_keys += peak > mon.coverage_threshold
        before[0] += plain_peak > plain.coverage_threshold
        margins.append(mon.coverage_threshold - peak)
        off += mon.coverage_threshold == float("inf")
        rand = rng.uniform(lo, hi, (300, x_test.shape[1])).astype(np.float32)
        hits = np.flatnonzero(mon.coverage_trace(mon.codes(rand)) > mon.coverage_threshold)
        firsts.append(int(hits[0]) + 1 if len(hits) else None)
        before[1] += bool((plain.coverage_trace(plain.codes(rand)) > plain.coverage_threshold).any())
    caught = [f for f in firsts if f is not None]
    print(
        f"monitor alone, {keys} random keys ({streams} benign held-out streams x {rows} rows each): "
        f"keys that flag a benign stream {flagged_keys}; smallest threshold - benign peak "
        f"{min(margins):.3f}; coverage off under {off} keys; random clients flagged within 300 rows "
        f"under {len(caught)} keys "
        f"(latest at row {max(caught) if caught else '-'}); hyperplane draw kept: max {max(draws)}, "
        f"first draw under {draws.count(0)} keys. Uncalibrated, same keys and streams: keys that flag a "
        f"benign stream {before[0]}; random clients flagged under {before[1]} keys"
    )


def per_key(env: dict[str, Any], keys: int, streams: int, rows: int) -> None:
    """The must-holds that depend on the deployment key, under ``keys`` fresh random keys: benign streams
    (false flags, accuracy cost) and each synthetic attack's first flag (at a 300-row budget)."""
    import os

    worst_flags, worst_pp, worst_first, thresholds = 0, 0.0, 0, []
    for k in range(keys):
        secret = os.urandom(32)
        b = benign_streams(env, streams, rows, secret=secret)
        worst_flags = max(worst_flags, b["false_flags"])
        worst_pp = max(worst_pp, 100 * (b["acc_plain"] - b["acc_defended"]))
        firsts = []
        for strategy in SYNTHETIC:
            served = DefendedModel(
                env["victim"], defence(env, secret=secret), consumers=("mallory", "addr:192.0.2.7")
            )
            run_attack(env, strategy, served, [300])
            firsts.append(served.first_flag if served.first_flag is not None else 10**9)
        worst_first = max(worst_first, *firsts)
        # the Sybil split (outside the single-account goals): rows over all its accounts at the flag
        sybil = Sybil(env["victim"], defence(env, secret=secret))
        run_attack(env, "mixup", sybil, [1000])
        cal = served.defence.monitor.calibration
        thresholds.append(served.defence.monitor.coverage_threshold)
        print(
            f"key {k}: benign false flags {b['false_flags']} {b['flag_details'][:2]}, "
            f"{100 * (b['acc_plain'] - b['acc_defended']):.2f} pp; first flag "
            + " ".join(f"{s}={f if f < 10**9 else '-'}" for s, f in zip(SYNTHETIC, firsts, strict=True))
            + f" (sybil {sybil.first_flag if sybil.first_flag is not None else '-'} of 1000)"
            + f"; coverage draw {cal.draw if cal else '-'} benign peak "
            f"{cal.benign_max if cal else float('nan'):.3f} threshold {thresholds[-1]:.3f}"
        )
    print(
        f"over {keys} random keys: worst benign false flags {worst_flags} "
        f"(of {streams} streams x {rows} rows), "
        f"worst accuracy cost {worst_pp:.2f} pp, latest first flag "
        f"{worst_first if worst_first < 10**9 else 'never (within 300)'}; coverage thresholds "
        f"{min(thresholds):.3f}-{max(thresholds):.3f}"
    )


def label_only_rows(env: dict[str, Any], strategy: str, budgets: list[int]) -> None:
    """Knockoff trained on the argmax labels only: undefended, PRADA-only and bastion (label marks), plus the
    query-twice filter attacker against bastion."""
    for label in ("none", "prada", "bastion") if strategy == "knockoff-labels" else ("marks", "bastion"):
        if label == "none":
            served: Any = Plain(env["victim"])
        elif label == "prada":
            served = PradaOnly(env["victim"], env["center"])
        else:
            served = DefendedModel(env["victim"], defence(env), consumers=("mallory", "addr:192.0.2.7"))
        served.label_only = True
        if strategy == "knockoff-labels":
            res = run_attack(env, "knockoff", served, budgets)
            extra = ""
        else:
            for noise in FILTER_NOISE:
                if label == "marks":
                    served = MarksOnly(env["victim"], env)
                else:
                    served = DefendedModel(
                        env["victim"], defence(env), consumers=("mallory", "addr:192.0.2.7")
                    )
                res, dropped = filtered_knockoff(env, served, budgets, noise)
                fids = " ".join(f"{p.fidelity:<10.3f}" for p in res.points)
                flag = served.first_flag if served.first_flag is not None else "-"
                print(
                    f"{'labels-filter':16s} {label:8s} {fids} {res.points[-1].accuracy:.3f}    {flag}  "
                    f"(noise {noise} x spread: dropped {dropped} of {len(env['data'].x_test)} rows; "
                    f"{label_attribution(served.defence, res.surrogate, env)})"
                )
            continue
        fids = " ".join(f"{p.fidelity:<10.3f}" for p in res.points)
        flag = served.first_flag if served.first_flag is not None else "-"
        if label == "bastion":
            extra = "  " + label_attribution(served.defence, res.surrogate, env)
        print(f"{'knockoff-labels':16s} {label:8s} {fids} {res.points[-1].accuracy:.3f}    {flag}{extra}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="digits,breast_cancer")
    ap.add_argument("--budgets", default="500,1000,2000,10000")
    ap.add_argument("--streams", type=int, default=100)
    ap.add_argument("--stream-rows", type=int, default=2000)
    ap.add_argument("--attacks", default="all")
    ap.add_argument(
        "--monitor-keys",
        type=int,
        default=0,
        help="only the coverage monitor alone under this many random keys (benign peak, random first flag)",
    )
    ap.add_argument(
        "--keys",
        type=int,
        default=0,
        help="also run the benign streams and each synthetic attack's first flag under this many random keys",
    )
    ap.add_argument(
        "--seeded", type=int, default=0, help="only the seeded attacks' report, under this many random keys"
    )
    ap.add_argument(
        "--video",
        type=int,
        default=0,
        help="only benign video streams with 2 interpolated frames per pair, under this many random keys",
    )
    ap.add_argument("--band", type=float, default=0.9, help="labels-adaptive-band: the top-probability band")
    ap.add_argument("--band-rate", type=float, default=0.5, help="labels-adaptive-band: the band's mark rate")
    ap.add_argument("--region-by", default="pair", help="labels-region: pair, target or boundary")
    ap.add_argument(
        "--region-band", type=float, default=0.9, help="labels-region: eligible below this top prob"
    )
    ap.add_argument("--region-rate", type=float, default=0.1, help="labels-region: share of regions marked")
    ap.add_argument("--region-cell", type=float, default=1.0, help="labels-region: cell width x spread")
    ap.add_argument("--region-projections", type=int, default=3, help="labels-region: LSH projections")
    args = ap.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    attacks = ATTACKS if args.attacks == "all" else tuple(args.attacks.split(","))
    for name in args.datasets.split(","):
        t0 = time.perf_counter()
        env = setup(name)
        d = env["data"]
        if args.monitor_keys:
            print(f"\n== {name}")
            monitor_keys(env, args.monitor_keys, args.streams, args.stream_rows)
            continue
        if args.seeded:  # natural-data attacks in disguise: gain over their seeds, attribution
            import _extraction_seeded

            print(f"\n== {name}")
            chosen = (
                _extraction_seeded.ATTACKS
                if args.attacks == "all"
                else tuple(a for a in attacks if a in _extraction_seeded.GENERATORS)
            )
            _extraction_seeded.report(env, args.seeded, sys.modules[__name__], chosen)
            continue
        if args.video:  # benign 3x up-converted video (round 20)
            import _extraction_video

            print(f"\n== {name}")
            kinds = _extraction_video.KINDS if args.attacks == "all" else tuple(args.attacks.split(","))
            _extraction_video.report(env, args.video, sys.modules[__name__], kinds)
            continue
        acc = float((env["victim"].predict(d.x_train) == d.y_train).mean())
        print(f"\n== {name}: victim accuracy on the eval split {acc:.3f}; budgets {budgets}")
        print(
            f"{'attack':16s} {'defence':8s} " + " ".join(f"fid@{b:<6d}" for b in budgets) + "  acc@max  flag@"
        )
        for strategy in attacks:
            if strategy.startswith("labels-adaptive"):  # labels-adaptive[-band][-train]
                band = (args.band, args.band_rate) if "-band" in strategy else None
                label_adaptive(env, "train" if strategy.endswith("-train") else "test", band)
                continue
            if strategy.startswith("labels-region"):  # labels-region[-train]: the opt-in region marks
                cfg = {
                    "by": args.region_by,
                    "band": args.region_band,
                    "rate": args.region_rate,
                    "cell": args.region_cell,
                    "projections": args.region_projections,
                }
                label_adaptive(env, "train" if strategy.endswith("-train") else "test", region=cfg)
                continue
            if strategy.startswith("knockoff-labels"):
                label_only_rows(env, strategy, budgets)
                continue
            for label in ("none", "prada", "bastion"):
                if strategy == "sybil":  # mixup rows, SYBIL_ROWS per account, each from its own address
                    if label == "prada":
                        continue
                    served = (
                        AtFlag(Sybil(env["victim"], defence(env)))
                        if label == "bastion"
                        else Plain(env["victim"])
                    )
                    res = run_attack(env, "mixup", served, budgets)
                    fids = " ".join(f"{p.fidelity:<10.3f}" for p in res.points)
                    flag = served.first_flag if served.first_flag is not None else "-"
                    at = f"  copy@flag {served.copy(env)}" if isinstance(served, AtFlag) else ""
                    print(f"{strategy:16s} {label:8s} {fids} {res.points[-1].accuracy:.3f}    {flag}{at}")
                    continue
                if label == "none":
                    served: Any = Plain(env["victim"])
                elif label == "prada":
                    served = PradaOnly(env["victim"], env["center"])
                else:
                    served = AtFlag(
                        DefendedModel(env["victim"], defence(env), consumers=("mallory", "addr:192.0.2.7"))
                    )
                res = run_attack(env, strategy, served, budgets)
                fids = " ".join(f"{p.fidelity:<10.3f}" for p in res.points)
                flag = served.first_flag if served.first_flag is not None else "-"
                at = f"  copy@flag {served.copy(env)}" if isinstance(served, AtFlag) else ""
                print(f"{strategy:16s} {label:8s} {fids} {res.points[-1].accuracy:.3f}    {flag}{at}")
                if label == "bastion" and strategy in ("knockoff", "adaptive"):
                    guard = served.defence
                    customers = [f"customer-{i}" for i in range(19)]
                    rng = np.random.default_rng(11)
                    for c in customers:  # honest customers of the same deployment, natural data
                        xs = d.x_test[rng.integers(0, len(d.x_test), 400)]
                        for start in range(0, 400, 20):
                            part = xs[start : start + 20]
                            guard.respond(consumers=(c,), x=part, proba=env["victim"].predict_proba(part))
                    candidates = ["mallory", *customers]
                    att = guard.watermark.attribute(
                        predict_proba=res.surrogate.predict_proba,
                        probes={c: guard.queries(c) for c in candidates},
                        consumers=candidates,
                        reference=env["victim"].predict_proba,
                    )
                    print(
                        f"   attribution of the {budgets[-1]}-row {strategy} surrogate among "
                        f"{len(candidates)} consumers: {att.consumer} z={att.z:.1f} p={att.p_value:.2g}"
                    )
                    if strategy == "knockoff":  # the same theft, surrogate trained on labels only
                        thief = DefendedModel(env["victim"], defence(env), consumers=("mallory",))
                        thief.label_only = True
                        lab = run_attack(env, strategy, thief, budgets)
                        guard = thief.defence
                        for c in customers:
                            xs = d.x_test[rng.integers(0, len(d.x_test), 400)]
                            guard.respond(consumers=(c,), x=xs, proba=env["victim"].predict_proba(xs))
                        att = guard.watermark.attribute(
                            predict_proba=lab.surrogate.predict_proba,
                            probes={c: guard.queries(c) for c in candidates},
                            consumers=candidates,
                            reference=env["victim"].predict_proba,
                        )
                        print(
                            f"   label-only knockoff surrogate (fidelity {lab.points[-1].fidelity:.3f}): "
                            f"{att.consumer} z={att.z:.1f} p={att.p_value:.2g} (the signal is in the scores)"
                        )
        floor = extract(
            victim=Plain(env["victim"]),
            strategy="knockoff",
            budgets=[10 * d.n_classes],
            data=d.x_test,
            eval_x=d.x_train,
            eval_y=d.y_train,
            reference=env["victim"],
            seed=3,
        )
        print(
            f"seed floor: a surrogate from {10 * d.n_classes} natural rows alone (JBDA/adaptive seed size) "
            f"has fidelity {floor.points[0].fidelity:.3f}"
        )
        costs = response_costs(env)
        print(
            "benign accuracy cost of each response if applied to natural (test-split) rows: "
            + ", ".join(f"{k} {v:+.2f} pp" for k, v in costs.items())
        )
        print(
            "defence cost per request: "
            + ", ".join(f"{r} rows {request_cost(env, r):.2f} ms" for r in (1, 20))
        )
        b = benign_streams(env, args.streams, args.stream_rows)
        print(
            f"benign: {b['streams']} streams x {args.stream_rows} rows: false flags {b['false_flags']} "
            f"{b['flag_details']}; accuracy {b['acc_plain']:.4f} -> {b['acc_defended']:.4f} "
            f"({100 * (b['acc_plain'] - b['acc_defended']):.2f} pp); misinformed rows {b['misinformed_rows']}"
        )
        if args.keys:
            per_key(env, args.keys, args.streams, args.stream_rows)
        print(f"({name}: {time.perf_counter() - t0:.0f} s)")
    _ = dataclasses


if __name__ == "__main__":
    main()
