"""Scale-out of ``data scan`` and ``data protect`` over partitioned Parquet: 1 vs 2 workers, local and Dask.

Anchor: the same engine with one worker, same run, same dataset, same settings (one thread per worker,
Presidio off, 20,000-row chunks). The dataset is ``--partitions`` Parquet files of generated PII rows
(``bastion.data.synth``, 17 columns including free-text notes); every partition holds the same generated
rows with fresh ids, so partitions cost the same. Cluster and pool start-up are not timed; one untimed warm-up
job runs first on each executor (imports, detector compilation). Every result is checked identical to the
first run's (engines and worker counts alike): the scan report, and for protect the digest of every output
partition's bytes. ``protect`` runs as the owner of a throw-away project (fast test KDF) with the default
policy; each worker unwraps the scope key itself (the unwrap is cached per worker process, so it is paid
in the warm-up).

Printed per engine and worker count: median wall time of ``--repeats`` jobs on the same executor,
throughput (MB/s of Parquet, rows/s), speed-up and scaling efficiency (speed-up / workers) vs one worker,
and peak RSS per worker (``ru_maxrss`` read in each Dask worker; for the local pool, the largest child
process seen). Then a paper projection of a 10 TB lake from the measured per-partition cost: time on N
workers assuming the measured 2-worker efficiency holds, which it will not on a shared filesystem or
network: treat it as a lower bound.

Figures on a machine shared with other jobs are noisy (speed-up is bounded by free cores): say so.

    python benchmarks/bench_scale.py                      # small: 8 partitions x 4,000 rows, scan
    python benchmarks/bench_scale.py --jobs scan,protect  # both jobs
    python benchmarks/bench_scale.py --partitions 32 --rows 60000   # ~2 GB: --partitions 170 --rows 60000
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path


def make_dataset(root: Path, *, partitions: int, rows: int, seed: int = 0) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from bastion.data.synth import COLUMNS, generate_table

    table = generate_table(rows=rows, seed=seed)
    cols = {c: [r[i] for r in table.rows] for i, c in enumerate(COLUMNS)}
    total = 0
    for k in range(partitions):
        cols["id"] = [str(k * rows + i) for i in range(rows)]
        path = root / f"part-{k:05d}.parquet"
        pq.write_table(pa.table(cols), path, row_group_size=20_000)
        total += path.stat().st_size
    return total


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _job(kind: str, ex: object, src: Path, out: Path | None, vault: object) -> dict:
    from bastion.compute import protect_dataset, scan_dataset

    if kind == "scan":
        return scan_dataset(path=src, executor=ex, use_presidio=False).to_dict()  # type: ignore[arg-type]
    assert out is not None
    result = protect_dataset(vault, path=src, out=out, executor=ex, use_presidio=False)  # type: ignore[arg-type]
    return {"output_digest": result.output_digest, "rows": result.rows}


def run_engine(
    kind: str, engine: str, workers: int, root: Path, repeats: int, vault: object
) -> tuple[float, dict, list[float]]:
    import shutil

    from bastion.compute import make_executor

    outs = root / "out"
    with make_executor(engine=engine, workers=workers) as ex:
        _job(kind, ex, root / "warm", outs / "warm", vault)
        walls = []
        for _ in range(repeats):
            shutil.rmtree(outs, ignore_errors=True)  # a fresh job each time (no resume)
            t0 = time.perf_counter()
            result = _job(kind, ex, root / "data", outs / "data", vault)
            walls.append(time.perf_counter() - t0)
        shutil.rmtree(outs, ignore_errors=True)
        wall = statistics.median(walls)
        peaks = sorted(ex.client.run(_peak_rss_mb).values()) if engine == "dask" else []  # type: ignore[attr-defined]
    if engine == "local":
        peaks = [resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024]
    return wall, result, peaks


def _project(root: Path) -> object:
    from bastion.crypto.kdf import KdfParams
    from bastion.vault import init_project

    passphrase = "bench-scale-throwaway"  # a throw-away project in a temporary directory
    os.environ["BASTION_PASSPHRASE"] = passphrase  # the workers' own environment (inherited at spawn)
    return init_project(home=root / "home", passphrase=passphrase, kdf=KdfParams.unsafe_fast(), inspectors=[])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--rows", type=int, default=4000, help="rows per partition")
    ap.add_argument("--engines", default="local,dask")
    ap.add_argument("--jobs", default="scan", help="scan, protect or scan,protect")
    ap.add_argument("--repeats", type=int, default=3, help="timed jobs per configuration (median)")
    ap.add_argument("--lake-tb", type=float, default=10.0)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        root = Path(tmp)
        (root / "data").mkdir()
        (root / "warm").mkdir()
        size = make_dataset(root / "data", partitions=args.partitions, rows=args.rows)
        make_dataset(root / "warm", partitions=2, rows=200, seed=1)
        rows = args.partitions * args.rows
        print(
            f"dataset: {args.partitions} Parquet partitions x {args.rows} rows = {rows} rows, "
            f"{size / 1e6:.1f} MB; cpus={os.cpu_count()} (load avg {os.getloadavg()[0]:.1f})"
        )
        vault = _project(root) if "protect" in args.jobs else None
        for kind in args.jobs.split(","):
            _report(kind, args, root, size, rows, vault)


def _report(kind: str, args: argparse.Namespace, root: Path, size: int, rows: int, vault: object) -> None:
    reference = None
    per_partition = None
    print(
        f"\n[{kind}]\n{'engine':<7}{'workers':>8}{'wall s':>9}{'MB/s':>8}{'rows/s':>10}{'speed-up':>10}"
        f"{'eff.':>7}"
        "  peak RSS per worker (MB)"
    )
    for engine in args.engines.split(","):
        base = None
        for workers in (1, 2):
            wall, out, peaks = run_engine(kind, engine, workers, root, args.repeats, vault)
            if reference is None:
                reference = out
            assert out == reference, f"{kind}: {engine} x{workers} differs from the first run"
            base = base or wall
            speedup = base / wall
            if (engine == "dask" and workers == 2) or per_partition is None:
                per_partition = (wall * workers / args.partitions, speedup / workers)
            peak = ", ".join(f"{p:.0f}" for p in peaks) + (" (largest child)" if engine == "local" else "")
            print(
                f"{engine:<7}{workers:>8}{wall:>9.2f}{size / 1e6 / wall:>8.2f}{rows / wall:>10.0f}"
                f"{speedup:>9.2f}x{speedup / workers:>7.2f}  {peak}"
            )
    print(f"{kind} results identical across engines and worker counts: yes")
    assert per_partition is not None
    cost, eff = per_partition
    lake = args.lake_tb * 1e12
    n_parts = lake / (size / args.partitions)
    print(
        f"projection ({kind}): {args.lake_tb:g} TB = {n_parts:,.0f} partitions of this size at "
        f"{cost:.2f} worker-s each (measured, Dask 2 workers), efficiency {eff:.2f} assumed to hold:"
    )
    for n in (8, 64, 512):
        hours = n_parts * cost / (n * eff) / 3600
        print(f"  {n:>4} workers: {hours:,.1f} h")


if __name__ == "__main__":
    main()
