"""Vault benchmark: push + pull of a large random artifact vs raw AES-256-GCM and model_signing hashing.

    python benchmarks/bench_vault.py [--size-mib 2048] [--workdir DIR] [--repeat N]

Measures, in one run over the same bytes:
* push and pull wall time and throughput, and the peak RSS of this process during each (psutil, sampled
  every 5 ms on a thread);
* the anchor: raw single-shot AES-256-GCM from ``cryptography`` (``AESGCM.encrypt``/``decrypt`` over the
  whole buffer in 1 GiB calls, the library's per-call maximum being 2**31-1 bytes);
* ``model_signing``'s own hashing of the artifact directory (what push cannot avoid);
* a plain copy of the file with fsync in the same directory (the storage floor: use ``--workdir /dev/shm``
  to take the disk out and see the CPU pipeline alone);
* one plain ``hashlib`` SHA-256 pass and one BLAKE3 pass over the file (push SHA-256s the plaintext for the
  signature and BLAKE3s the ciphertext for its blob id, in the same single read since issue 12; pull
  SHA-256s the plaintext it decrypts: two SHA-256 passes and one BLAKE3 pass are the CPU floor);
* how many segments a 1 MiB range read decrypts (aligned and unaligned).

``--repeat N`` interleaves N rounds of (anchor, SHA-256 pass, push, pull) and reports the best of each (the
machine is shared, so a single round can be hit by someone else's burst); peak RSS is the largest over all
rounds. CPU seconds (``time.process_time``, every thread of the process) are printed too: unlike wall time
they barely move with the load, and show how much work push+pull does next to the anchor.

Goals (issue 12 item 1): push+pull >= 80 % of raw AES-GCM throughput with one read of each pushed file;
peak RSS < 256 MiB; a 1 MiB range read decrypts <= 2 segments. Push runs with no inspector
(``inspectors=[]``, ``allow_unsafe``) so the figure is the vault pipeline itself; with a scanner installed,
push then also pays for the scanner's reads of the stored version (range reads through a ``StoredInspector``;
a plain path inspector costs one more full decryption into a private copy).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import psutil


class PeakRss:
    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            self._stop.wait(0.005)

    def __enter__(self) -> PeakRss:
        self.peak = self.proc.memory_info().rss
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def write_random(path: Path, size: int) -> None:
    chunk = 64 << 20
    with path.open("wb") as f:
        left = size
        while left:
            n = min(chunk, left)
            f.write(os.urandom(n))
            left -= n


def raw_aes_gcm(path: Path) -> tuple[float, float, float]:
    """Wall seconds of encrypt and decrypt, and the CPU seconds of both."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    data = path.read_bytes()
    key = AESGCM(AESGCM.generate_key(bit_length=256))
    step = 1 << 30
    nonces = [os.urandom(12) for _ in range(0, len(data), step)]
    c0 = time.process_time()
    t0 = time.perf_counter()
    cts = [key.encrypt(nonces[i // step], data[i : i + step], None) for i in range(0, len(data), step)]
    t_enc = time.perf_counter() - t0
    cpu = time.process_time() - c0
    del data
    c0 = time.process_time()
    t0 = time.perf_counter()
    for n, ct in zip(nonces, cts, strict=True):
        key.decrypt(n, ct, None)
    t_dec = time.perf_counter() - t0
    return t_enc, t_dec, cpu + time.process_time() - c0


def sha256_pass(path: Path) -> float:
    """One ``hashlib`` SHA-256 pass over the file (1 MiB reads into one buffer)."""
    import hashlib

    buf = bytearray(1 << 20)
    view = memoryview(buf)
    hasher = hashlib.sha256()
    t0 = time.perf_counter()
    with path.open("rb", buffering=0) as f:
        while n := f.readinto(buf):
            hasher.update(view[:n])
    return time.perf_counter() - t0


def blake3_pass(path: Path) -> float:
    """One BLAKE3 pass over the file, hashed the way blob ids are (``store.blobs.content_hasher``).

    Uses ``blake3`` directly, so the script also runs against an older ``src/`` (``PYTHONPATH``) for a
    before/after comparison.
    """
    import blake3

    buf = bytearray(1 << 20)
    view = memoryview(buf)
    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    t0 = time.perf_counter()
    with path.open("rb", buffering=0) as f:
        while n := f.readinto(buf):
            hasher.update(view[:n])
    hasher.hexdigest(length=30)
    return time.perf_counter() - t0


def disk_write(path: Path, out: Path) -> float:
    """Copy ``path`` to ``out`` with fsync: the durable-storage floor any on-disk registry pays."""
    t0 = time.perf_counter()
    with path.open("rb") as src, out.open("wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    elapsed = time.perf_counter() - t0
    out.unlink()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=2048)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--push-pull-only",
        action="store_true",
        help="time only push and pull (best and median of --repeat rounds): a steadier before/after check",
    )
    args = parser.parse_args()
    size = args.size_mib << 20
    work = Path(tempfile.mkdtemp(prefix="bench-vault-", dir=args.workdir))
    try:
        from bastion.vault import init_project

        model = work / "model"
        model.mkdir()
        write_random(model / "weights.bin", size)
        os.sync()
        vault = init_project(home=work / "home", passphrase="benchmark passphrase", inspectors=[])
        # warm imports (model_signing) outside the timed region
        warm = work / "warm"
        warm.mkdir()
        (warm / "x").write_bytes(b"x")
        vault.push(warm, name="warm", allow_unsafe=True)

        if args.push_pull_only:
            pushes, pulls = [], []
            for _ in range(max(1, args.repeat)):
                t0 = time.perf_counter()
                pushed = vault.push(model, name="bench", allow_unsafe=True)
                pushes.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                vault.pull(pushed.ref, out=work / "out")
                pulls.append(time.perf_counter() - t0)
                shutil.rmtree(work / "out")
            vault.close()
            pushes.sort()
            pulls.sort()
            print(
                f"{args.size_mib} MiB, {len(pushes)} rounds: push best {pushes[0]:.3f} s, median "
                f"{pushes[len(pushes) // 2]:.3f} s; pull best {pulls[0]:.3f} s, "
                f"median {pulls[len(pulls) // 2]:.3f} s; "
                f"load {os.getloadavg()[0]:.1f}"
            )
            return
        t_push = t_pull = t_enc = t_dec = t_sha = cpu_raw = cpu_vault = float("inf")
        peak_push = peak_pull = 0
        for round_ in range(1, max(1, args.repeat) + 1):
            enc, dec, raw_cpu = raw_aes_gcm(model / "weights.bin")
            t_enc, t_dec, cpu_raw = min(t_enc, enc), min(t_dec, dec), min(cpu_raw, raw_cpu)
            sha = sha256_pass(model / "weights.bin")
            t_sha = min(t_sha, sha)
            c0 = time.process_time()
            with PeakRss() as rss_push:
                t0 = time.perf_counter()
                pushed = vault.push(model, name="bench", allow_unsafe=True)
                push_s = time.perf_counter() - t0
            with PeakRss() as rss_pull:
                t0 = time.perf_counter()
                vault.pull(pushed.ref, out=work / "out")
                pull_s = time.perf_counter() - t0
            vault_cpu = time.process_time() - c0  # all threads of this process (the RSS sampler too)
            cpu_vault = min(cpu_vault, vault_cpu)
            shutil.rmtree(work / "out")
            peak_push, peak_pull = max(peak_push, rss_push.peak), max(peak_pull, rss_pull.peak)
            t_push, t_pull = min(t_push, push_s), min(t_pull, pull_s)
            print(
                f"round {round_}: raw enc {enc:.2f} s, dec {dec:.2f} s (cpu {raw_cpu:.2f} s); "
                f"sha {sha:.2f} s; "
                f"push {push_s:.2f} s, pull {pull_s:.2f} s (cpu {vault_cpu:.2f} s); "
                f"load {os.getloadavg()[0]:.1f}"
            )
        aligned = vault.read_range("bench:1", path="weights.bin", offset=16 << 20, length=1 << 20)
        unaligned = vault.read_range("bench:1", path="weights.bin", offset=(16 << 20) + 4099, length=1 << 20)
        vault.close()

        import model_signing.hashing

        t0 = time.perf_counter()
        model_signing.hashing.Config().hash(model)
        t_ms_hash = time.perf_counter() - t0
        t_b3 = blake3_pass(model / "weights.bin")
        t_disk = disk_write(model / "weights.bin", work / "copy.bin")

        mib = size / (1 << 20)
        pipeline_ratio = (t_enc + t_dec) / (t_push + t_pull)
        print(f"artifact: {mib:.0f} MiB random bytes, one file")
        print(f"raw AES-256-GCM (anchor): encrypt {mib / t_enc:8.1f} MiB/s, decrypt {mib / t_dec:8.1f} MiB/s")
        print(f"model_signing hashing:    {mib / t_ms_hash:8.1f} MiB/s")
        floor = (t_sha * 2 + t_b3) / (t_enc + t_dec)
        print(f"one SHA-256 pass:         {mib / t_sha:8.1f} MiB/s")
        print(
            f"one BLAKE3 pass (blob id): {mib / t_b3:7.1f} MiB/s  "
            f"(2 SHA-256 + 1 BLAKE3 = {floor:.2f} x raw enc+dec time)"
        )
        print(f"plain copy + fsync:       {mib / t_disk:8.1f} MiB/s  (storage floor in {work.parent})")
        print(f"vault push:               {mib / t_push:8.1f} MiB/s  ({t_enc / t_push:.2f} x raw encrypt)")
        print(f"vault pull:               {mib / t_pull:8.1f} MiB/s  ({t_dec / t_pull:.2f} x raw decrypt)")
        print(f"push+pull vs raw encrypt+decrypt: {pipeline_ratio:.2f} (goal >= 0.80)")
        print(
            f"CPU seconds, raw enc+dec vs push+pull (all threads): {cpu_raw:.2f} / {cpu_vault:.2f} = "
            f"{cpu_raw / cpu_vault:.2f}"
        )
        print(
            f"peak RSS: push {peak_push / (1 << 20):.0f} MiB, "
            f"pull {peak_pull / (1 << 20):.0f} MiB (goal < 256)"
        )
        print(
            f"1 MiB range read: {aligned.segments_decrypted} segment(s) aligned, "
            f"{unaligned.segments_decrypted} unaligned (goal <= 2)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
