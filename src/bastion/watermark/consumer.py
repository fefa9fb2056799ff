"""Per-consumer API watermark: which customer's answers a stolen copy was trained on.

After Charette et al., "Cosine Model Watermarking Against Ensemble Distillation" (CosWM, AAAI 2022); see
:class:`ConsumerWatermark` for the scheme and its deviations, and :class:`ConsumerEvidence` for what a gateway
hands the owner (``/admin/theft/evidence``) and ``bastion watermark verify --consumers`` checks.

The per-consumer watermark and its signed evidence file (:mod:`bastion.watermark._consumer_evidence`,
re-exported here) share the signal derivation, so evidence is checked with the same code that made it; the
attribution statistics live in :mod:`bastion.watermark._consumer_stats`, the deployment wave in
:mod:`bastion.watermark._provenance` and its format-2 carrier classes in :mod:`bastion.watermark._carrier`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bastion.errors import InvalidInput
from bastion.watermark._carrier import WAVE_FORMAT, Carrier, carrier
from bastion.watermark._consumer_evidence import (
    EVIDENCE_FORMAT,
    SIGNAL_LABEL,
    WAVE_PARAMS,
    ConsumerEvidence,
)
from bastion.watermark._consumer_stats import Attribution, segment_scores, segments
from bastion.watermark._provenance import (
    DEPLOYMENT_EPS,
    DEPLOYMENT_LABEL,
    basis,
    provenance,
    wave_params,
)
from bastion.watermark._provenance import residuals as residuals_of
from bastion.watermark.keys import WatermarkKey

OTHERS = 8  # the best-scoring consumers whose waves the provenance test takes out first


@dataclass(frozen=True)
class ConsumerSignal:
    """One consumer's keyed signal: ``cos(freq·<direction, x> + phase)`` added to class ``target`` (to
    ``alt`` on rows where ``target`` is the top class); the deployment wave in format 2: to the keyed
    ``carrier`` class of the row's region instead (:mod:`bastion.watermark._carrier`)."""

    consumer: str
    target: int
    alt: int
    freq: float
    phase: float
    direction: np.ndarray = field(repr=False)
    carrier: Carrier | None = field(default=None, repr=False)

    def wave(self, x: np.ndarray) -> np.ndarray:
        flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        return np.cos(self.freq * (flat @ self.direction) + self.phase)


