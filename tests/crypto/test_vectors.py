"""Known-answer tests: the primitives we compose (NIST CAVP AES-GCM, RFC 5869 HKDF) and our stream format.

The stream format is checked against an independent reference written from the format's specification
(HKDF-SHA256 then AES-256-GCM per segment, nonce = prefix ‖ index ‖ last flag, header as associated data).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import struct
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

import bastion.crypto.aead as aead

VECTORS = Path(__file__).parent / "vectors"


def _blocks(path: Path, first_key: str) -> list[dict[str, str]]:
    """Parse ``Name = value`` blocks (CAVP .rsp style); a block starts at ``first_key``."""
    blocks: list[dict[str, str]] = []
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line
            continue
        name, _, value = (part.strip() for part in line.partition("="))
        if name == first_key:
            blocks.append({"section": section})
        blocks[-1][name] = value
    return blocks


GCM = _blocks(VECTORS / "aes_gcm_cavp.rsp", "Count")
HKDF_CASES = _blocks(VECTORS / "hkdf_rfc5869.txt", "Case")


def test_vector_files_are_complete() -> None:
    assert len(GCM) == 12 and sum("256" in v["section"] for v in GCM) == 9
    assert [c["Case"] for c in HKDF_CASES] == ["1", "2", "3"]


@pytest.mark.parametrize("v", GCM, ids=[f"{v['section']}-{v['Count']}" for v in GCM])
def test_aes_gcm_cavp(v: dict[str, str]) -> None:
    key, iv, pt, aad = (bytes.fromhex(v[k]) for k in ("Key", "IV", "PT", "AAD"))
    expected = bytes.fromhex(v["CT"] + v["Tag"])
    gcm = AESGCM(key)
    assert gcm.encrypt(iv, pt, aad or None) == expected
    assert gcm.decrypt(iv, expected, aad or None) == pt
    # the negative case: a tag one bit off, or other associated data, must not decrypt
    bad = bytearray(expected)
    bad[-1] ^= 1
    with pytest.raises(InvalidTag):
        gcm.decrypt(iv, bytes(bad), aad or None)
    with pytest.raises(InvalidTag):
        gcm.decrypt(iv, expected, aad + b"\x00")
    # the in-place variant the stream uses gives the same bytes
    buf = bytearray(len(pt) + 16)
    gcm.encrypt_into(iv, pt, aad or None, buf)
    assert bytes(buf) == expected


@pytest.mark.parametrize("c", HKDF_CASES, ids=[f"case{c['Case']}" for c in HKDF_CASES])
def test_hkdf_rfc5869(c: dict[str, str]) -> None:
    ikm, salt, info, prk, okm = (bytes.fromhex(c[k]) for k in ("IKM", "salt", "info", "PRK", "OKM"))
    length = int(c["L"])
    derived = HKDF(algorithm=hashes.SHA256(), length=length, salt=salt or None, info=info).derive(ikm)
    assert derived == okm
    # extract (RFC 5869 §2.2: no salt means HashLen zero bytes) and expand separately
    assert hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest() == prk
    assert HKDFExpand(algorithm=hashes.SHA256(), length=length, info=info).derive(prk) == okm


def _reference_decrypt(ct: bytes, key: bytes, ad: bytes) -> bytes:
    """An independent decryption written from the format specification in bastion.crypto.aead."""
    header = ct[:44]
    version, seg = struct.unpack(">BI", header[:5])
    salt, prefix = header[5:37], header[37:44]
    assert version == 1
    file_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=ad).derive(key)
    gcm = AESGCM(file_key)
    body = ct[44:]
    chunks = [body[i : i + seg + 16] for i in range(0, len(body), seg + 16)]
    out = b""
    for i, chunk in enumerate(chunks):
        last = i == len(chunks) - 1
        nonce = prefix + i.to_bytes(4, "big") + (b"\x01" if last else b"\x00")
        out += gcm.decrypt(nonce, chunk, header)
    return out


def test_stream_format_frozen_vector(monkeypatch: pytest.MonkeyPatch) -> None:
    v = json.loads((VECTORS / "stream_v1.json").read_text())
    key, salt, prefix, ad, pt, ct = (
        bytes.fromhex(v[k])
        for k in ("key", "salt", "nonce_prefix", "associated_data", "plaintext", "ciphertext")
    )
    assert _reference_decrypt(ct, key, ad) == pt
    out = io.BytesIO()
    aead.decrypt_stream(key=key, src=io.BytesIO(ct), dst=out, associated_data=ad)
    assert out.getvalue() == pt
    randomness = iter([salt, prefix])
    monkeypatch.setattr(aead, "_random", lambda n: next(randomness))
    again = io.BytesIO()
    aead.encrypt_stream(
        key=key, src=io.BytesIO(pt), dst=again, associated_data=ad, segment_size=v["segment_size"]
    )
    assert again.getvalue() == ct


@pytest.mark.parametrize("size", [0, 1, 64, 100, 128, 1000])
def test_stream_matches_reference_for_random_keys(size: int) -> None:
    import os

    key, ad, pt = os.urandom(32), os.urandom(20), os.urandom(size)
    out = io.BytesIO()
    aead.encrypt_stream(key=key, src=io.BytesIO(pt), dst=out, associated_data=ad, segment_size=64)
    assert _reference_decrypt(out.getvalue(), key, ad) == pt
