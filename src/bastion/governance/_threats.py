"""The threat catalogue behind :mod:`bastion.governance.threat`: the measured evidence, and each threat's
ATLAS / OWASP mapping, likelihood, impact, control and status function (the system description it is
applied to is :mod:`bastion.governance._system`, re-exported here)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bastion.governance._system import (
    DATA_CLASSES,
    EXPOSURES,
    OWASP_LLM_2025,
    OWASP_ML_2023,
    SYSTEM_KEYS,
    TRAINING_KEYS,
    System,
    parse_system,
)
from bastion.governance.inventory import SCAN_CLEAN, SIGNATURE_VERIFIED, InventoryEntry

STATUSES = ("measured", "weak", "untested", "not-covered")


@dataclass(frozen=True)
class Evidence:
    """What the project measured about the system's assets (latest version of each) and its gateway."""

    entries: tuple[InventoryEntry, ...]
    serve: Mapping[str, Any] = field(default_factory=dict)

    def serve_on(self, key: str) -> bool:
        value = self.serve.get(key)
        if value is None or value is False:
            return False
        return not (isinstance(value, Mapping) and value.get("enabled") is False)

    def values(self, attr: str) -> list[Any]:
        return [getattr(e, attr) for e in self.entries if getattr(e, attr) is not None]


Status = tuple[str, str]  # (status, detail)


def _fmt(values: Sequence[float]) -> str:
    return ", ".join(f"{v:.3g}" for v in values)


def _evasion(ev: Evidence) -> Status:
    ra = ev.values("robust_accuracy")
    if not ra:
        return "untested", "no adversarial audit yet (bastion audit)"
    guard = "input guard on" if ev.serve_on("input_guard") else "no input guard"
    return ("weak" if min(ra) < 0.3 else "measured"), f"last audit robust accuracy {_fmt(ra)}; {guard}"


def _membership(ev: Evidence) -> Status:
    tpr, eps = ev.values("mia_tpr_at_0_1_fpr"), ev.values("epsilon")
    parts = [f"ε={_fmt(eps)}" if eps else "no DP training"]
    parts.append(f"last audit MIA TPR@0.1%FPR {_fmt(tpr)}" if tpr else "no membership audit yet")
    if not tpr and not eps:
        return "untested", "; ".join(parts)
    return ("weak" if (tpr and max(tpr) > 0.05) or not eps else "measured"), "; ".join(parts)


def _inversion(ev: Evidence) -> Status:
    eps = ev.values("epsilon")
    return ("measured", f"DP training ε={_fmt(eps)}") if eps else ("untested", "no DP training recorded")


def _extraction(ev: Evidence) -> Status:
    fid, wm = ev.values("extraction_fidelity"), ev.values("watermark")
    monitor = "extraction monitor on" if ev.serve_on("monitor") else "extraction monitor off"
    parts = [monitor, f"last audit fidelity {_fmt(fid)}" if fid else "no extraction audit yet"]
    parts.append(
        f"watermark committed on {len(wm)}/{len(ev.entries)} asset(s)" if ev.entries else "no assets"
    )
    if not fid:
        return "untested", "; ".join(parts)
    return ("measured" if ev.serve_on("monitor") and wm else "weak"), "; ".join(parts)


def _poisoning(ev: Evidence) -> Status:
    roots = [e for e in ev.entries if e.lineage_roots]
    if not ev.entries:
        return "untested", "no registered asset"
    detail = f"training-data digests recorded for {len(roots)}/{len(ev.entries)} asset(s)"
    return ("measured" if len(roots) == len(ev.entries) else "weak"), detail


def _supply_chain(ev: Evidence) -> Status:
    if not ev.entries:
        return "untested", "no registered asset"
    signed = sum(1 for e in ev.entries if e.signature == SIGNATURE_VERIFIED)
    clean = sum(1 for e in ev.entries if e.scan == SCAN_CLEAN)
    n = len(ev.entries)
    status = "measured" if signed == clean == n else "weak"
    return status, f"signature verified {signed}/{n}, scanned clean at push {clean}/{n}"


