"""Streaming AEAD throughput against raw single-shot AES-256-GCM from ``cryptography`` (the anchor).

Usage: .venv/bin/python benchmarks/bench_crypto.py [--size-mib 256] [--repeat 3]

Prints, for the same random bytes: raw AESGCM encrypt/decrypt (one call over the whole buffer), our segmented
stream encrypt/decrypt (memory -> sink, and file -> file), each as GB/s and as a ratio of the anchor; the
Python heap peak while streaming (tracemalloc); and how many segments a 1 MiB range read decrypts.
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
import tracemalloc
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bastion.crypto.aead import decrypt_stream, encrypt_stream, read_range


class Sink:
    def write(self, b: bytes) -> int:
        return len(b)


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    size = args.size_mib << 20
    data = os.urandom(size)
    key = AESGCM.generate_key(bit_length=256)
    ad = b"bench\x00v1\x00sha256:00"
    gcm = AESGCM(key)
    nonce = os.urandom(12)
    sealed = gcm.encrypt(nonce, data, ad)

    raw_enc = best(lambda: gcm.encrypt(nonce, data, ad), args.repeat)
    raw_dec = best(lambda: gcm.decrypt(nonce, sealed, ad), args.repeat)

    out = io.BytesIO()
    encrypt_stream(key=key, src=io.BytesIO(data), dst=out, associated_data=ad)
    ct = out.getvalue()
    del out

    s_enc = best(
        lambda: encrypt_stream(key=key, src=io.BytesIO(data), dst=Sink(), associated_data=ad), args.repeat
    )
    s_dec = best(
        lambda: decrypt_stream(key=key, src=io.BytesIO(ct), dst=Sink(), associated_data=ad), args.repeat
    )

    with tempfile.TemporaryDirectory() as tmp:
        plain, enc, back = Path(tmp) / "p", Path(tmp) / "c", Path(tmp) / "b"
        plain.write_bytes(data)

        def file_enc() -> None:
            with plain.open("rb") as s, enc.open("wb") as d:
                encrypt_stream(key=key, src=s, dst=d, associated_data=ad)

        def file_dec() -> None:
            with enc.open("rb") as s, back.open("wb") as d:
                decrypt_stream(key=key, src=s, dst=d, associated_data=ad)

        f_enc = best(file_enc, args.repeat)
        f_dec = best(file_dec, args.repeat)
        assert back.read_bytes() == data

        tracemalloc.start()
        file_dec()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()

        with enc.open("rb") as s:
            aligned = read_range(key=key, src=s, associated_data=ad, offset=1 << 20, length=1 << 20)
        with enc.open("rb") as s:
            unaligned = read_range(
                key=key, src=s, associated_data=ad, offset=(1 << 20) + 12345, length=1 << 20
            )

    gb = size / 1e9
    print(f"size: {args.size_mib} MiB, best of {args.repeat}, segment 1 MiB")
    print(f"anchor raw AESGCM encrypt: {gb / raw_enc:.2f} GB/s   decrypt: {gb / raw_dec:.2f} GB/s")
    rows = [
        ("stream encrypt (mem->sink)", s_enc, raw_enc),
        ("stream decrypt (mem->sink)", s_dec, raw_dec),
        ("stream encrypt (file->file)", f_enc, raw_enc),
        ("stream decrypt (file->file)", f_dec, raw_dec),
    ]
    for name, t, anchor in rows:
        print(f"{name:30s} {gb / t:6.2f} GB/s   ratio vs anchor {anchor / t:5.2f}")
    print(f"python heap peak while decrypting {args.size_mib} MiB file->file: {peak / 2**20:.1f} MiB")
    print(
        f"1 MiB range read: aligned {aligned.segments_decrypted} segment(s), "
        f"unaligned {unaligned.segments_decrypted}"
    )


if __name__ == "__main__":
    main()
