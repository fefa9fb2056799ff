# ruff: noqa: E501 - tables of entity names and report lines read better unwrapped
"""PII discovery and protection: bastion vs Presidio, on an evaluation corpus not built from the detectors.

Data: ``tests/data/corpus`` (300 rows x 28 columns of international customers; names from `mimesis`,
identifiers from this repository's own check-digit generators; free-text notes and JSON in cells; decoy
columns), with its labels. bastion's detectors use Faker's name lists and python-stdnum; neither is used to
build the corpus.

Anchor: Presidio 2.2 ``BatchAnalyzerEngine`` (offline, ``NoOpNlpEngine``: pattern recognizers, no spaCy model)
in its best configuration for these data: its default English recognizers plus its country recognizers for
the identifiers in the corpus (UK NINO, Aadhaar, NIF/NIE, codice fiscale, RRN, SIN, Steuer-ID, PESEL,
passports and driving licences of several countries) registered for English, restricted to the entities
compared. Both tools run **warm** (imported, recognizers built, one untimed pass first) on the **same rows**,
interleaved, ``--repeats`` times in the same process; wall-clock and process CPU time are both reported (CPU
time is steadier when the machine is shared). Two sets of rows are timed: the corpus repeated ``--times``
times (the historical figure; bastion scans each distinct cell value of a chunk once, so repeats are cheap for
it and not for Presidio) and as many **distinct** rows made by the corpus generator with another seed (every
name, id, note and JSON cell new; only categorical columns and the hand-written rare names repeat, as in real
tables): the distinct-rows ratio is the one that says how fast the detectors are.

Printed: per-entity precision / recall for structured columns (cell level) and for free text (notes and
JSON cells, value level: a value counts as found when a span of the same entity overlaps it) for both tools;
bastion's leak rate after ``protect`` per entity; throughput on the same rows (ratio) and bastion's MB/s and
peak RSS on a larger file of distinct generated rows (``--size-mb``), in a fresh process, at a quarter of the
size and at the full size (memory must not grow with the file).

    python benchmarks/bench_pii.py --size-mb 60 --repeats 5 --times 2
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import multiprocessing as mp
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "corpus"
ENTITIES = ["PERSON", "EMAIL", "PHONE", "NATIONAL_ID", "PASSPORT", "DRIVER_LICENSE", "DATE_OF_BIRTH",
            "ADDRESS", "IBAN", "CREDIT_CARD", "SECRET"]  # fmt: skip
FREE_TEXT = ("notes", "profile")
BASTION_MAP = {"EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "STREET_ADDRESS": "ADDRESS", "IBAN_CODE": "IBAN",
               "DATE": "DATE_OF_BIRTH", "US_SSN": "NATIONAL_ID"}  # fmt: skip
PRESIDIO_MAP = {"EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "IBAN_CODE": "IBAN", "DATE_TIME": "DATE_OF_BIRTH",
                "CREDIT_CARD": "CREDIT_CARD", "US_SSN": "NATIONAL_ID", "US_ITIN": "NATIONAL_ID",
                "UK_NINO": "NATIONAL_ID", "IN_AADHAAR": "NATIONAL_ID", "ES_NIF": "NATIONAL_ID", "ES_NIE": "NATIONAL_ID",
                "IT_FISCAL_CODE": "NATIONAL_ID", "KR_RRN": "NATIONAL_ID", "CA_SIN": "NATIONAL_ID",
                "DE_TAX_ID": "NATIONAL_ID", "PL_PESEL": "NATIONAL_ID", "US_PASSPORT": "PASSPORT",
                "UK_PASSPORT": "PASSPORT", "DE_PASSPORT": "PASSPORT", "ES_PASSPORT": "PASSPORT",
                "IT_PASSPORT": "PASSPORT", "IN_PASSPORT": "PASSPORT", "KR_PASSPORT": "PASSPORT",
                "US_DRIVER_LICENSE": "DRIVER_LICENSE", "UK_DRIVING_LICENCE": "DRIVER_LICENSE",
                "DE_FUEHRERSCHEIN": "DRIVER_LICENSE", "IT_DRIVER_LICENSE": "DRIVER_LICENSE",
                "KR_DRIVER_LICENSE": "DRIVER_LICENSE"}  # fmt: skip
PRESIDIO_EXTRA = ["UkNinoRecognizer", "InAadhaarRecognizer", "EsNifRecognizer", "EsNieRecognizer",
                  "ItFiscalCodeRecognizer", "KrRrnRecognizer", "CaSinRecognizer", "DeTaxIdRecognizer",
                  "PlPeselRecognizer", "UkPassportRecognizer", "DePassportRecognizer", "EsPassportRecognizer",
                  "ItPassportRecognizer", "InPassportRecognizer", "KrPassportRecognizer",
                  "UkDrivingLicenceRecognizer", "DeFuehrerscheinRecognizer", "ItDriverLicenseRecognizer",
                  "KrDriverLicenseRecognizer"]  # fmt: skip


def generated(n_rows: int, seed: int) -> list[list[str]]:
    """``n_rows`` distinct rows from the corpus generator (``tests/data/corpus/generate.py``) with ``seed``."""
    spec = importlib.util.spec_from_file_location("corpus_generate", CORPUS / "generate.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.build(n_rows, seed)[1]


def load_corpus() -> tuple[list[str], list[list[str]], dict]:
    with (CORPUS / "customers.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    labels = json.loads((CORPUS / "labels.json").read_text(encoding="utf-8"))
    return rows[0], rows[1:], labels


def presidio_analyzer():
    import presidio_analyzer.predefined_recognizers as pr

    from bastion.data.presidio import offline_analyzer

    analyzer = offline_analyzer(use_ner=False)
    for name in PRESIDIO_EXTRA:
        analyzer.registry.add_recognizer(getattr(pr, name)(supported_language="en"))
    return analyzer


def presidio_spans(
    analyzer, header, rows
) -> tuple[list[tuple[int, str, int, int, str]], tuple[float, float]]:
    from presidio_analyzer import BatchAnalyzerEngine

    batch = BatchAnalyzerEngine(analyzer_engine=analyzer)
    data = {c: [r[j] for r in rows] for j, c in enumerate(header)}
    wanted = sorted(PRESIDIO_MAP)
    t0, c0 = time.perf_counter(), time.process_time()
    results = list(batch.analyze_dict(data, language="en", entities=wanted))
    elapsed = (time.perf_counter() - t0, time.process_time() - c0)
    out = []
    for res in results:
        for row, found in enumerate(res.recognizer_results):
            for r in found:
                out.append((row, res.key, r.start, r.end, PRESIDIO_MAP.get(r.entity_type, r.entity_type)))
    return out, elapsed


def bastion_spans(header, rows) -> list[tuple[int, str, int, int, str]]:
    from bastion.data.detectors import all_detectors, detect_values

    dets = all_detectors()
    out = []
    for j, col in enumerate(header):
        hits = detect_values([r[j] for r in rows], column=col, detectors=dets)
        for row, spans in hits.spans_by_row().items():
            for a, b, e in spans:
                out.append((row, col, a, b, BASTION_MAP.get(e, e)))
    return out


def truth_spans(labels, rows, header) -> list[tuple[int, str, int, int, str]]:
    idx = {c: j for j, c in enumerate(header)}
    out = []
    for row, col, entity, value in labels["values"]:
        cell = rows[row][idx[col]]
        start = cell.find(value)
        if start < 0 and col == "profile":
            start = cell.find(json.dumps(value, ensure_ascii=False)[1:-1])
        if start >= 0:
            out.append((row, col, start, start + len(value), entity))
    return out


def scores(truth, pred, entity, free_text: bool) -> tuple[float, float, int]:
    t = [x for x in truth if x[4] == entity and (x[1] in FREE_TEXT) == free_text]
    p = [x for x in pred if x[4] == entity and (x[1] in FREE_TEXT) == free_text]
    by_cell_t: dict[tuple[int, str], list] = {}
    for x in t:
        by_cell_t.setdefault((x[0], x[1]), []).append(x)
    by_cell_p: dict[tuple[int, str], list] = {}
    for x in p:
        by_cell_p.setdefault((x[0], x[1]), []).append(x)
    found = sum(1 for x in t if any(y[2] < x[3] and x[2] < y[3] for y in by_cell_p.get((x[0], x[1]), [])))
    correct = sum(1 for y in p if any(y[2] < x[3] and x[2] < y[3] for x in by_cell_t.get((y[0], y[1]), [])))
    return (correct / len(p) if p else float("nan")), (found / len(t) if t else float("nan")), len(t)


def leak_rates(labels, out_path: Path) -> tuple[float, dict[str, float]]:
    with out_path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        after = list(reader)
    leaks: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    for row, column, entity, value in labels["values"]:
        totals[entity] += 1
        cell = after[row][column] if column in header else ""
        family = value.split()[-1] if entity == "PERSON" else ""
        if value in cell or (len(family) >= 3 and family in cell):
            leaks[entity] += 1
    return sum(leaks.values()) / sum(totals.values()), {e: leaks[e] / totals[e] for e in totals}


def _child_scan(path: str, queue: mp.Queue) -> None:
    from bastion.data import scan_file
    from bastion.data._names import lexicon
    from bastion.data.detectors import all_detectors

    all_detectors()
    lexicon()
    t0 = time.perf_counter()
    report = scan_file(path=path)
    elapsed = time.perf_counter() - t0
    queue.put((elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, report.rows))


def scan_in_child(path: Path) -> tuple[float, int, int]:
    ctx = mp.get_context("spawn")
    q: mp.Queue = ctx.Queue()
    p = ctx.Process(target=_child_scan, args=(str(path), q))
    p.start()
    result = q.get()
    p.join()
    return result


def write_distinct(path: Path, header, rows, size_mb: float, seed: int) -> int:
    """Distinct generated rows until ``path`` holds ``size_mb`` MB (batches of 2,000 rows, seeds from ``seed``)."""
    n = 0
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        while fh.tell() < size_mb * 1e6:
            batch = generated(2000, seed + n)
            w.writerows(batch)
            n += len(batch)
    return n


def fmt(v: float) -> str:
    return "  n/a" if v != v else f"{v:5.3f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=float, default=60.0, help="Size of the repeated-corpus file for MB/s.")
    ap.add_argument("--repeats", type=int, default=5, help="Timed runs of each tool on the same rows.")
    ap.add_argument("--times", type=int, default=2, help="Timed rows: the corpus repeated this many times.")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument(
        "--no-gate",
        action="store_true",
        help="Run every detector on every chunk in this process (the RE2 gate's reference path; same findings).",
    )
    args = ap.parse_args(argv)
    if args.no_gate:
        from bastion.data.detectors import engine

        engine.USE_GATE = False

    from bastion.data import ScopeKeys, protect_file, scan_file
    from bastion.data._names import lexicon
    from bastion.data.detectors import all_detectors

    header, rows, labels = load_corpus()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-pii-"))
    workdir.mkdir(parents=True, exist_ok=True)
    timed_rows = rows * args.times
    same = workdir / "same_rows.csv"
    with same.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([header, *timed_rows])
    mb_same = same.stat().st_size / 1e6
    print(f"# bench_pii  corpus={CORPUS}  rows={len(rows)}  columns={len(header)}  gate={not args.no_gate}")
    print(
        f"# timed on the same {len(timed_rows)} rows (corpus x{args.times}, {mb_same:.3f} MB) for both tools"
    )

    # --- warm both tools, then time them on the same rows, interleaved --------------------------------------
    analyzer = presidio_analyzer()
    all_detectors()
    lexicon()
    presidio_spans(analyzer, header, rows[:20])
    scan_file(path=same)
    distinct_rows = generated(len(timed_rows), seed=1)
    distinct = workdir / "distinct_rows.csv"
    with distinct.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([header, *distinct_rows])
    # Warm on these rows too (untimed; data of their own seed, not the timed rows): lazily loaded metadata
    # (phone regions, identifier modules) the corpus did not touch would otherwise land in the first run.
    warm = workdir / "warm_rows.csv"
    with warm.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([header, *generated(len(timed_rows), seed=2)])
    scan_file(path=warm)
    presidio_spans(analyzer, header, generated(20, seed=2))
    t_p_all: list[float] = []
    for title, path, data in (
        (f"corpus x{args.times}", same, timed_rows),
        (f"{len(distinct_rows)} distinct generated rows", distinct, distinct_rows),
    ):
        mb = path.stat().st_size / 1e6
        t_b, t_p, c_b, c_p = [], [], [], []
        for _ in range(args.repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            scan_file(path=path)
            t_b.append(time.perf_counter() - t0)
            c_b.append(time.process_time() - c0)
            _, (wall, cpu) = presidio_spans(analyzer, header, data)
            t_p.append(wall)
            c_p.append(cpu)
        t_p_all.extend(t_p)
        wall_ratios = [p / b for p, b in zip(t_p, t_b, strict=True)]
        cpu_ratios = [p / b for p, b in zip(c_p, c_b, strict=True)]
        med = statistics.median
        print(f"\n## Throughput on the same rows: {title}, {mb:.3f} MB (warm, same run, interleaved)")
        print(f"bastion scan_file           : wall median {med(t_b):.3f} s ({mb / med(t_b):.3f} MB/s), "
              f"CPU median {med(c_b):.3f} s ({mb / med(c_b):.3f} MB/s)")  # fmt: skip
        print(f"presidio BatchAnalyzerEngine: wall median {med(t_p):.3f} s ({mb / med(t_p):.4f} MB/s), "
              f"CPU median {med(c_p):.3f} s ({mb / med(c_p):.4f} MB/s)")  # fmt: skip
        print(f"ratio presidio/bastion, wall: median {med(wall_ratios):.0f}x, min {min(wall_ratios):.0f}x, "
              f"max {max(wall_ratios):.0f}x  (runs: {', '.join(f'{r:.0f}' for r in wall_ratios)})")  # fmt: skip
        print(f"ratio presidio/bastion, CPU : median {med(cpu_ratios):.0f}x, min {min(cpu_ratios):.0f}x, "
              f"max {max(cpu_ratios):.0f}x  (runs: {', '.join(f'{r:.0f}' for r in cpu_ratios)})")  # fmt: skip
    p_pred, _ = presidio_spans(analyzer, header, rows)
    presidio_mb_s = (distinct.stat().st_size / 1e6) / statistics.median(t_p_all[args.repeats :])

    # --- accuracy ----------------------------------------------------------------------------------------
    truth = truth_spans(labels, rows, header)
    b_pred = bastion_spans(header, rows)
    for free_text, title in (
        (False, "structured columns (cell level)"),
        (True, "free text: notes + JSON cells"),
    ):
        print(f"\n## Precision / recall, {title}")
        print(f"{'entity':16} {'n':>5}  {'bastion P':>9} {'R':>5}   {'presidio P':>10} {'R':>5}")
        for e in ENTITIES:
            bp, br, n = scores(truth, b_pred, e, free_text)
            pp, pr, _ = scores(truth, p_pred, e, free_text)
            if n:
                print(
                    f"{e:16} {n:>5}  {fmt(bp):>9} {fmt(br):>5}   {fmt(pp):>10} {fmt(pr) if pp == pp else '0.000':>5}"
                )

    # --- leak rate after protect ----------------------------------------------------------------------------
    out = workdir / "protected.csv"
    res = protect_file(
        path=CORPUS / "customers.csv", out=out, keys=ScopeKeys(bytes(range(32)), scope="bench")
    )
    overall, per = leak_rates(labels, out)
    print("\n## Leak rate after protect (values found verbatim; PERSON also by family name)")
    print(f"overall {overall:.4f}; " + ", ".join(f"{e} {r:.3f}" for e, r in sorted(per.items())))
    modified = [c for c, lab in labels["columns"].items() if lab in ("public", "internal")
                and any(p.name == c and p.action.value != "keep" for p in res.plan)]  # fmt: skip
    print(f"public/internal columns modified: {modified or 'none'}")
    sensitive = [c for c, lab in labels["columns"].items() if lab in ("pii", "secret")]
    hit = [c for c in sensitive if res.report.column(c).label.value in ("pii", "secret")]
    print(f"column classification recall (pii/secret): {len(hit)}/{len(sensitive)}")

    # --- larger file: MB/s and memory -------------------------------------------------------------------------
    big, quarter = workdir / "big.csv", workdir / "quarter.csv"
    n_big = write_distinct(big, header, rows, args.size_mb, seed=1000)
    write_distinct(quarter, header, rows, args.size_mb / 4, seed=1000)
    _, rss_q, _ = scan_in_child(quarter)
    el_b, rss_b, _ = scan_in_child(big)
    mb_big = big.stat().st_size / 1e6
    print("\n## Larger file (distinct generated rows), fresh process")
    print(f"bastion scan_file: {mb_big:.1f} MB ({n_big} rows) in {el_b:.1f} s = {mb_big / el_b:.3f} MB/s; "
          f"vs presidio's distinct-rows wall MB/s: {(mb_big / el_b) / presidio_mb_s:.0f}x")  # fmt: skip
    print(
        f"peak RSS: {rss_q / 1024:.0f} MiB at {quarter.stat().st_size / 1e6:.1f} MB, "
        f"{rss_b / 1024:.0f} MiB at {mb_big:.1f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