class ConsumerWatermark:
    """A per-consumer, argmax-preserving API watermark in the returned probabilities.

    After Charette et al., "Cosine Model Watermarking Against Ensemble Distillation" (CosWM, AAAI 2022): for
    consumer ``u`` a key derived with HKDF from the watermark key and ``u`` fixes a unit direction ``w``, a
    phase, a frequency and a target class ``t``; each answer adds ``eps·(1 + cos(f·<w, x> + phase))/2`` to
    ``p_t`` and renormalises, never letting ``t`` overtake the top class (benign top-1 answers are
    unchanged). A surrogate distilled from the answers learns the periodic component of ``p_t``;
    :meth:`attribute` correlates a suspect's ``p_t`` on probe inputs with each consumer's wave and calibrates
    the correlation against random (unkeyed) waves of the same frequency, so the z-score is measured, not
    assumed. Deviation: CosWM reads the signal off a Fourier power spectrum over many probes; a correlation
    with the known phase is the matched filter and needs fewer probes. The residual is taken twice — in
    probability and as the rank of ``log(p_t / p_top)`` — so a copy served with a temperature or any other
    monotone sharpening (which keeps the order of those log-odds) still carries it. A surrogate trained on
    labels only does not carry this signal, nor does a copy served as top-1 labels or re-trained on its own
    hard labels (the DAWN label marks of :class:`ApiWatermark` cover that case at a benign accuracy cost).

    Every answer also carries the deployment wave (:mod:`bastion.watermark._provenance`, amplitude
    ``deployment_eps``, 0 turns it off): one keyed wave common to all consumers, so a copy trained on an
    aggregate (minimum, median, mean) of several accounts' answers, which names no consumer, still proves
    it was trained on this deployment's answers (``Attribution.provenance_p_value``). ``wave_format`` 2 (what
    :func:`bastion.serve.theft.build_defence` serves; 1 is the default, and what evidence files without the
    field mean) puts the deployment wave on a keyed class per input region, never the answering consumer's
    own class (:mod:`bastion.watermark._carrier`): no class stands out for a thief to reset.
    """

    def __init__(
        self,
        key: WatermarkKey | bytes,
        *,
        n_features: int,
        n_classes: int,
        scale: float,
        eps: float = 0.25,
        cycles: float = 2.0,
        deployment_eps: float = DEPLOYMENT_EPS,
        wave_format: int = 1,
    ) -> None:
        if isinstance(key, bytes | bytearray):
            key = WatermarkKey.from_secret(bytes(key))
        if not isinstance(key, WatermarkKey):
            raise InvalidInput("ConsumerWatermark needs a WatermarkKey or 32 key bytes")
        if wave_format not in (1, WAVE_FORMAT):
            raise InvalidInput(f"ConsumerWatermark: unknown wave format {wave_format}")
        if not 0 <= deployment_eps < 1:
            raise InvalidInput("ConsumerWatermark needs 0 <= deployment_eps < 1")
        if n_classes < 2 or n_features < 1 or not scale > 0 or not 0 < eps < 1 or not cycles > 0:
            raise InvalidInput(
                "ConsumerWatermark needs n_classes >= 2, n_features >= 1, scale > 0, 0 < eps < 1"
            )
        self.key_id = key.key_id
        self._key = key
        self.n_features = int(n_features)
        self.n_classes = int(n_classes)
        self.eps = float(eps)
        self.scale = float(scale)
        self.cycles = float(cycles)
        self.freq = 2.0 * np.pi * float(cycles) / float(scale)
        self.deployment_eps = float(deployment_eps)
        self.wave_format = int(wave_format)
        self.deployment = self._keyed("", DEPLOYMENT_LABEL, keyed_freq=True)
        self._cache: dict[str, ConsumerSignal] = {}
        self._lock = threading.Lock()

    def signal(self, consumer: str) -> ConsumerSignal:
        with self._lock:
            found = self._cache.get(consumer)
        if found is not None:
            return found
        sig = self._keyed(consumer, f"{SIGNAL_LABEL}:{consumer}", keyed_freq=False)
        with self._lock:
            if len(self._cache) > 65_536:
                self._cache.clear()
            self._cache[consumer] = sig
        return sig

    def _keyed(self, consumer: str, label: str, *, keyed_freq: bool) -> ConsumerSignal:
        direction, target, alt, phase, freq = wave_params(
            self._key.derive(label), self.n_features, self.n_classes, self.freq, keyed_freq=keyed_freq
        )
        region = None  # format 2: the deployment wave's carrier is keyed per region, from its own sub-key
        if self.wave_format >= 2 and keyed_freq:
            region = carrier(self._key.derive(f"{label}:carrier"), self.n_features, self.n_classes, self.freq)
        return ConsumerSignal(
            consumer=consumer, target=target, alt=alt, freq=freq, phase=phase, direction=direction,
            carrier=region,
        )  # fmt: skip

    def apply(self, consumer: str, x: Any, probs: Any) -> np.ndarray:
        """``probs`` with the deployment wave and then consumer's keyed signal added (each to its own target
        class, never overtaking the top class): the argmax never changes. The deployment wave is the same on
        every consumer's answer to a row (no aggregate of several accounts' answers removes it)."""
        p = np.asarray(probs, dtype=np.float64)
        arr = np.asarray(x, dtype=np.float64).reshape(p.shape[0], -1)
        if p.ndim != 2 or p.shape[1] != self.n_classes or arr.shape[1] != self.n_features:
            raise InvalidInput("x and probs do not match the watermark's features and classes")
        sig = self.signal(consumer)
        out = self._deploy(arr, p, self._targets(sig, p.argmax(axis=1), arr))
        return self._add(sig, self.eps, arr, out)

    def _add(
        self, sig: ConsumerSignal, eps: float, x: np.ndarray, p: np.ndarray, avoid: Any = None
    ) -> np.ndarray:
        """One wave added to its target class (never overtaking the top class), renormalised."""
        top = p.argmax(axis=1)
        rows = np.arange(len(p))
        tgt = self._targets(sig, top, x, avoid)
        room = p[rows, top] - p[rows, tgt] - 5e-3  # the carrier never overtakes the top class
        out = p.copy()
        out[rows, tgt] += np.clip(np.minimum(eps * (1.0 + sig.wave(x)) / 2.0, room), 0.0, None)
        return out / out.sum(axis=1, keepdims=True)

    def _deploy(self, x: np.ndarray, p: np.ndarray, avoid: np.ndarray) -> np.ndarray:
        """``p`` with the deployment wave (first, so each consumer's wave goes on a normalised answer)."""
        eps = self.deployment_eps  # format 2: never on the consumer's own class (``avoid``, per row)
        return self._add(self.deployment, eps, x, p, avoid) if eps > 0 else p

    def _targets(self, sig: ConsumerSignal, top: np.ndarray, x: np.ndarray, avoid: Any = None) -> np.ndarray:
        """The class that carries the signal on each row: format 1 ``target``, or ``alt`` where target is
        on top; format 2 the keyed carrier of the row's region (never the top class nor ``avoid``)."""
        if sig.carrier is not None:
            return sig.carrier.classes(x, top, avoid)
        return np.where(top == sig.target, sig.alt, sig.target)

    def attribute(
        self,
        *,
        predict_proba: Callable[[np.ndarray], Any],
        probes: Any,
        consumers: Sequence[str],
        reference: Any = None,
        nulls: int = 200,
        seed: int = 0,
    ) -> Attribution:
        """Which of ``consumers`` (if any) a suspect (``predict_proba``: rows → probabilities) learned from.

        ``probes`` is one array for every consumer, or a mapping consumer → that consumer's own recorded
        queries (the rows its answers were given on: where a surrogate trained on them carries the signal
        best). ``reference`` — the owner's clean model (a callable), its answers on a shared probe array, or a
        mapping consumer → its answers on that consumer's probes —
        removes the natural variation of the target class's probability so that only the residual is
        correlated with the wave (a matched filter); without it the test is much weaker. Two residuals are
        tested: the target class's probability less the reference's, and the rank of the suspect's
        ``log(p_target / p_top)`` less its fit on the reference's rank (unchanged by a serving-time
        temperature or any monotone sharpening; probabilities that underflowed or were rounded to 0 tie).
        Consumers with fewer than 30 probes are not tested (score 0). A consumer's probes are taken in the
        order they were answered: from ``2 * SEGMENT_ROWS`` probes on, its halves, quarters, ... are tested
        too; its score is the best (residual, segment)'s, Bonferroni-corrected over both residuals and every
        segment (rows sent after a theft cannot drown it).
        """
        if not consumers:
            raise InvalidInput("name at least one consumer to test")
        from scipy.stats import norm

        rng = np.random.default_rng(seed)  # null waves: public randomness is fine, they hold no secret
        dirs = rng.standard_normal((nulls, self.n_features))
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        phases = rng.uniform(0, 2 * np.pi, nulls)
        scores: dict[str, float] = {}
        total = 0
        pooled: tuple[list[np.ndarray], ...] = ([], [], [], [])
        for consumer in consumers:
            raw = probes.get(consumer) if isinstance(probes, Mapping) else probes
            if raw is None or len(raw) < 30:
                scores[consumer] = 0.0
                continue
            x = np.asarray(raw, dtype=np.float64).reshape(len(raw), -1)
            if x.shape[1] != self.n_features:
                raise InvalidInput(f"probes must have {self.n_features} features")
            answers = np.asarray(predict_proba(x.astype(np.float32)), dtype=np.float64)
            if answers.shape != (x.shape[0], self.n_classes):
                raise InvalidInput("the suspect's answers do not match the watermark's classes")
            if isinstance(reference, Mapping):
                base = np.asarray(reference[consumer], dtype=np.float64)
            elif callable(reference):
                base = np.asarray(reference(x.astype(np.float32)), dtype=np.float64)
            elif reference is not None:
                base = np.asarray(reference, dtype=np.float64)
            else:
                base = np.zeros_like(answers)
            if base.shape != answers.shape:
                raise InvalidInput(
                    "reference answers must match the suspect's (the clean model on the probes)"
                )
            sig = self.signal(consumer)
            top = (base if reference is not None else answers).argmax(axis=1)
            tgt = self._targets(sig, top, x)
            if reference is not None and (isinstance(probes, Mapping) or not pooled[0]):
                for pool, arr in zip(pooled, (x, answers, base, tgt), strict=True):
                    pool.append(arr)  # the deployment wave's probes: every tested consumer's
            total += len(x)
            # two residuals: the signal class's probability, and the rank of its log-odds against the top
            # class (temperature scales every log-odds by 1/T, any monotone sharpening keeps their order:
            # that one does not change when the thief serves its copy sharpened), each less the clean model's
            # (the deployment wave's exact effect on the clean answers taken out: it is no consumer's)
            marks = (
                [(self._deploy(x, base, tgt), base)] if reference is not None and self.deployment_eps else []
            )
            residuals = residuals_of(answers, base, tgt, top, marks=marks, cols=basis([self.deployment], x))
            if not residuals:
                scores[consumer] = 0.0
                continue
            null_waves = np.cos(self.freq * (x @ dirs.T) + phases)  # (n, nulls)
            wave = sig.wave(x)
            spans = segments(len(x))
            zs = [
                z
                for a, b in spans
                for z in segment_scores([r[a:b] for r in residuals], wave[a:b], null_waves[a:b])
            ]
            # the probes are in the order they were answered: each chronological segment is tested too
            # (Bonferroni over them and over the two residuals), so rows a thief sends after stealing cannot
            # drown the theft-time ones
            p_seg = min(1.0, float(norm.sf(max(zs))) * len(zs))
            scores[consumer] = zs[0] if len(zs) == 1 or p_seg >= 0.5 else float(norm.isf(p_seg))
        tested = sum(1 for c in consumers if scores[c] != 0.0) or 1
        best = max(scores, key=lambda c: scores[c])
        z = scores[best]
        p_value = float(min(1.0, norm.sf(z) * tested))
        group: tuple[str, ...] = ()
        group_z, group_p = 0.0, 1.0
        ranked = sorted((c for c in scores if scores[c] != 0.0), key=lambda c: -scores[c])[:10]
        if len(ranked) >= 2:  # the best pair is the top two z-scores
            group = tuple(sorted(ranked[:2]))
            group_z = float((scores[ranked[0]] + scores[ranked[1]]) / np.sqrt(2.0))
            group_p = float(min(1.0, norm.sf(group_z) * tested * (tested - 1) / 2))
        dep = self.deployment
        prov_z, prov_p, prov_n = provenance(
            wave=dep.wave, targets=lambda x, t, a: self._targets(dep, t, x, a), freq=dep.freq,
            xs=pooled[0], answers=pooled[1], bases=pooled[2], avoid=pooled[3], nulls=nulls, seed=seed + 1,
            others=lambda x, base: self._others(ranked[:OTHERS], x, base),
        )  # fmt: skip
        return Attribution(
            consumer=best if z > 0 else None,
            z=z,
            p_value=p_value,
            probes=total,
            scores=scores,
            group=group,
            group_z=group_z,
            group_p_value=group_p,
            provenance_z=prov_z,
            provenance_p_value=prov_p,
            provenance_probes=prov_n,
        )

    def _others(
        self, names: Sequence[str], x: np.ndarray, base: np.ndarray
    ) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
        """The named consumers' waves on ``x`` (``cos``/``sin``) and the clean answers with each applied, for
        the provenance test to take out. Applied to the clean answers without the deployment wave: a column
        holding any of the deployment wave would put it into an innocent copy's residual."""
        sigs = [self.signal(c) for c in names]
        return basis(sigs, x), [(self._add(s, self.eps, x, base), base) for s in sigs]

    def evidence(self, probes: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> ConsumerEvidence:
        """Each consumer's recorded queries and the clean model's answers on them, MAC'd under the key."""
        ev = ConsumerEvidence(
            key_id=self.key_id,
            **{name: getattr(self, name) for name in WAVE_PARAMS},
            consumers={
                c: (np.asarray(x, np.float32).reshape(len(x), -1), np.asarray(r, np.float32))
                for c, (x, r) in probes.items()
            },
        )
        mac = hmac.new(self._key.derive(f"{SIGNAL_LABEL}:evidence"), ev._body(), hashlib.sha256).hexdigest()
        return dataclasses.replace(ev, mac=mac)


__all__ = [
    "EVIDENCE_FORMAT",
    "SIGNAL_LABEL",
    "WAVE_FORMAT",
    "Attribution",
    "ConsumerEvidence",
    "ConsumerSignal",
    "ConsumerWatermark",
]
