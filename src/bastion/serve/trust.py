"""The files a gateway configuration trusts (JWT public key, watermark/theft key, theft reference), read
once at approval and once at start: the approved config digest binds their SHA-256 (a key's id), so a file
swapped after ``bastion serve MODEL --approve`` changes the running digest and the key is not released. The
gateway is then built from these same bytes, never from a second read of the path."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from typing import Any

from bastion.errors import ConfigError, IntegrityError

MAX_PEM_BYTES = 64 << 10
MAX_REFERENCE_BYTES = 1 << 30


@dataclass(frozen=True)
class TrustMaterial:
    """What the gateway uses from its trust files; ``fingerprints`` go into the config digest."""

    jwt_pem: bytes | None = field(default=None, repr=False)
    watermark_key: Any = field(default=None, repr=False)
    theft_key: Any = field(default=None, repr=False)
    theft_reference: bytes | None = field(default=None, repr=False)
    fingerprints: dict[str, str] = field(default_factory=dict)

    def reference_arrays(self) -> tuple[Any, Any]:
        import numpy as np

        if self.theft_reference is None:
            raise ConfigError("[serve.theft] needs a reference")
        try:
            with np.load(io.BytesIO(self.theft_reference), allow_pickle=False) as ref:
                return np.asarray(ref["x"], dtype=np.float32), np.asarray(ref["y"], dtype=np.int64)
        except (OSError, KeyError, ValueError) as exc:
            raise ConfigError("[serve.theft] reference: an .npz file with arrays x and y") from exc


def _read(path: str, where: str, limit: int) -> bytes:
    from bastion.files import read_regular_file

    try:
        return read_regular_file(path, limit=limit, follow_symlinks=True)
    except FileNotFoundError:
        raise ConfigError(f"[serve.{where}] file not found: {path}") from None
    except IntegrityError as exc:
        raise ConfigError(f"[serve.{where}]: {exc}") from None


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def load_trust(*, vault: Any, config: Any) -> TrustMaterial:
    """Read every trust file ``config`` names, once."""
    from bastion.watermark.keys import resolve_key

    prints: dict[str, str] = {}
    pem = None
    if config.jwt.enabled:
        pem = _read(str(config.jwt.public_key_file), "jwt", MAX_PEM_BYTES)
        prints["jwt.public_key_file"] = _sha(pem)
    wm_key = None
    if config.api_watermark.enabled and config.api_watermark.key:
        wm_key = resolve_key(config.api_watermark.key, vault=vault)
        prints["api_watermark.key"] = wm_key.key_id  # the key id is a digest of the secret
    tc = config.theft
    name = tc.key if tc.enabled else config.api_watermark.key
    theft_key = None
    if name:
        theft_key = wm_key if name == config.api_watermark.key and wm_key else resolve_key(name, vault=vault)
        prints["theft.key"] = theft_key.key_id
    reference = None
    if tc.enabled and tc.reference:
        reference = _read(str(tc.reference), "theft", MAX_REFERENCE_BYTES)
        prints["theft.reference"] = _sha(reference)
    return TrustMaterial(
        jwt_pem=pem,
        watermark_key=wm_key,
        theft_key=theft_key,
        theft_reference=reference,
        fingerprints=prints,
    )


__all__ = ["TrustMaterial", "load_trust"]
