"""A small multi-partition dataset: generated PII rows split into Parquet, CSV and JSON Lines partitions."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bastion.data.synth import COLUMNS, generate_table

PARTS = 4
ROWS = 150


def _rows(seed: int) -> list[dict[str, str]]:
    table = generate_table(rows=ROWS, seed=seed)
    out = [dict(zip(COLUMNS, row, strict=True)) for row in table.rows]
    for i, row in enumerate(out):
        # "contact" is a placeholder everywhere but in the last partition: only the whole dataset shows it
        # holds e-mail addresses.
        row["contact"] = row["email"] if seed == PARTS - 1 else "n/a"
        row["id"] = str(seed * ROWS + i)
    return out


def write_dataset(root: Path, fmt: str) -> Path:
    root.mkdir(parents=True)
    (root / "_SUCCESS").write_text("")  # not a partition
    for k in range(PARTS):
        rows = _rows(k)
        sub = root / f"part={k}"
        sub.mkdir()
        if fmt == "parquet":
            pq.write_table(pa.Table.from_pylist(rows), sub / f"data-{k}.parquet", row_group_size=50)
        elif fmt == "csv":
            with (sub / f"data-{k}.csv").open("w", newline="", encoding="utf-8") as fh:
                w = csv.DictWriter(fh, fieldnames=list(rows[0]))
                w.writeheader()
                w.writerows(rows)
        else:
            with (sub / f"data-{k}.jsonl").open("w", encoding="utf-8") as fh:
                for row in rows:
                    if k == 0:
                        row.pop("contact")  # a JSON Lines key that the first partition lacks entirely
                    fh.write(json.dumps(row) + "\n")
    return root


@pytest.fixture(scope="session")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("datasets")
    return {fmt: write_dataset(base / fmt, fmt) for fmt in ("parquet", "csv", "jsonl")}
