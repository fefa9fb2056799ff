"""Sigma rules over the event store: detections through pySigma's SQLite backend, correlations in our SQL.

Each rule file is Sigma YAML with ``logsource: {product: bastion}`` over the event columns (``kind``,
``identity``, ``client``, ``model``, ``action``, ``outcome``, ``status``, ``hour``, ``weekday``, ``source``);
ATLAS technique ids are tags (``atlas.aml.t0024.002``), checked against the packaged ATLAS data. A plain
rule's WHERE clause comes from ``pySigma-backend-sqlite``. Sigma correlation rules are parsed by pySigma, but
the backend's correlation output ignores ``timespan`` (it groups over all time), so we generate the windowed
aggregation ourselves from the parsed correlation:

* ``event_count`` — exact sliding window: ``SUM(count) OVER (PARTITION BY group ORDER BY ts RANGE BETWEEN
  span PRECEDING AND CURRENT ROW)`` (a row stands for ``count`` occurrences: a refused-token flood is one
  counted row per client and batch);
* ``value_count`` — two tumbling grids offset by half a span (``COUNT(DISTINCT …)`` cannot slide): any
  values seen within span/2 are always counted together, and never values further apart than one span;
* ``temporal`` / ``temporal_ordered`` — a join of the referenced rules' matches on the group within span
  (ordered: in the order the rules are listed; at most two rules).

Rules referenced by a correlation only feed it (they give no finding of their own). Conditions with
parentheses are refused by pySigma 1.2 with pyparsing 3.3: write ``1 of sel_*`` or value lists instead.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from bastion.errors import DependencyMissing, InvalidInput
from bastion.events.collect import REMOTE_SOURCE
from bastion.events.store import EventStore, events_table
from bastion.hunt.report import Finding

GROUP_FIELDS = frozenset({"identity", "client", "model", "action", "kind", "source"})
VALUE_FIELDS = GROUP_FIELDS | {"outcome", "status"}
_LEVELS = {"informational", "low", "medium", "high", "critical"}
MAX_EVENT_IDS = 200
MAX_COUNT_IDS = 2000  # rows a count finding may name to carry its whole threshold
# audit entries a count finding may name (one event each) when its count is spread over more rows than
# MAX_COUNT_IDS: the evidence check verifies every event of a named event's entry, so the matching events
# of the named entries are its verifiable count (a day of one-request gateway batches: 20,000 entries)
MAX_ENTRY_IDS = 25_000
_LOCAL_ONLY = f" AND source <> '{REMOTE_SOURCE}'"  # the home's own events: not a remote gateway's records
UNVERIFIABLE = " (count rests on more events than it names: not verifiable from them)"


@dataclass(frozen=True)
class CompiledRule:
    """One rule ready to run: ``kind`` is ``match``, ``event_count``, ``value_count`` or ``temporal``."""

    rule_id: str
    title: str
    level: str
    techniques: tuple[str, ...]
    kind: str
    conditions: tuple[str, ...]  # SQL WHERE clauses (one per referenced rule; one for a plain rule)
    group_by: tuple[str, ...] = ("identity", "client")
    span_s: float = 0.0
    threshold: int = 1
    strict: bool = False  # ">" instead of ">="
    field: str | None = None
    ordered: bool = False


def _sigma() -> Any:
    try:
        import sigma.backends.sqlite as backend
        import sigma.collection as collection
        import sigma.correlations as correlations
        import sigma.rule as rule
    except ImportError as exc:
        raise DependencyMissing("pySigma is not installed", hint="pip install 'bastion-ml[hunt]'") from exc
    return collection, backend, correlations, rule


def _techniques(tags: Sequence[Any], where: str, known: dict[str, str]) -> tuple[str, ...]:
    out = []
    for tag in tags:
        if tag.namespace == "atlas":
            tid = tag.name.upper()
            if tid not in known:
                raise InvalidInput(f"rule {where}: unknown ATLAS technique {tid}")
            out.append(tid)
    return tuple(out)


EVENT_FIELDS = frozenset(c.name for c in events_table.columns) - {"id"}


def _fields(item: Any) -> Iterator[str | None]:
    """Every field name a detection (or nested detection) refers to; None for a keyword (no field)."""
    nested = getattr(item, "detection_items", None)
    if nested is not None:
        for sub in nested:
            yield from _fields(sub)
    else:
        yield getattr(item, "field", None)


def _check_fields(rule: Any) -> None:
    """Only the event store's columns may be named: pySigma's SQLite backend quotes a field name in backticks
    without escaping them, so any other name (``kind`!=''...``) would be SQL of the rule author's choosing."""
    for detection in rule.detection.detections.values():
        for name in _fields(detection):
            if name is None:
                raise InvalidInput(
                    f"rule {rule.title!r}: keyword detections (without a field) are not supported"
                )
            if name not in EVENT_FIELDS:
                known = ", ".join(sorted(EVENT_FIELDS))
                raise InvalidInput(
                    f"rule {rule.title!r}: unknown event field {name[:40]!r} (fields: {known})"
                )


def _where(backend: Any, collection: Any, rule_mod: Any, rule: Any) -> str:
    _check_fields(rule)
    alone = collection.SigmaCollection([rule_mod.SigmaRule.from_dict(rule.to_dict())])
    queries = backend.sqliteBackend().convert(alone)
    if len(queries) != 1 or " WHERE " not in queries[0]:
        raise InvalidInput(f"rule {rule.title!r} did not convert to one SQL query")
    return str(queries[0]).split(" WHERE ", 1)[1]


def load_rules(directory: str | Path | None = None) -> list[CompiledRule]:
    """Parse and compile every ``*.yml`` rule in ``directory`` (default: the packaged rule pack)."""
    from bastion.governance.threat import atlas_techniques

    collection, backend, correlations, rule_mod = _sigma()
    if directory is None:
        root = resources.files("bastion.hunt").joinpath("rules")
        texts = [(p.name, p.read_text(encoding="utf-8")) for p in root.iterdir() if p.name.endswith(".yml")]
    else:
        path = Path(directory)
        if not path.is_dir():
            raise InvalidInput(f"rules directory {path} does not exist")
        texts = [(p.name, p.read_text(encoding="utf-8")) for p in sorted(path.glob("*.yml"))]
    if not texts:
        raise InvalidInput("no Sigma rules (*.yml) found")
    try:
        rules = collection.SigmaCollection.merge(
            [collection.SigmaCollection.from_yaml(text) for _, text in sorted(texts)]
        )
        rules.resolve_rule_references()
    except Exception as exc:  # SigmaError and YAML errors: a bad rule pack is a usage error
        raise InvalidInput(f"invalid Sigma rule pack: {exc}") from exc
    known = dict(atlas_techniques())
    referenced = {
        id(ref.rule)
        for r in rules.rules
        if isinstance(r, correlations.SigmaCorrelationRule)
        for ref in r.rules
    }
    out: list[CompiledRule] = []
    for rule in rules.rules:
        level = str(rule.level.name).lower() if rule.level is not None else "medium"
        level = level if level in _LEVELS else "medium"
        rid = str(rule.id or rule.name or rule.title)
        techniques = _techniques(rule.tags, rule.title, known)
        if isinstance(rule, correlations.SigmaCorrelationRule):
            out.append(_correlation(rule, rid, level, techniques, backend, collection, rule_mod))
        elif id(rule) not in referenced:
            where = _where(backend, collection, rule_mod, rule)
            out.append(CompiledRule(rid, rule.title, level, techniques, "match", (where,)))
    return out


def _correlation(
    rule: Any, rid: str, level: str, techniques: tuple[str, ...], backend: Any, collection: Any, rule_mod: Any
) -> CompiledRule:
    ctype = str(rule.type.name).lower()
    group = tuple(rule.group_by or ())
    if not group or not set(group) <= GROUP_FIELDS:
        raise InvalidInput(f"rule {rule.title!r}: group-by must be among {', '.join(sorted(GROUP_FIELDS))}")
    span = float(rule.timespan.seconds)
    wheres = tuple(_where(backend, collection, rule_mod, ref.rule) for ref in rule.rules)
    cond = rule.condition
    if ctype in ("event_count", "value_count"):
        op = str(cond.op.name).lower()
        if op not in ("gte", "gt") or len(wheres) != 1:
            raise InvalidInput(f"rule {rule.title!r}: only gte/gt over one rule are supported")
        field = cond.fieldref if ctype == "value_count" else None
        if field is not None and field not in VALUE_FIELDS:
            raise InvalidInput(f"rule {rule.title!r}: cannot count values of {field!r}")
        return CompiledRule(
            rid, rule.title, level, techniques, ctype, wheres, group, span, int(cond.count), op == "gt", field
        )
    if ctype in ("temporal", "temporal_ordered") and len(wheres) == 2:
        ordered = ctype == "temporal_ordered"
        return CompiledRule(
            rid, rule.title, level, techniques, "temporal", wheres, group, span, ordered=ordered
        )
    raise InvalidInput(f"rule {rule.title!r}: unsupported correlation {ctype} (with {len(wheres)} rules)")


def _floor(store: EventStore, expr: str) -> str:
    return f"CAST(FLOOR({expr}) AS BIGINT)" if store.dialect == "postgresql" else f"CAST({expr} AS INTEGER)"


def _summary_sql(rule: CompiledRule, store: EventStore, since: str) -> str:
    t = store.table
    g = ", ".join(rule.group_by)
    cmp = ">" if rule.strict else ">="
    if rule.kind == "match":
        return (
            f"SELECT {g}, MIN(ts) AS first_hit, MAX(ts) AS last_hit, SUM(count) AS peak "  # noqa: S608 - built from compiled rules; values are bound
            f"FROM {t} WHERE ({rule.conditions[0]}){since} GROUP BY {g}"
        )
    if rule.kind == "event_count":
        span = repr(float(rule.span_s))
        inner = (
            f"SELECT {g}, ts, SUM(count) OVER (PARTITION BY {g} ORDER BY ts RANGE BETWEEN {span} PRECEDING "  # noqa: S608 - built from compiled rules; values are bound
            f"AND CURRENT ROW) AS n FROM {t} WHERE ({rule.conditions[0]}){since}"
        )
        return (
            f"SELECT {g}, MIN(ts) AS first_hit, MAX(ts) AS last_hit, MAX(n) AS peak FROM ({inner}) w "  # noqa: S608 - built from compiled rules; values are bound
            f"WHERE n {cmp} {int(rule.threshold)} GROUP BY {g}"
        )
    if rule.kind == "value_count":
        grids = []
        for shift in (0.0, rule.span_s / 2):
            bucket = _floor(store, f"(ts + {shift!r}) / {float(rule.span_s)!r}")
            grids.append(
                f"SELECT {g}, {bucket} AS b, COUNT(DISTINCT {rule.field}) AS n, MIN(ts) AS f, MAX(ts) AS l "  # noqa: S608 - built from compiled rules; values are bound
                f"FROM {t} WHERE ({rule.conditions[0]}){since} GROUP BY {g}, {bucket}"
            )
        union = " UNION ALL ".join(grids)
        return (
            f"SELECT {g}, MIN(f) AS first_hit, MAX(l) AS last_hit, MAX(n) AS peak FROM ({union}) w "  # noqa: S608 - built from compiled rules; values are bound
            f"WHERE n {cmp} {int(rule.threshold)} GROUP BY {g}"
        )
    cols = ", ".join(["id", "ts", *rule.group_by])
    on = " AND ".join(f"a.{c} = b.{c}" for c in rule.group_by)
    span = repr(float(rule.span_s))
    within = (
        f"b.ts >= a.ts AND b.ts <= a.ts + {span}"
        if rule.ordered
        else f"b.ts >= a.ts - {span} AND b.ts <= a.ts + {span}"
    )
    ga = ", ".join(f"a.{c} AS {c}" for c in rule.group_by)
    gb = ", ".join(f"a.{c}" for c in rule.group_by)
    return (
        f"SELECT {ga}, MIN(a.ts) AS first_hit, MAX(b.ts) AS last_hit, COUNT(*) AS peak "  # noqa: S608 - built from compiled rules; values are bound
        f"FROM (SELECT {cols} FROM {t} WHERE ({rule.conditions[0]}){since}) a "
        f"JOIN (SELECT {cols} FROM {t} WHERE ({rule.conditions[1]}){since}) b ON {on} AND {within} "
        f"GROUP BY {gb}"
    )


def entry_evidence(store: EventStore, cond: str, params: dict[str, Any]) -> tuple[list[Any], int]:
    """The audit entries of the events matching ``cond``, one row each (the id, time and model of its first
    matching event, ``count`` the summed count of its matching events), largest first, at most
    :data:`MAX_ENTRY_IDS`; and the summed count of those entries' matching events."""
    rows = store.query(
        f"SELECT MIN(id) AS id, MIN(ts) AS ts, MIN(model) AS model, SUM(count) AS count FROM {store.table} "  # noqa: S608 - built from compiled rules; values are bound
        f"WHERE ({cond}) AND audit_index IS NOT NULL GROUP BY audit_index "
        f"ORDER BY SUM(count) DESC, MIN(id) LIMIT {MAX_ENTRY_IDS}",
        params,
    )
    return rows, sum(int(r.count) for r in rows)


def run_rule(
    rule: CompiledRule, store: EventStore, *, since: float | None, names: dict[str, str]
) -> list[Finding]:
    """Run one compiled rule; one finding per group that fired, with the events behind it.

    The rule runs over the home's own events first (not ``source`` ``remote-gateway``): a group that fires
    on them alone is a finding naming local events only (acted on as the playbook says). Only where remote
    gateways' records lie in the window does it run again over every event, and a group that fires only
    with them is a separate finding (key suffixed ``|remote``) that names them, so the responder asks for
    approval: a remote record can add a finding, never turn a local one into a proposal (issue 17
    attack17d A1)."""
    since_sql = " AND ts >= :since" if since is not None else ""
    params: dict[str, Any] = {"since": since} if since is not None else {}
    remote = store.query(  # an index lookup (ix_bastion_events_source): no remote record, one pass
        f"SELECT 1 FROM {store.table} WHERE source = '{REMOTE_SOURCE}'{since_sql} LIMIT 1",  # noqa: S608 - built from constants; values are bound
        params,
    )
    if not remote:
        return _run(rule, store, since_sql, params, names, "")
    found = _run(rule, store, since_sql + _LOCAL_ONLY, params, names, "")
    local = {f.key.rsplit("|t=", 1)[0] for f in found}  # the groups that fired on local events
    combined = _run(rule, store, since_sql, params, names, "|remote")
    return found + [f for f in combined if f.key.rsplit("|t=", 1)[0] not in local]


def _run(
    rule: CompiledRule,
    store: EventStore,
    since_sql: str,
    params: dict[str, Any],
    names: dict[str, str],
    suffix: str,
) -> list[Finding]:
    """:func:`run_rule` over the events ``since_sql`` (a WHERE suffix) admits; ``suffix`` ends each key."""
    rows = store.query(_summary_sql(rule, store, since_sql), params)
    findings = []
    for row in rows:
        group = {c: str(getattr(row, c)) for c in rule.group_by}
        first_hit, last_hit = float(row.first_hit), float(row.last_hit)
        lo = first_hit - rule.span_s
        match = " OR ".join(f"({w})" for w in rule.conditions)
        keys = " AND ".join(f"{c} = :g_{c}" for c in rule.group_by)
        # a count rule names the rows with the largest counts (up to MAX_COUNT_IDS), so the events the
        # evidence check verifies carry the threshold themselves; the others name the first events
        counted = rule.kind == "event_count"
        order, limit = ("count DESC, ts, id", MAX_COUNT_IDS) if counted else ("ts, id", MAX_EVENT_IDS)
        ids_sql = (
            f"SELECT id, ts, model, count FROM {store.table} WHERE ({match}) AND {keys} "  # noqa: S608 - built from compiled rules; values are bound
            f"AND ts >= :lo AND ts <= :hi{since_sql} ORDER BY {order} LIMIT {limit}"
        )
        bound = {**params, **{f"g_{c}": v for c, v in group.items()}, "lo": lo, "hi": last_hit}
        hit = store.query(ids_sql, bound)
        named = sum(int(h.count) for h in hit)
        short = counted and (named <= rule.threshold if rule.strict else named < rule.threshold)
        if short and len(hit) >= MAX_COUNT_IDS:  # spread over more rows: name their entries instead
            cond = f"({match}) AND {keys} AND ts >= :lo AND ts <= :hi{since_sql}"
            entries, in_entries = entry_evidence(store, cond, bound)
            if in_entries > named:
                hit, named = entries, in_entries
                short = named <= rule.threshold if rule.strict else named < rule.threshold
        hit = sorted(hit, key=lambda h: (float(h.ts), int(h.id)))
        first = float(hit[0].ts) if hit else first_hit
        models = {str(h.model) for h in hit} - {"-"}
        model = group.get("model") or (models.pop() if len(models) == 1 else "-")
        # + the first event's second: a later, separate attack by the same group is a new finding
        key = rule.rule_id + "|" + "|".join(f"{c}={v}" for c, v in sorted(group.items())) + f"|t={int(first)}"
        key += suffix
        findings.append(
            Finding(
                rule_id=rule.rule_id,
                title=rule.title + (UNVERIFIABLE if short else ""),
                techniques=rule.techniques,
                technique_names=tuple(names.get(t, "") for t in rule.techniques),
                severity="low" if short else rule.level,
                identity=group.get("identity", "-"),
                client=group.get("client", "-"),
                model=model,
                first_seen=first,
                last_seen=last_hit,
                event_ids=tuple(int(h.id) for h in hit),
                count=int(row.peak),
                key=key,
            )
        )
    return findings


__all__ = ["MAX_ENTRY_IDS", "CompiledRule", "entry_evidence", "load_rules", "run_rule"]
