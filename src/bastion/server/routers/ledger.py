"""The privacy ledger on the server: ``GET /v1/privacy/budgets``, ``GET|POST /v1/privacy/budget``.

Exactly :func:`bastion.privacy.ledger.ledger_for_vault` as the caller: reading needs ``registry:read``,
setting a budget ``access:manage`` (admins), every change is audit-logged, and the rows are checked against
their seals on every read (a database edit is an IntegrityError, exit 1 on the client, never budget).
Datasets are addressed by their ledger key (``sha256:…``): the client resolves a built-in name or a data
file to its digest on its own machine, so the data never has to be uploaded to name its budget.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from bastion.server.deps import CallerVault

router = APIRouter()


class BudgetBody(BaseModel):
    dataset: str = Field(min_length=1, max_length=255)
    epsilon: float
    delta: float = 1e-4
    label: str | None = Field(None, max_length=255)


def _ledger(vault: Any) -> Any:
    from bastion.privacy.ledger import ledger_for_vault

    return ledger_for_vault(vault)


@router.get("/privacy/budgets")
def budgets(vault: CallerVault) -> list[dict[str, Any]]:
    ledger = _ledger(vault)
    return [ledger.status(name).to_dict() for name in ledger.datasets()]


@router.get("/privacy/budget")
def budget(vault: CallerVault, dataset: str) -> dict[str, Any]:
    status: dict[str, Any] = _ledger(vault).status(dataset).to_dict()
    return status


@router.post("/privacy/budget")
def set_budget(vault: CallerVault, body: BudgetBody) -> dict[str, Any]:
    from bastion.errors import InvalidInput

    if not (math.isfinite(body.epsilon) and math.isfinite(body.delta)):
        raise InvalidInput("epsilon and delta must be finite numbers")
    status: dict[str, Any] = (
        _ledger(vault)
        .set_budget(body.dataset, epsilon=body.epsilon, delta=body.delta, label=body.label)
        .to_dict()
    )
    return status


__all__ = ["router"]
