"""Seeded attacks for ``bench_extraction.py --seeded N``: natural-data attacks in disguise (round-11 review).

Each starts from the attacker's own natural rows (the test split) and adds rows that gain the copy little over
those rows: ``gradcap`` (narrow probes of 1-3 features along a surrogate's gradient off 100 natural seeds and
gain copies of them, at most 12 per anchor, each feature off at most 8 anchors among the last 80 probes),
``nat2mix`` (the natural rows, and after every second one a mix of it with a near earlier row) and ``cross6``
(100 natural rows, then rows with 3-6 features taken from a donor natural row, a gap from every earlier row);
``knockoff`` (the natural rows alone) is the control. Round 20 (not in the default list; ``--attacks``):
``thirds-boundary`` and ``thirds-class``, the natural rows each followed by the two frames at the thirds of
the segment to the row before (3x up-converted video, decode order), across a class boundary or within one
class. For such an attacker the defence's duty is attribution:
per attack and random key, the row of the first flag, the fidelity of the copy at 2,000 rows (defended
answers), of a copy trained on the attack's natural rows alone (clean answers, same recipe), the gain (the
difference), and the attribution of the defended copy among the thief and 19 honest customers — by the score
watermark (``ConsumerWatermark.attribute``, as ``main`` does for the natural-data surrogate) and by the label
marks — with an innocent copy (clean answers on the same rows) beside it, which must name nobody.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

TOP = 2000
ATTACKS = ("gradcap", "nat2mix", "cross6", "knockoff")
CUSTOMERS = 19


def _natural(env: dict[str, Any]) -> np.ndarray:
    d = env["data"]
    return np.asarray(d.x_test, dtype=np.float32).reshape(len(d.x_test), -1)


def _seeds(env: dict[str, Any], per: int = 10) -> np.ndarray:
    """``per`` natural rows of each class (the JBDA seed size at 10)."""
    d, x = env["data"], _natural(env)
    rng = np.random.default_rng(3)
    return x[
        np.concatenate(
            [rng.choice(np.flatnonzero(d.y_test == c), per, replace=False) for c in range(d.n_classes)]
        )
    ]


def _gain(x: np.ndarray, g: float, clip: Any) -> np.ndarray:
    return np.clip(g * x, *clip) if clip else g * x


def gradcap(env: dict[str, Any], guard: Any, served: Any, rng: Any) -> tuple[np.ndarray, np.ndarray]:
    """Narrow probes off the seeds and gain copies of them (see the module's docstring)."""
    import torch

    from bastion.adversarial.attacks.extraction import _train_surrogate

    per_anchor, cap, window = 12, 8, 80
    size = 0.5 * (guard._resend_tau + guard._near_tau)  # inside the small-steps band
    clip, seeds = env["clip"], _seeds(env)
    answers = np.asarray(served.predict_proba(seeds), dtype=np.float32)
    sur = _train_surrogate(
        seeds, answers, victim=env["victim"], label_only=True, hidden=(128,), steps=200, seed=3, clip=clip
    )
    rows, anchors, recent = list(seeds), list(seeds), []  # recent: (anchor, features) of the last probes
    a = 0
    while len(rows) < TOP:
        if a >= len(anchors):
            g = rng.uniform(0.4, 0.7) if rng.uniform() < 0.5 else rng.uniform(1.35, 2.4)
            anchors.append(_gain(seeds[int(rng.integers(len(seeds)))], g, clip).astype(np.float32))
            rows.append(anchors[-1])
        anchor = anchors[a]
        xt = torch.from_numpy(anchor[None].copy()).requires_grad_(True)
        label = int(np.asarray(sur.predict(anchor[None]))[0])
        (grad,) = torch.autograd.grad(sur.logits_tensor(xt)[0, label], xt)
        gr = grad.numpy()[0]
        used: set[int] = set()
        for _ in range(per_anchor):
            touched: dict[int, set[int]] = {}
            for aid, fs in recent[-window:]:
                for f in fs:
                    touched.setdefault(f, set()).add(aid)
            want, feats = int(rng.integers(1, 4)), []
            for f in np.argsort(-np.abs(gr)):
                f = int(f)
                if f in used or len(touched.get(f, ())) >= cap:
                    continue
                if clip and ((anchor[f] <= clip[0] and gr[f] < 0) or (anchor[f] >= clip[1] and gr[f] > 0)):
                    continue
                feats.append(f)
                if len(feats) == want:
                    break
            if not feats:
                break
            used.update(feats)
            step = np.zeros_like(anchor)
            step[feats] = np.sign(gr[feats]) * (1.0 if rng.uniform() < 0.5 else -1.0)
            new = anchor + size * step / np.linalg.norm(step)
            new = np.clip(new, *clip) if clip else new
            moved = np.abs(new - anchor)
            top = np.argsort(-moved)[:3]
            recent.append((a, tuple(int(i) for i in top if moved[i] > 0 and moved[i] >= 0.5 * moved[top[0]])))
            rows.append(new.astype(np.float32))
        a += 1
    return np.asarray(rows[:TOP], dtype=np.float32), seeds


def nat2mix(env: dict[str, Any], guard: Any, served: Any, rng: Any) -> tuple[np.ndarray, np.ndarray]:
    """The natural rows; after every second one, a mix of it with one of its 3 nearest earlier rows."""
    x = _natural(env)
    rows, sent = [], []
    for n, i in enumerate(rng.permutation(len(x))):
        rows.append(x[i])
        sent.append(i)
        if n % 2 == 1 and len(sent) >= 3:
            prev = np.array(sent[:-1])
            pick = prev[np.argsort(np.linalg.norm(x[prev] - x[i], axis=1))[rng.integers(3)]]
            lam = rng.uniform(0.45, 0.8)
            rows.append((lam * x[i] + (1 - lam) * x[pick]).astype(np.float32))
    return np.asarray(rows[:TOP], dtype=np.float32), x[np.array(sent)]


def cross6(env: dict[str, Any], guard: Any, served: Any, rng: Any) -> tuple[np.ndarray, np.ndarray]:
    """100 natural rows, then a base (an earlier row or a natural one) with 3-6 features from a donor."""
    gap = 1.05 * guard._near_tau
    x = _natural(env)
    first = x[rng.permutation(len(x))[: min(100, len(x))]]
    rows, tries = list(first), 0
    while len(rows) < TOP and tries < 50 * TOP:
        tries += 1
        base = rows[int(rng.integers(len(rows)))] if rng.uniform() < 0.5 else x[int(rng.integers(len(x)))]
        f = rng.choice(x.shape[1], int(rng.integers(3, 7)), replace=False)
        new = base.copy()
        new[f] = x[int(rng.integers(len(x)))][f]
        if np.linalg.norm(np.asarray(rows[-1500:]) - new, axis=1).min() >= gap:
            rows.append(new.astype(np.float32))
    return np.asarray(rows[:TOP], dtype=np.float32), first


def knockoff(env: dict[str, Any], guard: Any, served: Any, rng: Any) -> tuple[np.ndarray, np.ndarray]:
    """The control: the natural rows in a random order (again at random past the split's size)."""
    x = _natural(env)
    idx = rng.permutation(len(x))
    if len(idx) < TOP:
        idx = np.concatenate([idx, rng.integers(0, len(x), TOP - len(x))])
    return x[idx[:TOP]], x


def _walk(x: np.ndarray, rng: Any, labels: np.ndarray | None = None, other: bool = False) -> np.ndarray:
    """The rows of ``x`` in walk order: each the nearest one not sent yet (with ``labels`` and ``other``:
    the nearest of another label, while one is left)."""
    sq = np.einsum("ij,ij->i", x, x)
    dist = sq[:, None] + sq[None, :] - 2.0 * x @ x.T
    cur, left, order = int(rng.integers(len(x))), np.ones(len(x), dtype=bool), []
    while True:
        left[cur] = False
        order.append(cur)
        if not left.any():
            return np.asarray(order)
        cand = np.flatnonzero(left)
        if other and labels is not None and (left & (labels != labels[cur])).any():
            cand = np.flatnonzero(left & (labels != labels[cur]))
        cur = int(cand[np.argmin(dist[cur, cand])])


def thirds_rows(frames: np.ndarray, blend: np.ndarray) -> np.ndarray:
    """3x frame-rate up-conversion in decode order: each frame, then (where ``blend`` says so for the pair it
    closes) the frames a third and two thirds of the way back to the frame before it (``E P f f``)."""
    rows = [frames[0]]
    for t in range(1, len(frames)):
        a, b = frames[t - 1], frames[t]
        rows.append(b)
        if blend[t]:
            rows += [b + (a - b) / 3.0, b + 2.0 * (a - b) / 3.0]
    return np.asarray(rows, dtype=np.float32)


def _thirds(env: dict[str, Any], rng: Any, order: str) -> tuple[np.ndarray, np.ndarray]:
    x = _natural(env).astype(np.float64)
    labels = np.asarray(env["victim"].predict(x.astype(np.float32)))
    if order == "boundary":  # each next row the nearest one of another class: its thirds cross a boundary
        idx = _walk(x, rng, labels, other=True)
    else:  # the rows of each class in turn, in a random order: thirds of same-class pairs
        perm = rng.permutation(len(x))
        idx = perm[np.argsort(labels[perm], kind="stable")]
    frames = x[idx]
    rows = thirds_rows(frames, np.ones(len(frames), dtype=bool))[:TOP]
    return rows, frames[: (len(rows) + 2) // 3].astype(np.float32)


def thirds_boundary(env: dict[str, Any], guard: Any, served: Any, rng: Any) -> tuple[np.ndarray, np.ndarray]:
    """Round 20: the natural rows, each the nearest of another class to the one before it and followed by
    the thirds of their segment (what 3x up-converted video between two classes looks like)."""
    return _thirds(env, rng, "boundary")


def thirds_class(env: dict[str, Any], guard: Any, served: Any, rng: Any) -> tuple[np.ndarray, np.ndarray]:
    """Round 20: the natural rows class by class in a random order, each followed by the thirds of its
    segment to the one before it (same-class pairs: the frames the round-20 exemption allows)."""
    return _thirds(env, rng, "class")


GENERATORS = {
    "gradcap": gradcap,
    "nat2mix": nat2mix,
    "cross6": cross6,
    "knockoff": knockoff,
    "thirds-boundary": thirds_boundary,
    "thirds-class": thirds_class,
}


def _customers(env: dict[str, Any], guard: Any) -> list[str]:
    """Honest customers of the same deployment: 400 natural rows each, in requests of 20 (as ``main``)."""
    d = env["data"]
    names = [f"customer-{i}" for i in range(CUSTOMERS)]
    rng = np.random.default_rng(11)
    for c in names:
        xs = d.x_test[rng.integers(0, len(d.x_test), 400)]
        for start in range(0, 400, 20):
            part = xs[start : start + 20]
            guard.respond(consumers=(c,), x=part, proba=env["victim"].predict_proba(part))
    return names


def attribution(env: dict[str, Any], guard: Any, surrogate: Any, candidates: list[str]) -> str:
    """The score watermark's and the label marks' verdicts on a copy: consumer named (or -) and p."""
    att = guard.watermark.attribute(
        predict_proba=surrogate.predict_proba,
        probes={c: guard.queries(c) for c in candidates},
        consumers=candidates,
        reference=env["victim"].predict_proba,
    )
    lab = guard.labels.attribute(predict=surrogate.predict, consumers=candidates)
    return (
        f"wm {att.consumer if att.p_value < 1e-6 else '-'} p={att.p_value:.1g}, "
        f"labels {lab.consumer or '-'} p={lab.p_value:.1g}"
    )


def report(env: dict[str, Any], keys: int, bench: Any, attacks: tuple[str, ...] = ATTACKS) -> None:
    """Print, per attack and random key: first flag, fid@2000, seeds-only fid, gain, attributions."""
    victim = env["victim"]
    print(
        f"seeded attacks ({keys} random keys; copy from the answers; 'seeds': a copy from the attack's "
        f"natural rows alone; named where p < 1e-6, among mallory + {CUSTOMERS} honest customers)"
    )
    for attack in attacks:
        for k in range(keys):
            guard = bench.defence(env, secret=os.urandom(32))
            served = bench.DefendedModel(victim, guard, consumers=("mallory", "addr:192.0.2.7"))
            xs, seeds = GENERATORS[attack](env, guard, served, np.random.default_rng(100 + k))
            ys = np.asarray(served.predict_proba(xs), dtype=np.float32)
            copy = bench._soft_copies(env, xs, ys, [len(xs)])
            alone = bench._soft_copies(
                env, seeds, np.asarray(victim.predict_proba(seeds), np.float32), [len(seeds)]
            )
            innocent = bench._soft_copies(
                env, xs, np.asarray(victim.predict_proba(xs), np.float32), [len(xs)]
            )
            candidates = ["mallory", *_customers(env, guard)]
            fid, base = copy.points[0].fidelity, alone.points[0].fidelity
            flag = served.first_flag if served.first_flag is not None else "-"
            print(
                f"  {attack:9s} key {k}: flag@{flag} fid@{len(xs)} {fid:.3f} seeds({len(seeds)}) {base:.3f} "
                f"gain {fid - base:+.3f} | thief: {attribution(env, guard, copy.surrogate, candidates)} | "
                f"innocent: {attribution(env, guard, innocent.surrogate, candidates)}",
                flush=True,
            )
