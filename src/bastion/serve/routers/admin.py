"""The admin router: the extraction monitor's clients, the theft defence's flags and evidence, the API
watermark's marks. Admins and auditors read; only admins reset clients (the monitor's flag, and the theft
defence's flag and suspicion, never its evidence) or export consumers' queries, and every reset and export
is an audit-log entry.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from bastion.errors import InvalidInput, NotFound
from bastion.serve.deps import AdminReader, AdminWriter, GatewayDep
from bastion.serve.replies import ERROR_RESPONSES, json_response

router = APIRouter()


@router.get("/admin/monitor", tags=["admin"], responses=ERROR_RESPONSES)
async def admin_monitor(gw: GatewayDep, _: AdminReader) -> dict[str, Any]:
    clients = await run_in_threadpool(gw.monitor.clients) if gw.monitor else []
    return {
        "enabled": gw.monitor is not None,
        "action": gw.config.monitor.action,
        "flagged": [c for c in clients if c["flagged"]],
    }


@router.get("/admin/theft", tags=["admin"], responses=ERROR_RESPONSES)
async def admin_theft(gw: GatewayDep, _: AdminReader) -> dict[str, Any]:
    """Consumers flagged by the theft defence, with the evidence behind each flag."""
    return {"enabled": gw.theft is not None, "flags": gw.theft.flags() if gw.theft else []}


@router.get("/admin/theft/evidence", tags=["admin"], responses=ERROR_RESPONSES)
async def admin_theft_evidence(gw: GatewayDep, identity: AdminWriter) -> Response:
    """Each identity's recorded queries and the clean model's answers on them (MAC'd) for
    ``bastion watermark verify --consumers``. Holds consumers' inputs: admins only, audit-logged."""
    if gw.theft is None:
        raise NotFound("the theft defence is not enabled on this gateway")
    evidence = await run_in_threadpool(gw.theft.evidence, gw.model.adapter.predict_proba)
    if gw.writer is not None:
        gw.writer.event(
            action="serve:theft-evidence",
            outcome="ok",
            details={"by": identity.name, "consumers": sorted(evidence.consumers)},
        )
    return json_response(evidence.to_doc())


@router.get("/admin/theft/label-evidence", tags=["admin"], responses=ERROR_RESPONSES)
async def admin_theft_label_evidence(gw: GatewayDep, identity: AdminWriter) -> Response:
    """Each identity's label-marked and control rows (MAC'd ``LabelEvidence``) for ``bastion watermark
    verify-labels``: the proof against a copy trained on labels alone. Admins only, audit-logged."""
    if gw.theft is None or gw.theft.labels is None:
        raise NotFound("the theft defence's label marks are not enabled on this gateway")
    evidence = await run_in_threadpool(gw.theft.label_evidence)
    if gw.writer is not None:
        gw.writer.event(
            action="serve:theft-label-evidence",
            outcome="ok",
            details={"by": identity.name, "consumers": sorted(evidence.consumers)},
        )
    return json_response(evidence.to_doc())


@router.get("/admin/clients", tags=["admin"], responses=ERROR_RESPONSES)
async def admin_clients(gw: GatewayDep, _: AdminReader) -> dict[str, Any]:
    return {"clients": await run_in_threadpool(gw.monitor.clients) if gw.monitor else []}


@router.post("/admin/clients/{client}/reset", tags=["admin"], responses=ERROR_RESPONSES)
async def admin_reset(
    client: str, gw: GatewayDep, identity: AdminWriter, address: str | None = None
) -> dict[str, Any]:
    """Reset a client (an identity id): the extraction monitor's flag, and the theft defence's flag and
    suspicion (its evidence, the recorded probes and label marks, stays). ``?address=<ip>`` also resets the
    theft defence's state of that client address (``addr:<ip>``: every client behind it). Audit-logged."""
    if client.startswith("addr:"):
        raise InvalidInput("name a client address with ?address=<ip>, not as the client")
    if address and gw.theft is None:
        raise NotFound("the theft defence is not enabled on this gateway")
    if gw.monitor is not None:
        await run_in_threadpool(gw.monitor.reset, client)
    if gw.writer is not None:
        gw.writer.event(
            action="serve:monitor-reset", outcome="ok", details={"client": client, "by": identity.name}
        )
    out: dict[str, Any] = {"client": client, "reset": True}
    if gw.theft is not None:
        consumers = [client] + ([f"addr:{address}"] if address else [])
        cleared = {c: await run_in_threadpool(gw.theft.reset, c) for c in consumers}
        flags = {c: None if f is None else f["reason"] for c, f in cleared.items()}
        if gw.writer is not None:
            gw.writer.event(
                action="serve:theft-reset",
                outcome="ok",
                details={"consumers": consumers, "flags": flags, "by": identity.name},
            )
        out["theft"] = flags
    return out


@router.get("/admin/watermark/marks", tags=["admin"], responses=ERROR_RESPONSES)
async def admin_watermark_marks(gw: GatewayDep, identity: AdminReader) -> Response:
    """The API watermark's marked queries (MAC'd ``ApiMarks`` JSON) for ``watermark verify --marks``."""
    if gw.watermark is None:
        raise NotFound("the API watermark is not enabled on this gateway")
    doc = await run_in_threadpool(_marks_document, gw.watermark)
    if gw.writer is not None:
        gw.writer.event(
            action="serve:watermark-export",
            outcome="ok",
            details={"by": identity.name, "marks": len(doc["labels"]), "key_id": doc["key_id"]},
        )
    return json_response(doc)


def _marks_document(watermark: Any) -> dict[str, Any]:
    """``ApiMarks`` in its file format (written and read back: the format stays the watermark package's)."""
    import tempfile
    from pathlib import Path

    marks = watermark.marks()  # NotFound when nothing was marked yet
    with tempfile.TemporaryDirectory(prefix="bastion-marks-") as tmp:
        path = Path(tmp) / "marks.json"
        marks.save(path)
        doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


__all__ = ["router"]
