"""The two-byte zlib magic is no proof of a zlib stream: a safetensors file whose header is 376 bytes long
begins ``78 01 00 …`` (found when a federated digits model with its preprocessing record was refused as
"corrupt zlib stream"). It is scanned as safetensors; a real zlib stream is still opened and judged."""

from __future__ import annotations

import os
import pickle
import zlib
from pathlib import Path

import numpy as np

from bastion.scan import Verdict, scan


def test_a_safetensors_header_that_looks_like_zlib_is_scanned_as_safetensors(tmp_path: Path) -> None:
    from safetensors.numpy import save

    tensors = {
        "weight": np.zeros((10, 64), np.float32),
        "bias": np.zeros(10, np.float32),
        "preprocessing.shift": np.zeros(64),
        "preprocessing.scale": np.full(64, 16.0),
    }
    blob = save(tensors, metadata={"format": "bastion-linear", "dataset": "digits", "preprocessing": "scale"})
    assert blob[:3] == b"\x78\x01\x00"  # the collision itself: header length 376, little-endian
    path = tmp_path / "model.safetensors"
    path.write_bytes(blob)
    report = scan(paths=[path])
    assert report.verdict is Verdict.safe, report


class _Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("true",))


def test_a_real_zlib_stream_is_still_opened_and_judged(tmp_path: Path) -> None:
    path = tmp_path / "model.joblib"
    path.write_bytes(zlib.compress(pickle.dumps(_Payload())))
    assert scan(paths=[path]).verdict is Verdict.unsafe
