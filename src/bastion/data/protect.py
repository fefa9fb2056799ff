"""Protection: apply per-column controls to a file, streamed, written atomically.

Two passes over the input, both streamed in chunks: the scan classifies every column over the whole file;
the second pass applies each column's control (from the policy, else the label's default).

Fail closed: a column classified ``pii`` or ``secret`` is protected **whole** — every non-empty cell, whatever
the detectors found in it — unless it is free text (prose, or JSON / key=value / delimited values in cells).
Only free-text columns get span replacement: structured cells are parsed and protected by key context
(:mod:`bastion.data._cells`), prose has each detected span replaced, and the result counts the cells in which
nothing was detected (:attr:`ProtectResult.undetected`). In a free-text column labelled ``pii``/``secret``
those cells get the column's action whole (fail closed) unless the policy names the column ``prose = true``,
which keeps them verbatim, or ``whole = true``, which protects every cell whole. Text files (one line per
cell) fail closed the same way when at least half their lines hold a finding; in sparser files (logs) lines
with no detection stay. A detected address (or a name filling its line) takes its block of short lines with
it (name, street, city, country of a label), and a span never stops inside a word. In a ``sparse`` column (a
few stray findings in an otherwise clean column) a cell with a PII finding is protected whole.
``reveal_value`` / ``reveal_text`` undo tokens and FF1.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bastion.data._cells import CellProtector
from bastion.data._national import BARE_ID, NATIONAL_ID, bare_national_id
from bastion.data.detectors import all_detectors, detect_values
from bastion.data.entities import SECRET_ENTITIES, Action, Label
from bastion.data.io import (
    DEFAULT_CHUNK_ROWS,
    DEFAULT_MAX_LINE_BYTES,
    TEXT_COLUMN,
    Chunk,
    atomic_output,
    detect_format,
    iter_chunks,
    refuse_overwrite,
    sha256_file,
)
from bastion.data.policy import Policy
from bastion.data.scan import ScanReport, entity_label, planned_action, scan_file, text_spans
from bastion.data.tokens import TOKEN_RE, ScopeKeys
from bastion.data.transforms import mask, redact, replace_spans, value_transform, widen_spans
from bastion.errors import CryptoError, InvalidInput

KEYED_ACTIONS = frozenset({Action.tokenize, Action.fpe, Action.hash})
# A text file in which at least this share of the lines hold a pii/secret finding is a file about people
# (notes, chat logs, tickets): a line there with nothing detected is more likely a detector's miss than
# clean, so it is protected whole (issue 21 r5 F-TEXT). Below it (an application log with a few e-mails),
# lines with no finding stay; either way the result counts them.
TEXT_DENSE_SHARE = 0.5


@dataclass(frozen=True)
class ColumnPlan:
    name: str
    action: Action
    entity: str | None
    kind: str
    label: str
    # Free-text pii/secret column not named prose: cells with no detection get the action whole.
    fail_closed: bool = False


@dataclass(frozen=True)
class ProtectResult:
    input: str
    output: str
    format: str
    input_digest: str
    output_digest: str
    rows: int
    token_scope: str
    plan: tuple[ColumnPlan, ...]
    report: ScanReport
    # Free-text columns: non-empty cells in which no span was detected (so nothing was replaced).
    undetected: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "output": self.output,
            "format": self.format,
            "input_digest": self.input_digest,
            "output_digest": self.output_digest,
            "rows": self.rows,
            "token_scope": self.token_scope,
            "label": self.report.label.value,
            "plan": [
                {
                    "column": p.name,
                    "action": p.action.value,
                    "entity": p.entity,
                    "kind": p.kind,
                    "label": p.label,
                    **(
                        {
                            "cells_without_detection": self.undetected.get(p.name, 0),
                            "undetected_cells_protected_whole": p.fail_closed,
                        }
                        if p.kind in ("free_text", "sparse") and p.action not in (Action.keep, Action.drop)
                        else {}
                    ),
                }
                for p in self.plan
            ],
        }


def make_plan(report: ScanReport, policy: Policy) -> tuple[ColumnPlan, ...]:
    """Each column's control. A ``pii``/``secret`` column that is not free text keeps its label's action,
    applied to every cell. Free text is protected span by span: unless a policy names the column, it gets the
    ``pii`` default for its spans (secrets inside are always redacted) instead of losing the column."""
    plan = []
    for c in report.columns:
        rule = policy.columns.get(c.name)
        action = planned_action(
            c.action,
            kind=c.kind,
            label=c.label,
            explicit=rule is not None and rule.action is not None,
            text=report.format == "text",
            policy=policy,
        )  # the scan's own action already; again for a report stored under another policy
        fail_closed = (
            c.kind == "free_text"
            and (report.format != "text" or c.cells_with_findings >= TEXT_DENSE_SHARE * c.non_empty)
            and c.label in (Label.pii, Label.secret)
            and not (rule is not None and rule.prose)
            and action not in (Action.keep, Action.drop)
        )
        plan.append(
            ColumnPlan(
                name=c.name,
                action=action,
                entity=c.primary_entity,
                kind=c.kind,
                label=c.label.value,
                fail_closed=fail_closed,
            )
        )
    return tuple(plan)


def _span_fn(action: Action, keys: ScopeKeys | None, policy: Policy) -> Callable[[str, str], str]:
    inner = _span_fn_inner(action, keys, policy)

    def fn(text: str, entity: str) -> str:
        return redact(text, entity=entity) if entity in SECRET_ENTITIES else inner(text, entity)

    return fn


def _span_fn_inner(action: Action, keys: ScopeKeys | None, policy: Policy) -> Callable[[str, str], str]:
    if action == Action.mask:
        return lambda text, _e: mask(text, keep_last=policy.mask_keep_last)
    if action == Action.redact:
        return lambda _t, entity: redact(_t, entity=entity)
    if keys is None:
        raise InvalidInput("this policy needs a data key")
    if action == Action.hash:
        return lambda text, _e: keys.hmac(text)
    return lambda text, _e: keys.token(text)  # tokenize, and fpe/generalize on free text


class _Transformer:
    def __init__(
        self,
        plan: tuple[ColumnPlan, ...],
        *,
        keys: ScopeKeys | None,
        policy: Policy,
        fmt: str,
        use_presidio: bool,
    ) -> None:
        self.plan = {p.name: p for p in plan}
        self.keys = keys
        self.policy = policy
        self.fmt = fmt
        self.detectors = all_detectors(use_presidio=use_presidio)
        self.cell_fns: dict[str, Callable[[str], str]] = {}
        self.span_fns: dict[str, Callable[[str, str], str]] = {}
        self.undetected: dict[str, int] = {}
        # Free-text pii/secret columns not named prose by the policy: cells with no detection get the
        # column's action whole (fail closed), under the column's main entity.
        self.fail_closed: dict[str, str] = {}
        # Free-text pii/secret columns: a bare digit run with a valid check digit is an identifier.
        self.bare_ids: set[str] = set()
        self.sparse: set[str] = set()  # stray pattern hits only: their spans, nothing parsed
        for p in plan:
            if p.action in (Action.keep, Action.drop):
                continue
            if p.action in KEYED_ACTIONS and keys is None:
                raise InvalidInput("this policy needs a data key (tokenize, fpe or hash)")
            if p.kind == "sparse":
                self.span_fns[p.name] = _span_fn(p.action, keys, policy)
                self.sparse.add(p.name)
            elif p.kind == "free_text":
                self.span_fns[p.name] = _span_fn(p.action, keys, policy)
                if p.label in (Label.pii.value, Label.secret.value):
                    self.bare_ids.add(p.name)
                if p.fail_closed:
                    self.fail_closed[p.name] = p.entity or "PII"
            else:
                fn = value_transform(p.action, entity=p.entity, keys=keys, policy=policy)
                if fn is not None:
                    self.cell_fns[p.name] = fn

    def _sensitive(self, spans: list[tuple[int, int, str]]) -> str | None:
        """The entity a cell is protected whole under: a secret first, else the first pii entity."""
        found = [e for _, _, e in spans if entity_label(e, self.policy) in (Label.pii, Label.secret)]
        secret = [e for e in found if e in SECRET_ENTITIES]
        return (secret or found)[0] if found else None

    def dropped(self, name: str) -> bool:
        p = self.plan.get(name)
        return p is not None and p.action == Action.drop

    def transformed(self, name: str) -> bool:
        return name in self.cell_fns or name in self.span_fns

    def column(self, name: str, values: list[str]) -> list[str]:
        fn = self.cell_fns.get(name)
        if fn is not None:
            return [fn(v) if v else v for v in values]
        span_fn = self.span_fns.get(name)
        if span_fn is None:
            return values
        closed = self.fail_closed.get(name)
        if self.fmt == "text":
            per_line = text_spans(values, self.detectors)
            self.undetected[name] = self.undetected.get(name, 0) + sum(
                1 for v, s in zip(values, per_line, strict=True) if v.strip() and not s
            )
            return [
                replace_spans(v, widen_spans(v, s), span_fn)
                if s
                else (span_fn(v, closed) if closed and v.strip() else v)
                for v, s in zip(values, per_line, strict=True)
            ]
        hits = detect_values(values, column=name, detectors=self.detectors)
        by_row = hits.spans_by_row()
        cells = CellProtector(span_fn, self.detectors, shaped_names=name in self.bare_ids)
        sparse = name in self.sparse
        out: list[str] = []
        missed = 0
        for i, v in enumerate(values):
            if not v:
                out.append(v)
                continue
            structured = cells.protect(v) if len(v) > 8 and not sparse else None
            if structured is not None and structured[1]:
                out.append(structured[0])
            elif sparse and i in by_row and (whole := self._sensitive(by_row[i])) is not None:
                # A cell with a PII finding in a column that is otherwise clean (issue 21 r5 F-SPARSE): what
                # the detectors found says the cell is about a person, and what they missed beside it
                # (a lower-case name next to a phone) must not stay: the cell is protected whole.
                out.append(span_fn(v, whole))
            elif i in by_row:
                out.append(replace_spans(v, widen_spans(v, by_row[i]), span_fn))
            else:
                missed += 1
                out.append(span_fn(v, closed) if closed is not None else v)
            if name in self.bare_ids:
                out[-1] = _bare_ids(out[-1], span_fn)
        self.undetected[name] = self.undetected.get(name, 0) + missed
        return out


def _bare_ids(cell: str, span_fn: Callable[[str, str], str]) -> str:
    """In a column classified pii: bare digit runs that pass a national identifier's check digit
    (BSN, SIN, PESEL, Steuer-ID, CPF, Aadhaar, CNPJ), wherever they stand (issue 21 F3)."""
    if not any(ch.isdigit() for ch in cell):
        return cell
    return BARE_ID.sub(
        lambda m: span_fn(m.group(), NATIONAL_ID) if bare_national_id(m.group()) else m.group(), cell
    )


def _write_csv(tmp: Path, chunks: Iterator[Chunk], tr: _Transformer) -> int:
    rows = 0
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        writer = None
        for chunk in chunks:
            keep = [c for c in chunk.columns if not tr.dropped(c)]
            if writer is None:
                writer = csv.writer(fh, delimiter=chunk.extra.get("delimiter", ","))
                writer.writerow(keep)
            cols = [tr.column(c, chunk.data[c]) for c in keep]
            writer.writerows(zip(*cols, strict=True))
            rows += chunk.n_rows
    return rows


def _as_original_type(original: Any, new: str) -> Any:
    """A nested object protected key by key goes back as an object, not as a JSON string."""
    if isinstance(original, (dict, list)) and new[:1] in ("{", "["):
        try:
            parsed = json.loads(new)
        except ValueError:
            return new
        if isinstance(parsed, type(original)):
            return parsed
    return new


def _write_jsonl(tmp: Path, chunks: Iterator[Chunk], tr: _Transformer) -> int:
    rows = 0
    with tmp.open("w", encoding="utf-8", newline="\n") as fh:
        for chunk in chunks:
            new_cols = {c: tr.column(c, chunk.data[c]) for c in chunk.columns if tr.transformed(c)}
            for i, obj in enumerate(chunk.raw or []):
                out = {}
                for key, value in obj.items():
                    if tr.dropped(key):
                        continue
                    if key in new_cols and value not in (None, ""):
                        out[key] = _as_original_type(value, new_cols[key][i])
                    else:
                        out[key] = value
                fh.write(json.dumps(out, ensure_ascii=False) + "\n")
            rows += chunk.n_rows
    return rows


def _write_text(tmp: Path, chunks: Iterator[Chunk], tr: _Transformer) -> int:
    rows = 0
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        for chunk in chunks:
            lines = tr.column(TEXT_COLUMN, chunk.data[TEXT_COLUMN])
            endings = chunk.extra["endings"]
            fh.writelines(line + end for line, end in zip(lines, endings, strict=True))
            rows += chunk.n_rows
    return rows


def _write_parquet(tmp: Path, chunks: Iterator[Chunk], tr: _Transformer) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = 0
    writer = None
    try:
        for chunk in chunks:
            arrays = []
            names = []
            for name in chunk.columns:
                if tr.dropped(name):
                    continue
                names.append(name)
                if tr.transformed(name):
                    original = chunk.raw.column(name) if chunk.raw is not None else None
                    values = tr.column(name, chunk.data[name])
                    nulls = original.is_null().to_pylist() if original is not None else [False] * len(values)
                    arrays.append(
                        pa.array([None if n else v for v, n in zip(values, nulls, strict=True)], pa.string())
                    )
                elif chunk.raw is not None:
                    arrays.append(chunk.raw.column(name))
                else:
                    arrays.append(pa.array([], pa.string()))
            batch = pa.RecordBatch.from_arrays(arrays, names=names)
            if writer is None:
                writer = pq.ParquetWriter(tmp, batch.schema)
            writer.write_batch(batch)
            rows += chunk.n_rows
    finally:
        if writer is not None:
            writer.close()
    return rows


_WRITERS = {"csv": _write_csv, "jsonl": _write_jsonl, "text": _write_text, "parquet": _write_parquet}


def protect_file(
    *,
    path: str | Path,
    out: str | Path,
    keys: ScopeKeys | None,
    policy: Policy | None = None,
    fmt: str | None = None,
    report: ScanReport | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    use_presidio: bool = True,
) -> ProtectResult:
    """Scan ``path`` (unless ``report`` is given) and write the protected copy to ``out`` atomically."""
    src = Path(path)
    dst = Path(out)
    kind = detect_format(src, fmt)
    refuse_overwrite(src, dst)
    pol = policy or Policy()
    rep = report or scan_file(
        path=src,
        fmt=kind,
        policy=pol,
        chunk_rows=chunk_rows,
        max_line_bytes=max_line_bytes,
        use_presidio=use_presidio,
    )
    plan = make_plan(rep, pol)
    tr = _Transformer(plan, keys=keys, policy=pol, fmt=kind, use_presidio=use_presidio)
    chunks = iter_chunks(src, fmt=kind, chunk_rows=chunk_rows, max_line_bytes=max_line_bytes)
    with atomic_output(dst) as tmp:
        rows = _WRITERS[kind](tmp, chunks, tr)
        if report is None and sha256_file(src) != rep.digest:
            # The plan was made from other bytes than those just protected: write nothing.
            raise InvalidInput(f"{src.name} changed while it was being protected; nothing was written")
    return ProtectResult(
        input=str(src.resolve()),
        output=str(dst.resolve()),
        format=kind,
        input_digest=rep.digest,
        output_digest=sha256_file(dst),
        rows=rows,
        token_scope=keys.scope if keys is not None else pol.token_scope,
        plan=plan,
        report=rep,
        undetected=dict(tr.undetected),
    )


def reveal_text(text: str, *, keys: ScopeKeys) -> tuple[str, int]:
    """Replace every ``tok_…`` token in ``text`` by its value; returns the text and the count revealed."""
    count = 0

    def sub(m: Any) -> str:
        nonlocal count
        count += 1
        try:
            return keys.reveal(m.group())
        except CryptoError as exc:  # name the line, never the token
            line = text.count("\n", 0, m.start()) + 1
            raise CryptoError(
                f"line {line}: a token does not reveal under this scope (tampered, or protected under "
                "another scope)"
            ) from exc

    return TOKEN_RE.sub(sub, text), count


def reveal_value(value: str, *, keys: ScopeKeys, fpe: bool = False) -> str:
    """One token (or, with ``fpe``, one FF1-encrypted value) back to its original."""
    return keys.fpe_reveal(value) if fpe else keys.reveal(value)


__all__ = [
    "ColumnPlan",
    "ProtectResult",
    "make_plan",
    "protect_file",
    "reveal_text",
    "reveal_value",
]
