"""Issue 17 H3: a streamed pull is on the audit record before its first plaintext byte, and a consumer that
hangs up after the file it wanted (before ``model.sig``) leaves an entry saying how much it received."""

from __future__ import annotations

from pathlib import Path

from bastion.vault import Vault


def _pulls(vault: Vault) -> list[tuple[str, str, dict]]:
    return [
        (e.action, e.outcome, dict(e.details))
        for e in vault.log_entries()
        if e.action.startswith("registry:pull")
    ]


def test_a_hang_up_after_the_weights_is_logged(vault: Vault, tmp_path: Path) -> None:
    src = tmp_path / "m"
    src.mkdir()
    weights = bytes(range(256)) * 4096  # 1 MiB
    (src / "a_weights.bin").write_bytes(weights)
    (src / "b_tokenizer.json").write_bytes(b"{}" * 50_000)
    vault.push(src, name="m")
    files = iter(vault.pull_stream("m"))
    first = next(files)
    assert first.path == "a_weights.bin"
    chunks = iter(first.chunks)
    got = bytes(next(chunks))
    # the attack's moment: plaintext is in the consumer's hands; the pull must already be on the record
    # (before the fix the entry was written only after model.sig, so a hang-up here left none)
    assert [(a, o) for a, o, _ in _pulls(vault)] == [("registry:pull", "ok")]
    got += b"".join(bytes(c) for c in chunks)
    assert got == weights
    files.close()  # the consumer hangs up before the rest of the stream
    pulls = _pulls(vault)
    assert [(a, o) for a, o, _ in pulls] == [("registry:pull", "ok"), ("registry:pull-end", "error")]
    end = pulls[-1][2]
    assert end["complete"] is False and end["plaintext_bytes"] == len(weights)


def test_a_complete_stream_logs_its_end(vault: Vault, tmp_path: Path) -> None:
    src = tmp_path / "m"
    src.mkdir()
    (src / "w.bin").write_bytes(b"x" * 1000)
    vault.push(src, name="m")
    for f in vault.pull_stream("m"):
        b"".join(bytes(c) for c in f.chunks)
    pulls = _pulls(vault)
    assert [(a, o) for a, o, _ in pulls] == [("registry:pull", "ok"), ("registry:pull-end", "ok")]
    assert pulls[-1][2]["complete"] is True and pulls[-1][2]["plaintext_bytes"] == 1000
