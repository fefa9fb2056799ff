"""Privacy-preserving ML: DP-SGD with a privacy ledger, DP aggregate queries, the empirical DP audit,
federated learning (``privacy.federated``) and homomorphic-encryption inference (``privacy.he``).

Public entry points (heavy dependencies — torch, Opacus, OpenDP — are imported only when used):

* :func:`make_private` — wrap a module / optimizer / data loader for DP-SGD (Opacus), ε under RDP and PRV;
* :func:`train_recipe` — the built-in MLP recipe, privately or not, spending the ledger;
* :class:`PrivacyLedger` — per-dataset (ε, δ) budgets and every spend, in the catalog database;
* :func:`dp_query` — DP count / sum / mean / histogram / quantile (OpenDP), spending the same ledger;
* :func:`audit_dp_sgd` — the one-run empirical privacy audit (Steinke, Nasr, Jagielski 2023).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bastion.privacy.audit import AuditResult, audit_dp_sgd, epsilon_lower_bound
    from bastion.privacy.dp import PrivacySpent, PrivateTraining, epsilon_for, make_private, noise_for_epsilon
    from bastion.privacy.ledger import BudgetStatus, PrivacyLedger, Reservation
    from bastion.privacy.queries import QUERY_KINDS, QueryResult, dp_query
    from bastion.privacy.training import DPSettings, TrainingReport, ledger_key, train_recipe

_EXPORTS: dict[str, str] = {
    "AuditResult": "bastion.privacy.audit",
    "audit_dp_sgd": "bastion.privacy.audit",
    "epsilon_lower_bound": "bastion.privacy.audit",
    "PrivacySpent": "bastion.privacy.dp",
    "PrivateTraining": "bastion.privacy.dp",
    "epsilon_for": "bastion.privacy.dp",
    "make_private": "bastion.privacy.dp",
    "noise_for_epsilon": "bastion.privacy.dp",
    "BudgetStatus": "bastion.privacy.ledger",
    "PrivacyLedger": "bastion.privacy.ledger",
    "Reservation": "bastion.privacy.ledger",
    "QUERY_KINDS": "bastion.privacy.queries",
    "QueryResult": "bastion.privacy.queries",
    "dp_query": "bastion.privacy.queries",
    "DPSettings": "bastion.privacy.training",
    "TrainingReport": "bastion.privacy.training",
    "ledger_key": "bastion.privacy.training",
    "train_recipe": "bastion.privacy.training",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bastion.privacy' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "QUERY_KINDS",
    "AuditResult",
    "BudgetStatus",
    "DPSettings",
    "PrivacyLedger",
    "PrivacySpent",
    "PrivateTraining",
    "QueryResult",
    "Reservation",
    "TrainingReport",
    "audit_dp_sgd",
    "dp_query",
    "epsilon_for",
    "epsilon_lower_bound",
    "ledger_key",
    "make_private",
    "noise_for_epsilon",
    "train_recipe",
]
