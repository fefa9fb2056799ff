"""The governance seam: a second engine whose findings join bastion's own in one report and one SARIF log.

bandit (model-code review, :class:`bastion.governance.code.BanditEngine`) and checkov (deployment checks,
:class:`bastion.governance._checkov.CheckovEngine`, run in its own virtual environment) implement it; another
scanner plugs in the same way. An engine reports under its own ``tool`` name (a separate SARIF run) and says
itself whether its findings fail the gate (``Rule.level == "error"``) or only advise.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from bastion.governance.findings import CheckReport


@runtime_checkable
class Engine(Protocol):
    """Checks files and returns its findings as a :class:`CheckReport`."""

    @property
    def name(self) -> str: ...

    def check(self, paths: Sequence[Path]) -> CheckReport: ...


__all__ = ["Engine"]