def _serve_flag(key: str, on: str, off: str) -> Callable[[Evidence], Status]:
    def status(ev: Evidence) -> Status:
        return ("measured", on) if ev.serve_on(key) else ("untested", off)

    return status


def _not_covered(detail: str) -> Callable[[Evidence], Status]:
    return lambda _ev: ("not-covered", detail)


@dataclass(frozen=True)
class _Template:
    id: str
    title: str
    atlas: tuple[str, ...]
    owasp_ml: tuple[str, ...]
    owasp_llm: tuple[str, ...]
    applies: Callable[[System], bool]
    likelihood: Callable[[System], str]
    impact: Callable[[System], str]
    control: str
    status: Callable[[Evidence], Status]


def _public(s: System) -> str:
    return "high" if "public_api" in s.exposure or "edge" in s.exposure else "low"


def _data_impact(s: System) -> str:
    return "high" if s.sensitive else "medium"


CATALOGUE: tuple[_Template, ...] = (
    _Template(
        "TM-01",
        "Evasion with adversarial inputs",
        ("AML.T0015", "AML.T0043"),
        ("ML01:2023",),
        (),
        lambda s: True,
        _public,
        lambda s: "high",
        "adversarial audit (evasion) + gateway input guard",
        _evasion,
    ),
    _Template(
        "TM-02",
        "Membership inference on training data",
        ("AML.T0024.000",),
        ("ML04:2023",),
        ("LLM02:2025",),
        lambda s: True,
        _public,
        _data_impact,
        "DP training (privacy ledger) + membership audit",
        _membership,
    ),
    _Template(
        "TM-03",
        "Model inversion / training-data reconstruction",
        ("AML.T0024.001",),
        ("ML03:2023",),
        ("LLM02:2025",),
        lambda s: s.sensitive,
        _public,
        lambda s: "high",
        "DP training",
        _inversion,
    ),
    _Template(
        "TM-04",
        "Model extraction through the inference API",
        ("AML.T0024.002", "AML.T0048.004"),
        ("ML05:2023",),
        (),
        lambda s: "public_api" in s.exposure or "edge" in s.exposure,
        lambda s: "high",
        lambda s: "high",
        "gateway extraction monitor + watermark",
        _extraction,
    ),
    _Template(
        "TM-05",
        "Theft of the model file from an edge device",
        ("AML.T0044", "AML.T0048.004"),
        ("ML05:2023",),
        (),
        lambda s: "edge" in s.exposure,
        lambda s: "high",
        lambda s: "high",
        "encrypted registry + attested key release",
        _serve_flag("key_release", "key release configured", "no key release configured"),
    ),
    _Template(
        "TM-06",
        "Training-data poisoning",
        ("AML.T0020", "AML.T0010.002"),
        ("ML02:2023",),
        ("LLM04:2025",),
        lambda s: True,
        lambda s: "high" if s.third_party_data or s.federated else "medium",
        lambda s: "high",
        "lineage digests + poisoning audit",
        _poisoning,
    ),
    _Template(
        "TM-07",
        "Poisoned model updates from federated clients",
        ("AML.T0018.000", "AML.T0020"),
        ("ML10:2023",),
        ("LLM04:2025",),
        lambda s: s.federated,
        lambda s: "high",
        lambda s: "high",
        "federated DP + secure aggregation",
        _not_covered("robust aggregation is not measured by bastion yet"),
    ),
    _Template(
        "TM-08",
        "Malicious or tampered model artifact (supply chain)",
        ("AML.T0010.003", "AML.T0011.000", "AML.T0018.002"),
        ("ML06:2023", "ML10:2023"),
        ("LLM03:2025",),
        lambda s: True,
        lambda s: "high" if s.pretrained else "medium",
        lambda s: "high",
        "artifact scanner + signed registry",
        _supply_chain,
    ),
    _Template(
        "TM-09",
        "Backdoor via a third-party pretrained model",
        ("AML.T0010.003", "AML.T0043.004"),
        ("ML07:2023",),
        ("LLM03:2025",),
        lambda s: s.pretrained or s.third_party_data,
        lambda s: "medium",
        lambda s: "high",
        "poisoning audit + scanner",
        _poisoning,
    ),
    _Template(
        "TM-10",
        "Output tampering between model and consumer",
        ("AML.T0031",),
        ("ML09:2023",),
        (),
        lambda s: True,
        lambda s: "low",
        lambda s: "medium",
        "signed responses / TLS at the gateway",
        _serve_flag("output_policy", "output policy on", "no output policy configured"),
    ),
    _Template(
        "TM-11",
        "Prompt injection and jailbreaks",
        ("AML.T0051", "AML.T0054"),
        (),
        ("LLM01:2025",),
        lambda s: s.generative,
        lambda s: "high",
        lambda s: "high",
        "guard input detector",
        _serve_flag("input_guard", "input guard on", "no input guard configured"),
    ),
    _Template(
        "TM-12",
        "System prompt leakage",
        ("AML.T0056",),
        (),
        ("LLM07:2025",),
        lambda s: s.generative,
        lambda s: "medium",
        lambda s: "medium",
        "guard output policy",
        _serve_flag("output_policy", "output policy on", "no output policy configured"),
    ),
    _Template(
        "TM-13",
        "Sensitive data leakage in generated output",
        ("AML.T0057",),
        (),
        ("LLM02:2025",),
        lambda s: s.generative and s.sensitive,
        lambda s: "high",
        lambda s: "high",
        "guard output policy (PII redaction)",
        _serve_flag("output_policy", "output policy on", "no output policy configured"),
    ),
    _Template(
        "TM-14",
        "Improper handling of generated output",
        ("AML.T0077",),
        (),
        ("LLM05:2025",),
        lambda s: s.generative,
        lambda s: "medium",
        lambda s: "high",
        "guard output policy",
        _serve_flag("output_policy", "output policy on", "no output policy configured"),
    ),
    _Template(
        "TM-15",
        "Excessive agency through tool invocation",
        ("AML.T0053", "AML.T0101"),
        (),
        ("LLM06:2025",),
        lambda s: s.agents,
        lambda s: "high",
        lambda s: "high",
        "least-privilege tool tokens",
        _not_covered("agent tool permissions are not measured by bastion"),
    ),
    _Template(
        "TM-16",
        "Retrieval (RAG) poisoning",
        ("AML.T0070", "AML.T0071"),
        (),
        ("LLM08:2025",),
        lambda s: s.rag,
        lambda s: "medium",
        lambda s: "high",
        "data lineage of the index",
        _not_covered("retrieval indexes are not inventoried by bastion yet"),
    ),
    _Template(
        "TM-17",
        "Misinformation / hallucinated entities",
        ("AML.T0060",),
        (),
        ("LLM09:2025",),
        lambda s: s.generative,
        lambda s: "medium",
        lambda s: "medium",
        "human review",
        _not_covered("no bastion control"),
    ),
    _Template(
        "TM-18",
        "Denial of service and cost harvesting",
        ("AML.T0029", "AML.T0034"),
        ("ML08:2023",),
        ("LLM10:2025",),
        lambda s: "public_api" in s.exposure,
        lambda s: "high",
        lambda s: "medium",
        "gateway rate limits",
        _serve_flag("rate_limit", "rate limits configured", "no rate limit configured"),
    ),
)


__all__ = [
    "CATALOGUE",
    "DATA_CLASSES",
    "EXPOSURES",
    "OWASP_LLM_2025",
    "OWASP_ML_2023",
    "STATUSES",
    "SYSTEM_KEYS",
    "TRAINING_KEYS",
    "Evidence",
    "Status",
    "System",
    "parse_system",
]
