"""The theft defence's policy and results (:class:`TheftPolicy`, :class:`Flag`, :class:`Answer`) and its
HKDF sub-key derivation; :mod:`bastion.serve.theft` re-exports every name here."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bastion.errors import InvalidInput

THEFT_LABEL = "bastion-theft-v1"


def derive(secret: bytes, label: str, length: int = 32) -> bytes:
    """An HKDF-SHA256 sub-key of the deployment secret for one purpose."""
    if len(secret) < 16:
        raise InvalidInput("the theft-defence secret needs at least 16 bytes")
    return HKDF(
        algorithm=hashes.SHA256(), length=length, salt=None, info=f"{THEFT_LABEL}:{label}".encode()
    ).derive(secret)


@dataclass(frozen=True)
class TheftPolicy:
    """Thresholds and responses (defaults: the measured policy of ``benchmarks/bench_extraction.py``)."""

    k: int = 3
    window: int = 200
    min_rows: int = 40
    shift_z: float = 7.0
    tail_pct: float = 0.99
    tail_base: float = 0.05
    tail_log10_p: float = -10.0
    near_quantile: float = 0.01
    near_base: float = 0.04
    resend_noise: float = 0.01  # a re-send: a counted row plus noise of this sd x each feature's range,
    resend_frac: float = 0.6  # ... at most this x the small-steps radius away
    history: int = 512
    # the informative-step test (bastion.serve._theft_steps; needs the defence's ``predict``): keyed random
    # steps per row in the band, and the share of directionless steps called informative (calibrates its
    # threshold; at most near_base: each directionless step also counts in the small-steps share's
    # denominator, so a client of them alone stays at the base rate)
    step_k: int = 8
    step_fpr: float = 0.04
    keep_queries: int = 2000
    corroborate_z: float = 3.0
    hard_ood: float = 1.6
    far_ratio: float = 1.0  # misinformed rows beyond this x every class's farthest training row: one label
    flagged_ood_pct: float = 0.5
    strong_score: float = 2.0
    # a flagged consumer's rows that the keyed naturalness filter calls natural keep the argmax
    # (bastion.serve._theft_natural); its false-positive rate on held-out reference rows (0: off) and the
    # share of held-out synthetic rows it must catch to be used at all
    natural_fpr: float = 0.02
    natural_min_catch: float = 0.8
    # the mixtures test (bastion.serve._theft_mix): rows in the convex hull of the consumer's own earlier
    # rows; the floor of its per-key base rate (the share of natural rows it calls mixtures)
    mixtures: bool = True
    mix_floor: float = 0.02
    # rows on the segment from the previous row (interpolated video frames) and gain copies (re-scans) are no
    # mixtures: sensor behaviours, for intensity-like features (None: when the reference rows are >= 0)
    sensor_rows: bool | None = None
    block_score: float | None = None
    poison_eps: float = 0.3
    # a flagged consumer's answers keep the format of the default consumer output rule (top-3, 3 decimals):
    # a coarser rounding would tell a thief it was flagged from its first answer after the flag
    top_k: int = 3
    decimals: int = 3
    daily_rows: int = 50_000
    # rows per trailing 24 hours for all identities behind one client address together (None: no address
    # budget — a shared NAT or proxy would hit it; set it where addresses are per customer)
    address_rows: int | None = None
    flag_ttl_s: float = 3600.0
    max_reference: int = 4000
    max_consumers: int = 4096

    def __post_init__(self) -> None:
        if self.window < self.min_rows or self.min_rows < 10 or not 0.5 < self.tail_pct < 1.0:
            raise InvalidInput("theft policy: need window >= min_rows >= 10 and 0.5 < tail_pct < 1")
        if not 0.0 <= self.resend_frac < 1.0 or self.resend_noise < 0:
            raise InvalidInput("theft policy: need 0 <= resend_frac < 1 and resend_noise >= 0")
        if not 2 <= self.step_k <= 64 or not 0.0 < self.step_fpr < 0.5:
            raise InvalidInput("theft policy: need 2 <= step_k <= 64 and 0 < step_fpr < 0.5")
        if self.daily_rows < 1 or self.k < 1 or self.flag_ttl_s <= 0 or (self.address_rows or 1) < 1:
            raise InvalidInput("theft policy: daily_rows, k and flag_ttl_s must be positive")
        if not 0.0 < self.mix_floor < 0.5:
            raise InvalidInput("theft policy: need 0 < mix_floor < 0.5")


@dataclass(frozen=True)
class Flag:
    """Why a consumer is flagged: the signal that fired, the score, and the evidence behind it."""

    consumer: str
    reason: str
    score: float
    since: float
    last_seen: float
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Answer:
    """What to send back, and how the defence judged the request."""

    proba: np.ndarray = field(repr=False)
    flagged: bool
    score: float
    misinformed: int
    poisoned: bool
    truncated: bool
    newly_flagged: bool = False
    reason: str | None = None
