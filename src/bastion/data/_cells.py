"""Structured text inside one cell: JSON, ``key=value`` lists and delimited (CSV-in-a-cell) values.

Each is parsed and protected by key context: a value under a key whose name says what it holds
(``name``, ``email``, ``dob``, ``passport``, ``password`` …, the same hints as column names) is replaced
whole; so is a bare digit run with a valid check digit (BSN, PESEL, CPF …) under an id-like key
(``doc``, ``ids``, ``ref``); every other value gets span detection. Delimited fields
(``Jane Doe|1982-03-03|AB123456C``) are each checked whole as a name, then by span detection. A cell that
does not parse is left to the caller's span replacement.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from bastion.data import entities as E
from bastion.data._national import bare_national_id, id_key

SpanFn = Callable[[str, str], str]
_KV = re.compile(r"(?P<key>[A-Za-z_][\w .-]{0,30}?)[ ]*(?P<sep>[=:])[ ]*(?P<value>[^;|&\n,\x00]*)")
_SENSITIVE = E.PII_ENTITIES | E.SECRET_ENTITIES
_CJK_NAME = re.compile(r"[\u3400-\u9fff\uac00-\ud7af]{2,4}")  # 王秀英, 박서연: no spaces between the parts


def _key_entity(key: str) -> str | None:
    from bastion.data.detectors import column_hints

    for entity, _shape in column_hints(key):
        if entity in _SENSITIVE:
            return entity
    return None


class CellProtector:
    """Protects the structured values of a cell; counts what it replaced."""

    def __init__(self, span_fn: SpanFn, detectors: Sequence[Any], *, shaped_names: bool = False) -> None:
        self.span_fn = span_fn
        self.detectors = detectors
        # In a column classified pii: a value of two or more capitalised name-shaped words with nothing else
        # detected is taken as a name even when no word is in the lexicon (fail closed; issue 21 F5).
        self.shaped_names = shaped_names

    def _text(self, value: str) -> tuple[str, int]:
        from bastion.data._names import name_like_value
        from bastion.data.detectors import detect_text
        from bastion.data.transforms import replace_spans

        spans = [(s.start, s.end, s.entity) for s in detect_text(value, detectors=self.detectors)]
        if spans:
            return replace_spans(value, spans, self.span_fn), len(spans)
        shaped, known = name_like_value(value)
        v = value.strip()
        if shaped and (
            (known and " " in v) or (self.shaped_names and (" " in v or _CJK_NAME.fullmatch(v) is not None))
        ):
            return self.span_fn(value, E.PERSON), 1
        return value, 0

    def _walk(self, obj: Any, entity: str | None, idkey: bool = False) -> tuple[Any, int]:
        if isinstance(obj, dict):
            out: dict[str, Any] = {}
            total = 0
            for k, v in obj.items():
                new, n = self._walk(v, _key_entity(str(k)) or entity, id_key(str(k)))
                out[k] = new
                total += n
            return out, total
        if isinstance(obj, list):
            items = [self._walk(v, entity, idkey) for v in obj]
            return [i for i, _ in items], sum(n for _, n in items)
        if obj is None or isinstance(obj, bool):
            return obj, 0
        if entity is not None:
            return self.span_fn(str(obj), entity), 1
        if idkey and bare_national_id(str(obj)):
            return self.span_fn(str(obj), E.NATIONAL_ID), 1  # a valid check digit under an id-like key
        if isinstance(obj, str):
            return self._text(obj)
        return obj, 0

    def protect(self, value: str) -> tuple[str, int] | None:
        """The protected cell and the number of values replaced; ``None`` when the cell is not structured."""
        head = value.lstrip()[:1]
        if head in ("{", "["):
            try:
                obj = json.loads(value)
            except ValueError:
                obj = None
            if isinstance(obj, (dict, list)):
                new, n = self._walk(obj, None)
                return json.dumps(new, ensure_ascii=False), n
        pairs = list(_KV.finditer(value))
        if len(pairs) >= 2 and sum(len(p.group()) for p in pairs) >= 0.6 * len(value.strip()):
            out, pos, total = [], 0, 0
            for p in pairs:
                entity = _key_entity(p.group("key").strip())
                raw = p.group("value")
                if not raw.strip():
                    continue
                out.append(value[pos : p.start("value")])
                if entity is None and id_key(p.group("key").strip()) and bare_national_id(raw):
                    entity = E.NATIONAL_ID
                if entity is not None:
                    out.append(self.span_fn(raw, entity))
                    total += 1
                else:
                    new, n = self._text(raw)
                    out.append(new)
                    total += n
                pos = p.end("value")
            out.append(value[pos:])
            return "".join(out), total
        for delim in ("|", ";", "\t"):
            if value.count(delim) >= 2:
                fields = value.split(delim)
                results = [self._text(f) for f in fields]
                return delim.join(r[0] for r in results), sum(r[1] for r in results)
        return None


def looks_structured(value: str) -> bool:
    """Cheap test: the cell holds JSON, a key=value list or delimited fields."""
    head = value.lstrip()[:1]
    if head in ("{", "["):
        return True
    return value.count("=") >= 2 or value.count("|") >= 2 or value.count(";") >= 2


__all__ = ["CellProtector", "looks_structured"]
