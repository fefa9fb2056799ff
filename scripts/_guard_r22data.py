"""Round 22 (issue 16; opt-in, ``train_guard.py --user-alt --r14 K --r16 K2 --r22 K3``):
``data/guard/r22_user.json`` for the user-channel head.

The file (see data/guard/PROVENANCE.md) holds user prompts written one by one for bastion by a helper that saw
no evaluation set: benign prompts with trigger words in their everyday senses (ignore / override / bypass /
system / prompt / rules / password / admin / jailbreak / developer mode / role-play, questions about prompt
injection, pasted code and configs, corrections, relayed notices, creative writing), plain-words attacks
(personas described in ordinary words, fiction and research pretexts, fake authority, maintenance modes,
extraction of the hidden setup without the words "system prompt", polite overrides, pasted injections) and
multilingual attacks and look-alikes. Its own group-wise split: train / val / test.

With ``--r22 K`` the train rows go into ``user_alt``'s training xK and the benign val rows join the val
pool; ``--r22 0`` changes nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _guard_r16 import benign_val, train_times, user_file_rows

FILE = Path(__file__).resolve().parents[1] / "data" / "guard" / "r22_user.json"
SET, SOURCE, POOL = "r22-user", "bastion:r22", "r22 benign"

Row = dict[str, Any]


def r22_rows() -> list[Row]:
    """Every row of the round-22 file (train, val, test), user channel."""
    return user_file_rows(FILE, source=SOURCE, group_prefix="r22-", set_name=SET)


def user_train(k: int) -> list[Row]:
    """The train rows xK (none for K 0)."""
    return train_times(r22_rows(), k)


def user_pool() -> dict[str, list[str]]:
    """The benign val prompts, as one val-pool set."""
    return benign_val(r22_rows(), POOL)
