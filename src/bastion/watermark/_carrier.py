"""Keyed carrier classes for the API watermark's waves (wave format 2).

Format 1 put each keyed wave (:mod:`bastion.watermark._provenance`, :class:`ConsumerWatermark`) on ONE fixed
non-top class per key. A thief who read the code finds that class from the answers alone: on the rows with
the same top class its mean probability stands out, and since a renormalised bump divides every class alike,
every *other* class's ratio to the top class is wave-free, so resetting the standout class's ratio to the
row's median ratio strips the wave at almost no fidelity cost (round-13 cold review attack20g, issue 20).

Format 2 draws the deployment wave's carrier per row: ``bits`` keyed slow waves ``cos(f·<u_b, x> + ψ_b)``
split the input space into ``2**bits`` keyed regions (their signs), and a keyed table gives each (region,
top class) a carrier class other than the top one. Every non-top class carries the wave in some regions, so
no class stands out in per-top-class statistics; the regions are as smooth as the wave itself (same
frequency), so a copy learns the carrier map with the wave. Its parameters come from their own HKDF sub-key
(``<wave label>:carrier``), so the waves' own draws are unchanged between the formats. The per-consumer
waves keep format 1: a pooled copy loses them anyway, and their fixed class keeps a rounded copy's rank
evidence (a region carrier for them cut the rounded-copy z of tests/watermark/test_consumer_r7.py from 6.4
to 3.4).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# the latest format, what build_defence serves; evidence without a format field is format 1 (one fixed
# class per key)
WAVE_FORMAT = 2
CARRIER_BITS = 4  # 16 keyed regions


@dataclass(frozen=True)
class Carrier:
    """A keyed map (row, top class) -> the class that carries a wave on that row (never the top class)."""

    freqs: np.ndarray = field(repr=False)  # (bits,)
    phases: np.ndarray = field(repr=False)  # (bits,)
    directions: np.ndarray = field(repr=False)  # (bits, n_features)
    table: np.ndarray = field(repr=False)  # (2**bits, n_classes): offset 1..n_classes-1 from the top class
    spare: np.ndarray = field(repr=False)  # the same shape, another offset in every cell (``avoid``)

    def regions(self, x: np.ndarray) -> np.ndarray:
        flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        signs = np.cos(flat @ self.directions.T * self.freqs + self.phases) > 0.0
        return (signs.astype(np.int64) << np.arange(len(self.freqs))).sum(axis=1)

    def classes(self, x: np.ndarray, top: np.ndarray, avoid: np.ndarray | None = None) -> np.ndarray:
        """Each row's carrier; where it is the row's ``avoid`` class (the answering consumer's own carrier),
        the spare one instead (two classes: no other class, the carrier is kept)."""
        top = np.asarray(top, dtype=np.int64)
        n_classes = self.table.shape[1]
        region = self.regions(x)
        out = (top + self.table[region, top]) % n_classes
        if avoid is not None and n_classes > 2:
            out = np.where(out == avoid, (top + self.spare[region, top]) % n_classes, out)
        return np.asarray(out)


def carrier(seed: bytes, n_features: int, n_classes: int, freq: float, bits: int = CARRIER_BITS) -> Carrier:
    """The carrier map from its HKDF sub-key: ``bits`` keyed directions, phases and frequencies (within a
    factor 0.8-1.25 of the waves' ``freq``) and, per (region, top class), a keyed offset in 1..n_classes-1
    (balanced: each offset as often as the others over the regions, in a keyed order), and a spare offset per
    cell (the table's shifted by a keyed non-zero amount: never the same class)."""
    rng = np.random.default_rng(int.from_bytes(seed, "big"))
    directions = rng.standard_normal((bits, n_features))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    phases = rng.uniform(0.0, 2.0 * np.pi, bits)
    freqs = freq * rng.uniform(0.8, 1.25, bits)
    regions = 1 << bits
    offsets = np.resize(np.arange(1, n_classes), regions) if n_classes > 1 else np.zeros(regions, int)
    table = np.stack([rng.permutation(offsets) for _ in range(n_classes)], axis=1).astype(np.int64)
    shift = int(rng.integers(1, n_classes - 1)) if n_classes > 2 else 0
    spare = (table - 1 + shift) % max(n_classes - 1, 1) + 1 if n_classes > 2 else table
    return Carrier(freqs=freqs, phases=phases, directions=directions, table=table, spare=spare)


__all__ = ["CARRIER_BITS", "WAVE_FORMAT", "Carrier", "carrier"]
