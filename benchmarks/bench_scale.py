"""Scale-out of ``data scan`` over partitioned Parquet: 1 vs 2 workers on the local and Dask engines.

Anchor: the same engine with one worker, same run, same dataset, same settings (one thread per worker,
Presidio off, 20,000-row chunks). The dataset is ``--partitions`` Parquet files of generated PII rows
(``bastion.data.synth``, 17 columns including free-text notes); every partition holds the same generated
rows with fresh ids, so partitions cost the same. Cluster and pool start-up are not timed; one untimed warm-up
job runs first on each executor (imports, detector compilation). Every result is checked identical to the
first run's (engines and worker counts alike).

Printed per engine and worker count: median wall time of ``--repeats`` jobs on the same executor,
throughput (MB/s of Parquet, rows/s), speed-up and scaling efficiency (speed-up / workers) vs one worker,
and peak RSS per worker (``ru_maxrss`` read in each Dask worker; for the local pool, the largest child
process seen). Then a paper projection of a 10 TB lake from the measured per-partition cost: time on N
workers assuming the measured 2-worker efficiency holds, which it will not on a shared filesystem or
network: treat it as a lower bound.

Figures on a machine shared with other jobs are noisy (speed-up is bounded by free cores): say so.

    python benchmarks/bench_scale.py                      # small: 8 partitions x 4,000 rows
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


def run_engine(engine: str, workers: int, root: Path, repeats: int) -> tuple[float, dict, list[float]]:
    from bastion.compute import make_executor, scan_dataset

    with make_executor(engine=engine, workers=workers) as ex:
        scan_dataset(path=root / "warm", executor=ex, use_presidio=False)
        walls = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            result = scan_dataset(path=root / "data", executor=ex, use_presidio=False)
            walls.append(time.perf_counter() - t0)
        wall = statistics.median(walls)
        peaks = sorted(ex.client.run(_peak_rss_mb).values()) if engine == "dask" else []  # type: ignore[attr-defined]
    if engine == "local":
        peaks = [resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024]
    return wall, result.to_dict(), peaks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--rows", type=int, default=4000, help="rows per partition")
    ap.add_argument("--engines", default="local,dask")
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
        reference = None
        per_partition = None
        print(
            f"{'engine':<7}{'workers':>8}{'wall s':>9}{'MB/s':>8}{'rows/s':>10}{'speed-up':>10}{'eff.':>7}"
            "  peak RSS per worker (MB)"
        )
        for engine in args.engines.split(","):
            base = None
            for workers in (1, 2):
                wall, out, peaks = run_engine(engine, workers, root, args.repeats)
                if reference is None:
                    reference = out
                assert out == reference, f"{engine} x{workers} differs from the first run"
                base = base or wall
                speedup = base / wall
                if (engine == "dask" and workers == 2) or per_partition is None:
                    per_partition = (wall * workers / args.partitions, speedup / workers)
                peak = ", ".join(f"{p:.0f}" for p in peaks) + (
                    " (largest child)" if engine == "local" else ""
                )
                print(
                    f"{engine:<7}{workers:>8}{wall:>9.2f}{size / 1e6 / wall:>8.2f}{rows / wall:>10.0f}"
                    f"{speedup:>9.2f}x{speedup / workers:>7.2f}  {peak}"
                )
        print("results identical across engines and worker counts: yes")
        assert per_partition is not None
        cost, eff = per_partition
        lake = args.lake_tb * 1e12
        n_parts = lake / (size / args.partitions)
        print(
            f"projection: {args.lake_tb:g} TB = {n_parts:,.0f} partitions of this size at "
            f"{cost:.2f} worker-s each (measured, Dask 2 workers), efficiency {eff:.2f} assumed to hold:"
        )
        for n in (8, 64, 512):
            hours = n_parts * cost / (n * eff) / 3600
            print(f"  {n:>4} workers: {hours:,.1f} h")


if __name__ == "__main__":
    main()
