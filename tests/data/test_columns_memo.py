"""detect_values scans each distinct value of a chunk once: repeats get the findings of their first copy."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from bastion.data.detectors import detect_values

CORPUS = Path(__file__).parent / "corpus" / "customers.csv"


def _column(name: str, n: int) -> list[str]:
    with CORPUS.open(encoding="utf-8", newline="") as fh:
        return [row[name] for row in csv.DictReader(fh)][:n]


def test_repeated_values_get_the_findings_of_their_first_copy() -> None:
    for column in ("notes", "profile", "mobile", "ship_to"):
        values = _column(column, 40)
        # Every value three times, interleaved with the others, plus empty cells.
        repeated = [v for _ in range(3) for v in values] + ["", ""]
        once = detect_values(values, column=column)
        many = detect_values(repeated, column=column)
        assert many.n_values == len(repeated) and many.n_non_empty == 3 * once.n_non_empty
        assert many.total_chars == 3 * once.total_chars
        assert set(many.entities) == set(once.entities), column
        by_row_once, by_row_many = once.spans_by_row(), many.spans_by_row()
        for r in range(len(repeated) - 2):
            assert by_row_many.get(r, []) == by_row_once.get(r % len(values), []), (column, r)
        for entity, hits in once.entities.items():
            expect = np.sort(np.concatenate([hits.rows + k * len(values) for k in range(3)]))
            assert np.array_equal(many.entities[entity].rows, expect), (column, entity)
            assert many.entities[entity].full == 3 * hits.full, (column, entity)
        # Positions are in row order, as the report's first-few evidence expects.
        assert np.all(np.diff(many.span_rows) >= 0)
