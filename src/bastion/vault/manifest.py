"""The signed shape of a version: manifest formats, AEAD associated data, DEK-wrap context, model-signing
bundle.

``bastion-manifest/v2`` (current): one read per file, segment AD = ``name ‖ version ‖ path``. ``v1``
versions (whose AD also bound the manifest digest) still verify and pull: the format is inside the signed
manifest, so it cannot be downgraded.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bastion.errors import IntegrityError

MANIFEST_FORMAT = "bastion-manifest/v2"
MANIFEST_FORMAT_V1 = "bastion-manifest/v1"
MANIFEST_FORMATS = (MANIFEST_FORMAT, MANIFEST_FORMAT_V1)
SIGNATURE_FILE = "model.sig"
RESERVED_NAMES = frozenset({SIGNATURE_FILE})


def _lp(*fields: bytes) -> bytes:
    return b"".join(struct.pack(">I", len(f)) + f for f in fields)


def segment_associated_data(name: str, version: int, path: str) -> bytes:
    """AEAD associated data of a file in a ``bastion-manifest/v2`` version: ``name ‖ version ‖ path``.

    No digest of the whole manifest (that would need a second read): the per-version DEK, this binding and
    the signed manifest's per-file SHA-256 (compared on every pull) together pin each blob to its place.
    """
    return b"bastion-file-v2" + _lp(name.encode(), str(version).encode(), path.encode("utf-8"))


def file_associated_data(name: str, version: int, manifest_digest: str, path: str) -> bytes:
    """AEAD associated data of a file in a ``bastion-manifest/v1`` version (kept to read old versions)."""
    return b"bastion-file-v1" + _lp(
        name.encode(), str(version).encode(), manifest_digest.encode(), path.encode("utf-8")
    )


def file_ad(row: Any, manifest: Mapping[str, Any], path: str) -> bytes:
    """The associated data ``path`` of version ``row`` was sealed with, by the signed manifest's format."""
    if manifest.get("format") == MANIFEST_FORMAT_V1:
        return file_associated_data(row.name, int(row.version), row.manifest_digest, path)
    return segment_associated_data(row.name, int(row.version), path)


def public_key_path(out: Path) -> Path:
    """Where pull writes the manifest public key: ``OUT.pub.pem`` beside the pulled directory ``OUT``."""
    return out.with_name(out.name + ".pub.pem")


def dek_context(name: str, version: int) -> bytes:
    """Associated data of a DEK wrap: a wrap cannot be moved to another version."""
    return b"bastion-dek-v1" + _lp(name.encode(), str(version).encode())


def bundle_resources(bundle: bytes) -> dict[str, str]:
    """``{path: sha256}`` from a model-signing bundle's signed in-toto payload (raises IntegrityError)."""
    try:
        doc = json.loads(bundle)
        payload = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"], validate=True))
        resources = payload["predicate"]["resources"]
        out: dict[str, str] = {}
        for r in resources:
            if r["algorithm"] != "sha256" or not isinstance(r["name"], str):
                raise ValueError("unexpected resource")
            out[r["name"]] = str(r["digest"])
        return out
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise IntegrityError("the model-signing signature is malformed") from exc


def verify_bundle_signature(bundle: bytes, public_key_pem: str | bytes) -> None:
    """Check the ECDSA P-256 signature of a model-signing bundle's DSSE envelope (no re-hashing of files).

    DSSE v1: the signature covers PAE = "DSSEv1" SP len(type) SP type SP len(payload) SP payload. The
    payload's per-file digests are then compared with what was decrypted, so together this is what
    ``model_signing verify`` checks, without reading the files a second time.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        envelope = json.loads(bundle)["dsseEnvelope"]
        payload = base64.b64decode(envelope["payload"], validate=True)
        ptype = str(envelope["payloadType"]).encode()
        sigs = envelope["signatures"]
        if len(sigs) != 1:
            raise ValueError("expected exactly one signature")
        signature = base64.b64decode(sigs[0]["sig"], validate=True)
        key = serialization.load_pem_public_key(
            public_key_pem.encode() if isinstance(public_key_pem, str) else public_key_pem
        )
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ValueError("not an EC key")
        pae = b"DSSEv1 %d %s %d %s" % (len(ptype), ptype, len(payload), payload)
        key.verify(signature, pae, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise IntegrityError("the model-signing signature does not verify") from exc


__all__ = [
    "MANIFEST_FORMAT",
    "MANIFEST_FORMATS",
    "MANIFEST_FORMAT_V1",
    "RESERVED_NAMES",
    "SIGNATURE_FILE",
    "bundle_resources",
    "dek_context",
    "file_ad",
    "file_associated_data",
    "public_key_path",
    "segment_associated_data",
    "verify_bundle_signature",
]
