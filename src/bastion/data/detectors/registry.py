"""Where detector families plug in (as opacus registers grad samplers): register, list, build the tuple.

Built-in families are registered by :mod:`bastion.data.detectors` on import, in priority-neutral order
(overlaps are resolved by entity priority, not by registration order). A new family::

    from bastion.data.detectors import Family, Detector, register
    register(Family(name="acme_ids", entities=frozenset({"ACME_ID"}), members=(Detector(...),),
                    positives=(("id ACME-1234-X", "ACME-1234-X"),), negatives=("ACME rocks",)))

and it runs everywhere detectors run (scan, protect, the gateway's redaction), and the conformance test runs
over it. Names are unique; re-registering a name raises unless ``replace=True``.
"""

from __future__ import annotations

from bastion.data.detectors.interface import Detector, DetectorFamily
from bastion.data.detectors.presidio_lift import NAME as PRESIDIO

_FAMILIES: dict[str, DetectorFamily] = {}
_BUILT: dict[bool, tuple[Detector, ...]] = {}


def register(family: DetectorFamily, *, replace: bool = False) -> DetectorFamily:
    """Add ``family`` (checked against the :class:`DetectorFamily` protocol); returns it."""
    if not isinstance(family, DetectorFamily):
        raise TypeError(f"not a DetectorFamily: {family!r}")
    if not family.name or (family.name in _FAMILIES and not replace):
        raise ValueError(f"detector family {family.name!r} is already registered (or has no name)")
    _FAMILIES[family.name] = family
    _BUILT.clear()
    return family


def unregister(name: str) -> None:
    """Remove a registered family (unknown names raise ``KeyError``)."""
    del _FAMILIES[name]
    _BUILT.clear()


def families() -> tuple[DetectorFamily, ...]:
    """The registered families, in registration order."""
    return tuple(_FAMILIES.values())


def family(name: str) -> DetectorFamily:
    return _FAMILIES[name]


def all_detectors(*, use_presidio: bool = True) -> tuple[Detector, ...]:
    """Every registered family's detectors (the lifted Presidio family only with ``use_presidio``)."""
    built = _BUILT.get(use_presidio)
    if built is None:
        built = tuple(
            d for f in _FAMILIES.values() if use_presidio or f.name != PRESIDIO for d in f.detectors()
        )
        _BUILT[use_presidio] = built
    return built


__all__ = ["all_detectors", "families", "family", "register", "unregister"]
