"""The audit's family registry: where an attack family plugs into :func:`bastion.adversarial.run_audit`.

The four built-in families (evasion, membership, extraction, poisoning) register themselves when their
module is imported by :mod:`bastion.adversarial.audit`. A new family registers a
:class:`~bastion.adversarial.audit.interface.FamilyRunner` under a new name; names are unique (registering one
twice raises, so a plug-in cannot silently replace a built-in). The overall grade still follows
:data:`bastion.adversarial.grading.FAMILIES`: an audit that did not run all four grades ``incomplete``.
"""

from __future__ import annotations

from bastion.adversarial.audit.interface import FamilyRunner
from bastion.errors import Conflict, InvalidInput

_RUNNERS: dict[str, FamilyRunner] = {}


def register_family(name: str, runner: FamilyRunner) -> FamilyRunner:
    """Register ``runner`` as the audit of family ``name``."""
    if not name or not name.replace("-", "").isalnum():
        raise InvalidInput(f"an audit family needs a plain name, got {name!r}")
    if name in _RUNNERS:
        raise Conflict(f"an audit family named {name!r} is already registered")
    _RUNNERS[name] = runner
    return runner


def unregister_family(name: str) -> None:
    """Remove a registered family (for plug-ins and their tests)."""
    if _RUNNERS.pop(name, None) is None:
        raise InvalidInput(f"no audit family named {name!r}")


def family_runner(name: str) -> FamilyRunner:
    try:
        return _RUNNERS[name]
    except KeyError:
        raise InvalidInput(f"no audit family named {name!r}") from None


def families() -> tuple[str, ...]:
    """The registered family names, in registration order."""
    return tuple(_RUNNERS)


__all__ = ["families", "family_runner", "register_family", "unregister_family"]
