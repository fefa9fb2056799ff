"""Benign video for ``bench_extraction.py --video N`` (issue 20, round 20): a camera up-converting its frame
rate 3x (two interpolated frames per pair of frames), digits only.

The scene is a walk over the natural rows (the test split): each frame the nearest row not shown yet, every
row once (450 frames). Frame-rate up-conversion adds the frames a third and two thirds of the way between
each pair, except across a scene cut (the model's answer changes between the two frames: up-converters do not
blend across a cut) — ``decode``: sent after the pair's second frame (``E P f f``), ``display``: between the
two (``E f f P``); ``decode-blend``: across the cuts too (14 % of the pairs on digits, which are what a mixup
thief sends across a boundary); ``none``: the same walk without up-conversion (the control). Real video cuts
far less often than every 7 frames (round 21): ``scenes15-blend`` and ``scenes45-blend`` are walks that stay
in one class (the model's answer) for a scene of 10-20 frames, or for all of a class's rows (~45 frames),
then cut to another class, up-converted in decode order and blended across every cut. Per stream and random
key: the rows sent at the first flag (``-``: never), its reason, and the share of answers whose top class is
not the model's.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from _extraction_seeded import _natural, _walk, thirds_rows

KINDS = ("none", "decode", "display", "decode-blend", "scenes15-blend", "scenes45-blend")


def stream(env: dict[str, Any], rng: Any, kind: str) -> np.ndarray:
    """The video ``kind`` (see the module's docstring) over the natural rows, from ``rng``'s first frame."""
    x = _natural(env).astype(np.float64)
    if kind.startswith("scenes"):
        return _scenes(env, x, rng, long=kind.startswith("scenes45"))
    frames = x[_walk(x, rng)]
    labels = np.asarray(env["victim"].predict(frames.astype(np.float32)))
    same = np.concatenate([[False], labels[1:] == labels[:-1]])
    if kind == "none":
        return frames.astype(np.float32)
    blend = (
        np.concatenate([[False], np.ones(len(frames) - 1, dtype=bool)]) if kind == "decode-blend" else same
    )
    rows = thirds_rows(frames, blend)
    if kind == "display":  # the pair's second frame after its two interpolated frames: E f f P
        out, t = [rows[0]], 1
        for i in range(1, len(frames)):
            if blend[i]:
                out += [rows[t + 1], rows[t + 2], rows[t]]
                t += 3
            else:
                out.append(rows[t])
                t += 1
        rows = np.asarray(out, dtype=np.float32)
    return rows


def _scenes(env: dict[str, Any], x: np.ndarray, rng: Any, *, long: bool) -> np.ndarray:
    """Scenes of one class each (the model's answer): per class, its rows in walk order, cut into scenes of
    10-20 frames (``long``: one scene per class), the scenes in a random order with no two of one class in a
    row where avoidable; 3x up-converted in decode order, blended across the cuts too."""
    labels = np.asarray(env["victim"].predict(x.astype(np.float32)))
    scenes: list[np.ndarray] = []
    for c in rng.permutation(np.unique(labels)):
        idx = np.flatnonzero(labels == c)
        idx = idx[_walk(x[idx], rng)]
        if long:
            scenes.append(idx)
            continue
        start = 0
        while start < len(idx):
            n = int(rng.integers(10, 21))
            scenes.append(idx[start : start + n])
            start += n
    order: list[int] = []
    pool = list(rng.permutation(len(scenes)))
    while pool:  # the next scene: the first in the pool of another class than the last one sent
        last = labels[scenes[order[-1]][0]] if order else -1
        pick = next((i for i in pool if labels[scenes[i][0]] != last), pool[0])
        pool.remove(pick)
        order.append(int(pick))
    frames = x[np.concatenate([scenes[i] for i in order])]
    return thirds_rows(frames, np.concatenate([[False], np.ones(len(frames) - 1, dtype=bool)]))


def report(env: dict[str, Any], keys: int, bench: Any, kinds: tuple[str, ...] = KINDS) -> None:
    """Print, per stream kind (``kinds``, from ``--attacks``): how many of its streams were flagged and, per
    random key, the first flag, its reason and the answers changed."""
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise SystemExit(f"--video: unknown stream kinds {unknown}; known: {', '.join(KINDS)}")
    if env["clip"] is None:
        print("video: image rows only (this dataset is tabular)")
        return
    victim = env["victim"]
    print(f"benign video, 3x up-converted ({keys} random keys; flag@rows, reason, answers changed)")
    for kind in kinds:
        cells, flagged = [], 0
        for k in range(keys):
            guard = bench.defence(env, secret=os.urandom(32))
            who = f"camera-{kind}-{k}"
            served = bench.DefendedModel(victim, guard, consumers=(who, f"addr:192.0.2.{k + 1}"))
            rows = stream(env, np.random.default_rng(200 + k), kind)
            lost = 0
            for start in range(0, len(rows), 10):
                part = rows[start : start + 10]
                got = np.asarray(served.predict_proba(part))
                lost += int((got.argmax(1) != np.asarray(victim.predict_proba(part)).argmax(1)).sum())
            flag = guard._identities.get(who).flag
            first = served.first_flag if served.first_flag is not None else "-"
            flagged += served.first_flag is not None
            reason = flag.reason.split(":")[0] if flag is not None else ""
            cells.append(f"{first} {reason} {100.0 * lost / len(rows):.2f} %".replace("  ", " "))
        print(f"  {kind:14s} ({len(rows)} rows, {flagged}/{keys} flagged): " + " | ".join(cells), flush=True)
