"""The installed scanner inspects the stored version through range reads (no decrypted copy on disk).

REQUEST-vault-to-scan: the ``bastion.inspectors`` entry point is now
``bastion.scan.stored:registry_inspector``, which has ``inspect_stored``; the vault's fallback (decrypting the
whole version into a temp dir) must not run.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from bastion.crypto.kdf import KdfParams
from bastion.errors import UnsafeArtifact
from bastion.vault import init_project
from bastion.vault._push import StoredVersion

from .conftest import PASSPHRASE


class _Exploit:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, ("echo pwned",))


def test_push_scans_the_stored_version_without_a_plaintext_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_temp_copy(self: StoredVersion, root: Path) -> None:
        raise AssertionError("the stored version was decrypted to a temp dir")

    monkeypatch.setattr(StoredVersion, "decrypt_to", no_temp_copy)
    v = init_project(home=tmp_path / "h", passphrase=PASSPHRASE, kdf=KdfParams.unsafe_fast())  # entry points
    safe = tmp_path / "safe"
    safe.mkdir()
    np.save(safe / "w.npy", np.arange(12, dtype=np.float32))
    (safe / "config.json").write_text('{"layers": 2}')
    assert v.push(safe, name="ok").version == 1
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.pkl").write_bytes(pickle.dumps(_Exploit()))
    with pytest.raises(UnsafeArtifact, match=r"model\.pkl"):
        v.push(bad, name="evil")
    assert [a.name for a in v.list()] == ["ok"]  # the refused version never became visible
    v.close()
