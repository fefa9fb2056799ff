"""The system a threat model is about: SYSTEM.yaml's vocabulary (exposures, data classes, the OWASP ML and
LLM Top 10 names) and its validated form, :class:`System` (used by :mod:`bastion.governance._threats`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bastion.errors import InvalidInput

OWASP_ML_2023 = {
    "ML01:2023": "Input Manipulation Attack",
    "ML02:2023": "Data Poisoning Attack",
    "ML03:2023": "Model Inversion Attack",
    "ML04:2023": "Membership Inference Attack",
    "ML05:2023": "Model Theft",
    "ML06:2023": "AI Supply Chain Attacks",
    "ML07:2023": "Transfer Learning Attack",
    "ML08:2023": "Model Skewing",
    "ML09:2023": "Output Integrity Attack",
    "ML10:2023": "Model Poisoning",
}
OWASP_LLM_2025 = {
    "LLM01:2025": "Prompt Injection",
    "LLM02:2025": "Sensitive Information Disclosure",
    "LLM03:2025": "Supply Chain",
    "LLM04:2025": "Data and Model Poisoning",
    "LLM05:2025": "Improper Output Handling",
    "LLM06:2025": "Excessive Agency",
    "LLM07:2025": "System Prompt Leakage",
    "LLM08:2025": "Vector and Embedding Weaknesses",
    "LLM09:2025": "Misinformation",
    "LLM10:2025": "Unbounded Consumption",
}
EXPOSURES = ("public_api", "internal_batch", "edge")
DATA_CLASSES = ("public", "internal", "confidential", "pii", "secret")
SYSTEM_KEYS = frozenset(
    {
        "name",
        "owner",
        "assets",
        "data_classes",
        "exposure",
        "training",
        "generative",
        "agents",
        "tools",
        "rag",
    }
)
TRAINING_KEYS = frozenset({"federated", "third_party_data", "pretrained", "dp"})


@dataclass(frozen=True)
class System:
    name: str
    owner: str | None
    assets: tuple[str, ...]
    data_classes: tuple[str, ...]
    exposure: tuple[str, ...]
    federated: bool = False
    third_party_data: bool = False
    pretrained: bool = False
    generative: bool = False
    agents: bool = False
    rag: bool = False

    @property
    def sensitive(self) -> bool:
        return bool({"pii", "secret", "confidential"} & set(self.data_classes))


def parse_system(doc: Any) -> System:
    """Validate a SYSTEM.yaml mapping; unknown keys and values raise InvalidInput."""
    if not isinstance(doc, Mapping):
        raise InvalidInput("SYSTEM.yaml must hold a mapping")
    unknown = sorted(set(doc) - SYSTEM_KEYS)
    if unknown:
        raise InvalidInput(f"SYSTEM.yaml: unknown key(s) {', '.join(unknown)}")

    def strings(key: str, allowed: Sequence[str] | None = None) -> tuple[str, ...]:
        value = doc.get(key) or []
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidInput(f"SYSTEM.yaml: {key} must be a list of strings")
        bad = [v for v in value if allowed is not None and v not in allowed]
        if bad:
            raise InvalidInput(f"SYSTEM.yaml: {key} {bad[0]!r} is not one of {', '.join(allowed or ())}")
        return tuple(value)

    training = doc.get("training") or {}
    if not isinstance(training, Mapping) or set(training) - TRAINING_KEYS:
        raise InvalidInput(f"SYSTEM.yaml: training takes only {', '.join(sorted(TRAINING_KEYS))}")
    if not doc.get("name") or not isinstance(doc["name"], str):
        raise InvalidInput("SYSTEM.yaml: name is required")
    exposure = strings("exposure", EXPOSURES)
    if not exposure:
        raise InvalidInput(f"SYSTEM.yaml: exposure is required (one or more of {', '.join(EXPOSURES)})")
    return System(
        name=doc["name"],
        owner=str(doc["owner"]) if doc.get("owner") else None,
        assets=strings("assets"),
        data_classes=strings("data_classes", DATA_CLASSES),
        exposure=exposure,
        federated=bool(training.get("federated")),
        third_party_data=bool(training.get("third_party_data")),
        pretrained=bool(training.get("pretrained")),
        generative=bool(doc.get("generative")),
        agents=bool(doc.get("agents")) or bool(doc.get("tools")),
        rag=bool(doc.get("rag")),
    )
