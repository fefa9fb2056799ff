"""The inventory: every model and dataset version (and the gateway deployment) with its measured evidence.

Read-only over the public APIs of the other pillars: the vault (``list``, ``annotations`` — which verifies
the version's signed record —, ``log_entries`` for how each version was pushed), the audit results
(``audit`` annotations), the privacy ledger (ε spent against the budget), the watermark commitments
(``watermark`` annotations) and the lineage recorded in the training metadata (dataset digests). A model
version a gateway serves with ``[serve.drift]`` shows the drift state that gateway last wrote under the home
(``drift_state``: ``ok``, ``warming-up`` or ``alert``; ``drift_alerts``; ``drift_updated``, its time — a
stopped gateway leaves its last state, so read the time): :func:`bastion.serve.drift.read_state`.

Entries are frozen dataclasses; :func:`inventory` is the library entry point and the evidence every policy
rule in :mod:`bastion.governance.policy` reads, so the inventory and the gate never disagree.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from bastion.errors import BastionError, IntegrityError
from bastion.governance.evidence import LogEvidence, audit_attested, log_evidence, training_roots

SIGNATURE_VERIFIED = "verified"
SIGNATURE_FAILED = "failed"
SCAN_CLEAN = "clean"  # inspected at push, no override
SCAN_OVERRIDDEN = "unsafe-override"  # pushed with allow_unsafe
SCAN_UNKNOWN = "unknown"  # no push record readable


@dataclass(frozen=True)
class InventoryEntry:
    """One model or dataset version, or one deployment, with the evidence bastion holds about it."""

    kind: str
    name: str
    version: int | None
    env: str | None
    owner: str | None  # who pushed it (the sealed created_by), never a tag the pusher chose
    classification: str | None
    created_at: str | None
    signature: str | None
    scan: str | None
    audit_grade: str | None = None
    audit_created: str | None = None
    clean_accuracy: float | None = None
    robust_accuracy: float | None = None
    mia_tpr_at_0_1_fpr: float | None = None
    mia_auc: float | None = None
    extraction_fidelity: float | None = None
    epsilon: float | None = None
    delta: float | None = None
    epsilon_budget: float | None = None
    epsilon_spent: float | None = None
    watermark: str | None = None
    training_dataset: str | None = None
    lineage_roots: tuple[str, ...] = ()
    endpoints: tuple[str, ...] = ()
    last_verified: str | None = None
    error: str | None = None
    drift_state: str | None = None
    drift_alerts: tuple[str, ...] = ()
    drift_updated: str | None = None
    owner_tag: str | None = None  # the pusher-set ``owner`` tag, as written (not evidence)
    metadata: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}" if self.version is not None else self.name

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("metadata")
        d["lineage_roots"] = list(self.lineage_roots)
        d["endpoints"] = list(self.endpoints)
        d["drift_alerts"] = list(self.drift_alerts)
        return d


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(InventoryEntry) if f.name != "metadata")
TABLE_COLUMNS = (
    "kind",
    "name",
    "version",
    "env",
    "owner",
    "classification",
    "signature",
    "scan",
    "audit_grade",
    "robust_accuracy",
    "mia_tpr_at_0_1_fpr",
    "epsilon",
    "watermark",
)


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _audit_figures(note: Mapping[str, Any] | None) -> dict[str, Any]:
    if not note:
        return {}
    fam = note.get("families") or {}

    def metric(family: str, key: str) -> float | None:
        return _float(((fam.get(family) or {}).get("metrics") or {}).get(key))

    extraction = (fam.get("extraction") or {}).get("metrics") or {}
    fidelities = [_float(v) for k, v in extraction.items() if k.endswith("_fidelity")]
    fid = [f for f in fidelities if f is not None]
    return {
        "audit_grade": note.get("grade"),
        "audit_created": note.get("created"),
        "clean_accuracy": metric("evasion", "clean_accuracy"),
        "robust_accuracy": metric("evasion", "robust_accuracy"),
        "mia_tpr_at_0_1_fpr": metric("membership", "tpr_at_0_1_fpr"),
        "mia_auc": metric("membership", "auc"),
        "extraction_fidelity": max(fid) if fid else None,
    }


def _endpoints(settings: Any, name: str, env: str) -> tuple[str, ...]:
    serve = settings.section("serve")
    if env != "prod" or "port" not in serve:
        return ()
    host = serve.get("host", "127.0.0.1")
    return (f"http://{host}:{serve['port']}/v2/models/{name}",)


def _drift(vault: Any, name: str, version: int) -> dict[str, Any]:
    """The drift state a gateway last wrote for this model version (empty when none)."""
    from bastion.serve.drift import read_state

    state = read_state(vault.settings.home, name)
    if not state or str(state.get("version")) != str(version):
        return {}
    alerts = state.get("alerts")
    return {
        "drift_state": str(state.get("state")),
        "drift_alerts": tuple(str(a) for a in alerts) if isinstance(alerts, list) else (),
        "drift_updated": str(state.get("updated_at")) if state.get("updated_at") else None,
    }


def _budgets(vault: Any) -> Callable[[str], tuple[float | None, float | None]]:
    from bastion.privacy.ledger import ledger_for_vault

    cache: dict[str, tuple[float | None, float | None]] = {}
    try:
        ledger = ledger_for_vault(vault)
    except BastionError:
        return lambda _key: (None, None)

    def lookup(key: str) -> tuple[float | None, float | None]:
        if key not in cache:
            try:
                s = ledger.status(key).epsilon_summary()
                cache[key] = (s["epsilon_budget"], s["epsilon_spent"])
            except BastionError:
                cache[key] = (None, None)
        return cache[key]

    return lookup


def entry_for(
    v: Any,
    *,
    vault: Any,
    evidence: LogEvidence,
    roots_by_ref: Mapping[str, tuple[str, ...]],
    budget: Callable[[str], tuple[float | None, float | None]],
    now: str,
) -> InventoryEntry:
    """The inventory entry of one registry version (its record is verified through ``annotations``).

    Only evidence bastion produced counts (:mod:`bastion.governance.evidence`): the scan state from the
    signed push record, an attested audit, a logged watermark commitment, ε from a recorded training
    run and ledger spend, training data from a recorded training run.
    """
    ref = f"{v.name}:{v.version}"
    error = None
    try:
        notes = vault.annotations(ref)
        signature = SIGNATURE_VERIFIED
    except IntegrityError as exc:
        notes, signature, error = (), SIGNATURE_FAILED, str(exc)
    latest: dict[str, Mapping[str, Any]] = {}
    for a in notes:  # annotations come oldest first: keep the newest *authenticated* one per namespace
        if a.namespace == "audit" and not audit_attested(vault, ref, a.data):
            continue
        if a.namespace == "watermark" and a.data.get("commitment") not in evidence.commitments:
            continue
        latest[a.namespace] = a.data
    meta = dict(v.metadata)
    pushes = evidence.pushes
    if pushes is None or ref not in pushes:
        scan = SCAN_UNKNOWN
    else:
        scan = SCAN_OVERRIDDEN if pushes[ref] else SCAN_CLEAN
    ledger_key = meta.get("ledger_dataset")
    eps_budget, eps_spent = budget(ledger_key) if isinstance(ledger_key, str) else (None, None)
    wm = latest.get("watermark")
    owner_tag = v.tags.get("owner")
    return InventoryEntry(
        kind=v.kind,
        name=str(v.name),
        version=int(v.version),
        env=v.env,
        owner=v.created_by,
        owner_tag=str(owner_tag) if owner_tag else None,
        classification=v.classification,
        created_at=v.created_at,
        signature=signature,
        scan=scan,
        epsilon=evidence.epsilon(meta.get("spend_id")),
        delta=_float(meta.get("delta")) if evidence.epsilon(meta.get("spend_id")) is not None else None,
        epsilon_budget=eps_budget,
        epsilon_spent=eps_spent,
        watermark=str(wm.get("commitment")) if wm and wm.get("commitment") else None,
        training_dataset=str(meta["dataset"]) if meta.get("dataset") else None,
        lineage_roots=roots_by_ref.get(ref, ()),
        endpoints=_endpoints(vault.settings, str(v.name), v.env),
        last_verified=now if signature == SIGNATURE_VERIFIED else None,
        error=error,
        metadata=meta,
        **_audit_figures(latest.get("audit")),
        **(_drift(vault, str(v.name), int(v.version)) if v.kind == "model" else {}),
    )


def _tampered(ref: str, exc: IntegrityError) -> InventoryEntry:
    from bastion.vault import ArtifactRef

    parsed = ArtifactRef.parse(ref)
    return InventoryEntry(
        kind="model",
        name=str(parsed.name),
        version=parsed.version,
        env=parsed.env,
        owner=None,
        classification=None,
        created_at=None,
        signature=SIGNATURE_FAILED,
        scan=SCAN_UNKNOWN,
        error=str(exc),
    )


def inventory(
    *,
    vault: Any,
    kind: str | None = None,
    refs: Sequence[str] | None = None,
    now: dt.datetime | None = None,
) -> tuple[InventoryEntry, ...]:
    """Every version the caller may read (or only ``refs``), each verified, plus the gateway deployment."""
    stamp = (now or dt.datetime.now(dt.UTC)).isoformat()
    failed: list[InventoryEntry] = []
    if refs is None:
        versions = vault.list(kind)
    else:
        versions = []
        for r in refs:
            try:
                versions.append(vault.show(r))
            except IntegrityError as exc:  # a tampered record is itself inventory evidence
                failed.append(_tampered(r, exc))
    evidence = log_evidence(vault)
    roots = training_roots(vault)
    budget = _budgets(vault)
    out = failed + [
        entry_for(v, vault=vault, evidence=evidence, roots_by_ref=roots, budget=budget, now=stamp)
        for v in versions
    ]
    serve = vault.settings.section("serve")
    if refs is None and kind in (None, "deployment") and "port" in serve:
        served = tuple(e for x in out for e in x.endpoints)
        out.append(
            InventoryEntry(
                kind="deployment",
                name="gateway",
                version=None,
                env="prod",
                owner=None,
                classification=None,
                created_at=None,
                signature=None,
                scan=None,
                endpoints=served or (f"http://{serve.get('host', '127.0.0.1')}:{serve['port']}",),
            )
        )
    return tuple(out)


def to_csv(entries: Sequence[InventoryEntry]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    for e in entries:
        row = e.to_dict()
        row["lineage_roots"] = " ".join(e.lineage_roots)
        row["endpoints"] = " ".join(e.endpoints)
        row["drift_alerts"] = "; ".join(e.drift_alerts)
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buf.getvalue()


def to_table(entries: Sequence[InventoryEntry]) -> str:
    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.3g}"
        return str(v)[:24]

    rows = [list(TABLE_COLUMNS)] + [[cell(getattr(e, c)) for c in TABLE_COLUMNS] for e in entries]
    widths = [max(len(r[i]) for r in rows) for i in range(len(TABLE_COLUMNS))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


__all__ = [
    "COLUMNS",
    "SCAN_CLEAN",
    "SCAN_OVERRIDDEN",
    "SCAN_UNKNOWN",
    "SIGNATURE_FAILED",
    "SIGNATURE_VERIFIED",
    "InventoryEntry",
    "entry_for",
    "inventory",
    "to_csv",
    "to_table",
]
