"""PII discovery: bastion vs Presidio's BatchAnalyzerEngine (same offline recognizers), same run.

Tabular: a generated CSV of ``--size-mb`` (default 200 MB). bastion scans the whole file (streamed, in a fresh
process whose peak RSS is reported, at the full size and at a quarter of it); Presidio's
``BatchAnalyzerEngine.analyze_dict`` runs on the first ``--presidio-rows`` rows only (it is slow) and its MB/s
is extrapolated from that subsample. Per-entity precision/recall for both are measured cell by cell on the
same first ``--presidio-rows`` rows (bastion also on ``--eval-rows``).

Text: a labelled corpus of ``--text-lines`` lines; both tools see the same lines; a predicted span counts when
it overlaps a true span of the same entity. Presidio runs with ``NoOpNlpEngine`` (pattern recognizers only;
no spaCy model), so it has no PERSON / address / secret recognizer offline; its DATE_TIME is counted as
DATE_OF_BIRTH (lenient to Presidio).

    python benchmarks/bench_pii.py --size-mb 200
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from bastion.data import entities as E
from bastion.data.synth import COLUMNS, generate_table, generate_text, iter_rows

COMPARED = [E.EMAIL, E.PHONE, E.CREDIT_CARD, E.IBAN, E.US_SSN, E.IP_ADDRESS, E.DATE_OF_BIRTH, E.PERSON,
            E.STREET_ADDRESS, E.SECRET]  # fmt: skip
PRESIDIO_ALIASES = {"DATE_TIME": E.DATE_OF_BIRTH}


def write_csv(path: Path, size_mb: float, seed: int) -> int:
    target = int(size_mb * 1024 * 1024)
    rows = 0
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        block = 0
        while fh.tell() < target:
            for row, _ in iter_rows(seed=seed + block, rows=5000):
                w.writerow(row)
                rows += 1
            block += 1
    return rows


def _child_scan(path: str, queue: mp.Queue) -> None:
    from bastion.data import scan_file
    from bastion.data.detectors import all_detectors

    all_detectors()  # Presidio import outside the timed region (it is a one-off ~3 s)
    t0 = time.perf_counter()
    report = scan_file(path=path)
    elapsed = time.perf_counter() - t0
    queue.put((elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, report.rows, report.label.value))


def scan_in_child(path: Path) -> tuple[float, int, int, str]:
    ctx = mp.get_context("spawn")
    q: mp.Queue = ctx.Queue()
    p = ctx.Process(target=_child_scan, args=(str(path), q))
    p.start()
    result = q.get()
    p.join()
    return result


def prf(truth: set, pred: set, entity: str, idx: int) -> tuple[float, float, int]:
    t = {x for x in truth if x[idx] == entity}
    p = {x for x in pred if x[idx] == entity}
    tp = len(t & p)
    return (tp / len(p) if p else float("nan")), (tp / len(t) if t else float("nan")), len(t)


def bastion_cells(table, detectors) -> set:
    from bastion.data.detectors import detect_values

    pred = set()
    for j, col in enumerate(COLUMNS):
        hits = detect_values([r[j] for r in table.rows], column=col, detectors=detectors)
        for entity, eh in hits.entities.items():
            pred.update((int(r), col, entity) for r in eh.rows)
    return pred


def presidio_cells(table, analyzer) -> tuple[set, float]:
    from presidio_analyzer import BatchAnalyzerEngine

    batch = BatchAnalyzerEngine(analyzer_engine=analyzer)
    data = {c: [r[j] for r in table.rows] for j, c in enumerate(COLUMNS)}
    t0 = time.perf_counter()
    results = list(batch.analyze_dict(data, language="en"))
    elapsed = time.perf_counter() - t0
    pred = set()
    for res in results:
        for row, found in enumerate(res.recognizer_results):
            for r in found:
                pred.add((row, res.key, PRESIDIO_ALIASES.get(r.entity_type, r.entity_type)))
    return pred, elapsed


def overlap_prf(truth: list, pred: list, entity: str) -> tuple[float, float, int]:
    t = [x for x in truth if x[3] == entity]
    p = [x for x in pred if x[3] == entity]
    by_line_t = defaultdict(list)
    for x in t:
        by_line_t[x[0]].append(x)
    by_line_p = defaultdict(list)
    for x in p:
        by_line_p[x[0]].append(x)
    found = sum(1 for x in t if any(y[1] < x[2] and x[1] < y[2] for y in by_line_p[x[0]]))
    correct = sum(1 for y in p if any(y[1] < x[2] and x[1] < y[2] for x in by_line_t[y[0]]))
    return (correct / len(p) if p else float("nan")), (found / len(t) if t else float("nan")), len(t)


def fmt(v: float) -> str:
    return "  n/a" if v != v else f"{v:5.3f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=float, default=200.0)
    ap.add_argument("--presidio-rows", type=int, default=300)
    ap.add_argument("--eval-rows", type=int, default=5000)
    ap.add_argument("--text-lines", type=int, default=20000)
    ap.add_argument("--presidio-lines", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--reuse", action="store_true", help="Reuse the CSVs already in --workdir.")
    args = ap.parse_args(argv)

    from bastion.data.detectors import all_detectors
    from bastion.data.presidio import offline_analyzer

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-pii-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"# bench_pii  size={args.size_mb} MB  seed={args.seed}  workdir={workdir}")
    big = workdir / "big.csv"
    small = workdir / "quarter.csv"
    t0 = time.perf_counter()
    if args.reuse and big.exists() and small.exists():
        print(f"reusing {big} ({big.stat().st_size / 1e6:.1f} MB)")
    else:
        rows_big = write_csv(big, args.size_mb, args.seed)
        write_csv(small, args.size_mb / 4, args.seed)
        print(
            f"generated {rows_big} rows ({big.stat().st_size / 1e6:.1f} MB) "
            f"in {time.perf_counter() - t0:.1f}s"
        )

    # --- tabular throughput -----------------------------------------------------------------------------
    _, rss_q, _, _ = scan_in_child(small)
    el_b, rss_b, _, label = scan_in_child(big)
    mb_big = big.stat().st_size / 1e6
    bastion_mbs = mb_big / el_b
    analyzer = offline_analyzer(use_ner=False)
    sub = generate_table(rows=args.presidio_rows, seed=args.seed)
    sub_bytes = sum(len(",".join(r)) + 1 for r in sub.rows) / 1e6
    p_pred, p_elapsed = presidio_cells(sub, analyzer)
    presidio_mbs = sub_bytes / p_elapsed
    print("\n## Tabular (CSV)")
    print(f"bastion  scan_file: {mb_big:.1f} MB in {el_b:.1f}s = {bastion_mbs:.2f} MB/s  (label {label})")
    print(
        f"presidio BatchAnalyzerEngine: {sub_bytes * 1000:.0f} kB ({args.presidio_rows} rows) "
        f"in {p_elapsed:.1f}s"
        f" = {presidio_mbs:.4f} MB/s  (extrapolated to {mb_big:.0f} MB: {mb_big / presidio_mbs / 60:.0f} min)"
    )
    print(f"throughput ratio bastion/presidio: {bastion_mbs / presidio_mbs:.0f}x")
    print(
        f"peak RSS of the scanning process: {rss_q / 1024:.0f} MiB at {mb_big / 4:.0f} MB, "
        f"{rss_b / 1024:.0f} MiB at {mb_big:.0f} MB"
    )
    detectors = all_detectors()
    b_pred_sub = bastion_cells(sub, detectors)
    ev = generate_table(rows=args.eval_rows, seed=args.seed + 1)
    b_pred_ev = bastion_cells(ev, detectors)
    print(
        f"\nper-entity precision / recall (cells; first {args.presidio_rows} rows for both, "
        f"bastion also {args.eval_rows})"
    )
    print(
        f"{'entity':16} {'n':>5}  {'bastion P':>9} {'R':>5}   {'presidio P':>10} {'R':>5}   "
        f"{'bastion@eval P':>14} {'R':>5}"
    )
    for e in COMPARED:
        bp, br, n = prf(set(sub.truth), b_pred_sub, e, 2)
        pp, pr, _ = prf(set(sub.truth), p_pred, e, 2)
        ep, er, _ = prf(set(ev.truth), b_pred_ev, e, 2)
        pr_s = fmt(pr) if pp == pp else " 0.000" if n else "  n/a"
        print(
            f"{e:16} {n:>5}  {fmt(bp):>9} {fmt(br):>5}   {fmt(pp):>10} {pr_s:>5}   {fmt(ep):>14} {fmt(er):>5}"
        )

    # --- text corpus ------------------------------------------------------------------------------------
    from bastion.data import scan_file
    from bastion.data.detectors import detect_text

    corpus = generate_text(lines=args.text_lines, seed=args.seed)
    txt = corpus.write(workdir / "corpus.txt")
    t0 = time.perf_counter()
    scan_file(path=txt)
    el_t = time.perf_counter() - t0
    text_mb = txt.stat().st_size / 1e6
    lines = corpus.lines[: args.presidio_lines]
    b_spans = [
        (i, s.start, s.end, s.entity)
        for i, line in enumerate(lines)
        for s in detect_text(line, detectors=detectors)
    ]
    t0 = time.perf_counter()
    p_spans = []
    for i, line in enumerate(lines):
        for r in analyzer.analyze(text=line, language="en"):
            p_spans.append((i, r.start, r.end, PRESIDIO_ALIASES.get(r.entity_type, r.entity_type)))
    el_pt = time.perf_counter() - t0
    sub_text_mb = sum(len(line) + 1 for line in lines) / 1e6
    truth = [s for s in corpus.spans if s[0] < len(lines)]
    print("\n## Text corpus")
    print(f"bastion  scan_file: {text_mb:.2f} MB in {el_t:.2f}s = {text_mb / el_t:.2f} MB/s")
    print(
        f"presidio analyze: {len(lines)} lines ({sub_text_mb * 1000:.0f} kB) in {el_pt:.1f}s "
        f"= {sub_text_mb / el_pt:.4f} MB/s"
    )
    print(f"throughput ratio bastion/presidio: {(text_mb / el_t) / (sub_text_mb / el_pt):.0f}x")
    print(f"{'entity':16} {'n':>5}  {'bastion P':>9} {'R':>5}   {'presidio P':>10} {'R':>5}")
    for e in COMPARED:
        bp, br, n = overlap_prf(truth, b_spans, e)
        pp, pr, _ = overlap_prf(truth, p_spans, e)
        pr_s = fmt(pr) if pp == pp else " 0.000" if n else "  n/a"
        print(f"{e:16} {n:>5}  {fmt(bp):>9} {fmt(br):>5}   {fmt(pp):>10} {pr_s:>5}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
