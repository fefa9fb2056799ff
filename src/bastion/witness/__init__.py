"""``bastion witness``: a small HTTPS service that countersigns and keeps the audit log's signed tree heads.

See :mod:`bastion.witness.service` (the state and the checks) and :mod:`bastion.witness.app` (the HTTP API).
"""

from __future__ import annotations

from bastion.witness.service import WitnessService

__all__ = ["WitnessService"]
