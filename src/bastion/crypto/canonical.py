"""Canonical JSON, in one place: RFC 8785 (JCS, via ``rfc8785``, as sigstore does) for every byte string that
is signed, MACed or hashed, plus the one pre-RFC encoding that bytes already on disk were made with.

- :func:`canonical_json` — RFC 8785: keys sorted by UTF-16 code units, no whitespace, UTF-8, ECMAScript
  number formatting (``1.0`` → ``1``, ``1e-05`` → ``0.00001``). Outside I-JSON (NaN, ±infinity, integers
  beyond ±2**53-1, non-string keys) it raises :class:`ValueError` (``rfc8785.CanonicalizationError``);
  unsupported types raise ``ValueError`` too.
- :func:`legacy_json` — what bastion wrote before issue 13: ``json.dumps(sort_keys=True,
  separators=(",", ":"))`` with ``ensure_ascii`` as the format used it. Only for *formats whose bytes are
  part of what was already signed or derived* (watermark trigger specs and commitments, whose bytes seed
  key derivation and commitments held by third parties) and for verifying old signatures
  (:func:`canonical_forms`). Never for something new.
- :func:`canonical_forms` — the encodings a verifier accepts for a value that may have been signed before
  the switch: RFC 8785 first, then the legacy one (deduplicated; for ASCII strings and small integers they
  are the same bytes).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import rfc8785


def canonical_json(obj: Any) -> bytes:
    """RFC 8785 canonical JSON of ``obj`` (raises ValueError outside I-JSON or for unsupported types)."""
    return rfc8785.dumps(obj)


def legacy_json(obj: Any, *, ascii: bool = False) -> bytes:
    """The pre-RFC 8785 encoding (sorted keys, compact separators, UTF-8; escaped to ASCII if ``ascii``)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=ascii).encode("utf-8")


def canonical_forms(obj: Any, *, ascii: bool = False) -> tuple[bytes, ...]:
    """The encodings of ``obj`` a verifier accepts: RFC 8785 (when ``obj`` is I-JSON), then the legacy one."""
    forms: list[bytes] = []
    with contextlib.suppress(ValueError):  # NaN, a big integer, a non-string key: only legacy could be
        forms.append(canonical_json(obj))
    try:
        legacy = legacy_json(obj, ascii=ascii)
    except (TypeError, ValueError):
        legacy = None
    if legacy is not None and legacy not in forms:
        forms.append(legacy)
    return tuple(forms)


__all__ = ["canonical_forms", "canonical_json", "legacy_json"]
