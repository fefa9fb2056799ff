"""Streaming readers (CSV, Parquet, JSON Lines, plain text) and atomic writers.

Readers yield :class:`Chunk` objects of at most ``chunk_rows`` rows, so memory stays bounded by the chunk,
not the file. Every way an input can be unreadable (binary content, a line or a Parquet cell longer than
``max_line_bytes``, invalid UTF-8, malformed CSV quoting or a wrong field count, invalid JSON, a corrupt
Parquet file) raises one :class:`~bastion.errors.InvalidInput` naming the line, never the offending value.
Writers go through :func:`atomic_output`: a temporary file in the target directory, fsync, rename on success,
deleted on failure, so a failed run leaves no partial output.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bastion.errors import DependencyMissing, InvalidInput, NotFound
from bastion.files import atomic_output

FORMATS: tuple[str, ...] = ("csv", "parquet", "jsonl", "text")
DEFAULT_CHUNK_ROWS = 20_000
DEFAULT_MAX_LINE_BYTES = 1 << 20  # 1 MiB
TEXT_COLUMN = "text"
_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


@dataclass
class Chunk:
    """Up to ``chunk_rows`` rows: string views of every column (empty string = missing).

    ``raw`` carries the reader's native rows for writers that keep untouched columns as they were
    (a pyarrow RecordBatch for Parquet, the parsed objects for JSON Lines).
    """

    columns: list[str]
    data: dict[str, list[str]]
    row_offset: int
    n_rows: int
    raw: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


def detect_format(path: Path, fmt: str | None = None) -> str:
    if fmt is not None:
        if fmt not in FORMATS:
            raise InvalidInput(f"unknown input format {fmt!r} (one of {', '.join(FORMATS)})")
        return fmt
    return _EXTENSIONS.get(path.suffix.lower(), "text")


def refuse_overwrite(src: Path, dst: Path) -> None:
    """Raise when ``dst`` is ``src`` (the same path, a link to it, or another name of the same file): an
    output never replaces its input."""
    if dst.exists() and src.exists() and (dst.resolve() == src.resolve() or os.path.samefile(src, dst)):
        raise InvalidInput("the output must not overwrite the input")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


def _check_input(path: Path, fmt: str) -> None:
    if not path.exists():
        raise NotFound(f"no such file: {path}")
    if not path.is_file():
        raise InvalidInput(f"not a regular file: {path}")
    if fmt == "parquet":
        return
    with path.open("rb") as fh:
        head = fh.read(1 << 16)
    if b"\x00" in head:
        if head[:2] in (b"\xff\xfe", b"\xfe\xff") or head[1:200:2].count(0) > 0.8 * len(head[1:200:2]):
            raise InvalidInput(
                f"{path.name} looks like UTF-16 text, not UTF-8 {fmt}",
                hint=f"convert it: iconv -f UTF-16 -t UTF-8 {path.name} > {path.stem}-utf8{path.suffix}",
            )
        raise InvalidInput(f"{path.name} looks like a binary file (NUL bytes), not {fmt}")


def _lines(fh: IO[bytes], *, max_line_bytes: int, name: str) -> Iterator[str]:
    """Decoded lines (newline kept), each capped at ``max_line_bytes``."""
    number = 0
    while True:
        raw = fh.readline(max_line_bytes + 1)
        if not raw:
            return
        number += 1
        if len(raw) > max_line_bytes:
            raise InvalidInput(f"{name}: line {number} is longer than {max_line_bytes} bytes")
        if b"\x00" in raw:
            raise InvalidInput(f"{name}: line {number} contains NUL bytes (binary data)")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"{name}: line {number} is not valid UTF-8") from exc
        if number == 1 and text.startswith("\ufeff"):
            text = text[1:]
        yield text


class _LineCounter:
    """Wraps the line iterator so CSV errors can name the physical line."""

    def __init__(self, it: Iterator[str]) -> None:
        self.it = it
        self.line = 0

    def __iter__(self) -> _LineCounter:
        return self

    def __next__(self) -> str:
        value = next(self.it)
        self.line += 1
        return value


def _csv_dialect(first_line: str, path: Path) -> str:
    return "\t" if path.suffix.lower() == ".tsv" or first_line.count("\t") > first_line.count(",") else ","


def _iter_csv(path: Path, *, chunk_rows: int, max_line_bytes: int) -> Iterator[Chunk]:
    with path.open("rb") as fh:
        counter = _LineCounter(_lines(fh, max_line_bytes=max_line_bytes, name=path.name))
        try:
            first = next(counter)
        except StopIteration:
            raise InvalidInput(f"{path.name}: empty file (no header row)") from None
        delimiter = _csv_dialect(first, path)

        def all_lines() -> Iterator[str]:
            yield first
            yield from counter

        reader = csv.reader(all_lines(), delimiter=delimiter, strict=True)
        csv.field_size_limit(max_line_bytes)
        try:
            header = next(reader)
        except csv.Error as exc:
            raise InvalidInput(f"{path.name}: malformed CSV header") from exc
        if not header or any(h == "" for h in header):
            raise InvalidInput(f"{path.name}: the header row has empty column names")
        if len(set(header)) != len(header):
            raise InvalidInput(f"{path.name}: the header row repeats a column name")
        width = len(header)
        offset = 0
        rows: list[list[str]] = []
        try:
            for row in reader:
                if len(row) != width:
                    if not row:
                        continue  # blank line
                    raise InvalidInput(
                        f"{path.name}: line {counter.line} has {len(row)} fields, expected {width}"
                    )
                rows.append(row)
                if len(rows) >= chunk_rows:
                    yield _csv_chunk(header, rows, offset, delimiter)
                    offset += len(rows)
                    rows = []
        except csv.Error as exc:
            if "field limit" in str(exc):  # a quoted cell spanning lines, longer than the cap
                raise InvalidInput(
                    f"{path.name}: a cell near line {counter.line} is longer than {max_line_bytes} bytes"
                ) from exc
            raise InvalidInput(f"{path.name}: malformed CSV near line {counter.line}") from exc
        if rows or offset == 0:
            yield _csv_chunk(header, rows, offset, delimiter)


def _csv_chunk(header: list[str], rows: list[list[str]], offset: int, delimiter: str) -> Chunk:
    cols = list(zip(*rows, strict=True)) if rows else [() for _ in header]
    data = {name: list(col) for name, col in zip(header, cols, strict=True)}
    return Chunk(list(header), data, offset, len(rows), extra={"delimiter": delimiter})


def _jsonable_str(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _iter_jsonl(path: Path, *, chunk_rows: int, max_line_bytes: int) -> Iterator[Chunk]:
    with path.open("rb") as fh:
        objs: list[dict[str, Any]] = []
        offset = 0
        for number, line in enumerate(_lines(fh, max_line_bytes=max_line_bytes, name=path.name), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"{path.name}: line {number} is not valid JSON") from exc
            if not isinstance(obj, dict):
                raise InvalidInput(f"{path.name}: line {number} is not a JSON object")
            objs.append(obj)
            if len(objs) >= chunk_rows:
                yield _jsonl_chunk(objs, offset)
                offset += len(objs)
                objs = []
        if objs or offset == 0:
            yield _jsonl_chunk(objs, offset)


def _jsonl_chunk(objs: list[dict[str, Any]], offset: int) -> Chunk:
    columns: dict[str, None] = {}
    for obj in objs:
        for key in obj:
            columns.setdefault(str(key), None)
    data = {c: [_jsonable_str(o.get(c)) for o in objs] for c in columns}
    return Chunk(list(columns), data, offset, len(objs), raw=objs)


def _iter_text(path: Path, *, chunk_rows: int, max_line_bytes: int) -> Iterator[Chunk]:
    with path.open("rb") as fh:
        lines: list[str] = []
        endings: list[str] = []
        offset = 0
        for line in _lines(fh, max_line_bytes=max_line_bytes, name=path.name):
            body = line.rstrip("\r\n")
            lines.append(body)
            endings.append(line[len(body) :])
            if len(lines) >= chunk_rows:
                yield Chunk(
                    [TEXT_COLUMN], {TEXT_COLUMN: lines}, offset, len(lines), extra={"endings": endings}
                )
                offset += len(lines)
                lines, endings = [], []
        if lines or offset == 0:
            yield Chunk([TEXT_COLUMN], {TEXT_COLUMN: lines}, offset, len(lines), extra={"endings": endings})


def _iter_parquet(path: Path, *, chunk_rows: int, max_cell_chars: int) -> Iterator[Chunk]:
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise DependencyMissing("Parquet needs pyarrow", hint="pip install 'bastion-ml[pii]'") from exc
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise InvalidInput(f"{path.name}: not a readable Parquet file") from exc
    offset = 0
    try:
        batches = pf.iter_batches(batch_size=chunk_rows)
        for batch in batches:
            data: dict[str, list[str]] = {}
            for name, col in zip(batch.schema.names, batch.columns, strict=True):
                if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
                    data[name] = [v if v is not None else "" for v in col.to_pylist()]
                else:
                    try:
                        as_str = pc.cast(col, pa.string())
                        data[name] = [v if v is not None else "" for v in as_str.to_pylist()]
                    except pa.ArrowException:
                        data[name] = [_jsonable_str(v) for v in col.to_pylist()]
                if data[name] and max(map(len, data[name])) > max_cell_chars:
                    # The same cap as a CSV or JSON Lines line: one cell must not hold a whole file.
                    raise InvalidInput(
                        f"{path.name}: column {name!r} has a cell longer than {max_cell_chars} characters "
                        f"(rows {offset + 1}-{offset + batch.num_rows})"
                    )
            yield Chunk(list(batch.schema.names), data, offset, batch.num_rows, raw=batch)
            offset += batch.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise InvalidInput(f"{path.name}: corrupt Parquet data") from exc
    if offset == 0:
        names = pf.schema_arrow.names
        yield Chunk(list(names), {n: [] for n in names}, 0, 0, raw=None)


def iter_chunks(
    path: str | Path,
    *,
    fmt: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> Iterator[Chunk]:
    """Stream ``path`` in chunks of at most ``chunk_rows`` rows (text: lines)."""
    p = Path(path)
    kind = detect_format(p, fmt)
    if chunk_rows < 1:
        raise InvalidInput("chunk_rows must be positive")
    _check_input(p, kind)
    if kind == "csv":
        yield from _iter_csv(p, chunk_rows=chunk_rows, max_line_bytes=max_line_bytes)
    elif kind == "jsonl":
        yield from _iter_jsonl(p, chunk_rows=chunk_rows, max_line_bytes=max_line_bytes)
    elif kind == "parquet":
        yield from _iter_parquet(p, chunk_rows=chunk_rows, max_cell_chars=max_line_bytes)
    else:
        yield from _iter_text(p, chunk_rows=chunk_rows, max_line_bytes=max_line_bytes)


__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "DEFAULT_MAX_LINE_BYTES",
    "FORMATS",
    "TEXT_COLUMN",
    "Chunk",
    "atomic_output",
    "detect_format",
    "iter_chunks",
    "refuse_overwrite",
    "sha256_file",
]
