"""Threat modelling from a system description, mapped to MITRE ATLAS and the OWASP ML and LLM Top 10 lists.

``SYSTEM.yaml`` describes the system (assets = registry model names, data classes, exposure, training setup,
generative or not, agents/tools, retrieval). :func:`threat_model` derives the threats that apply, each with a
likelihood, an impact, the bastion control that mitigates it and that control's **measured** status for this
project, read from the inventory (latest audit figures, ε, watermark, signature and scan state) and the
gateway settings, so an untested mitigation stands out (``untested``) next to a measured one.

ATLAS technique IDs are checked against the ATLAS 5.6.0 data shipped in ``data/ATLAS.yaml`` (MITRE,
Apache-2.0): names are read from it, never retyped, and a catalogue entry citing an ID the file does not hold
fails at load (tests check every cited ID is present).
"""

from __future__ import annotations

import functools
import html
import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from bastion.errors import DependencyMissing, InvalidInput
from bastion.governance._threats import (
    CATALOGUE,
    DATA_CLASSES,
    OWASP_LLM_2025,
    OWASP_ML_2023,
    STATUSES,
    Evidence,
    System,
    parse_system,
)


@functools.cache
def atlas_techniques() -> Mapping[str, str]:
    """ATLAS technique ID → name, from the packaged ATLAS.yaml."""
    try:
        import yaml
    except ImportError as exc:
        raise DependencyMissing(
            "PyYAML is not installed", hint="pip install 'bastion-ml[governance]'"
        ) from exc
    text = resources.files("bastion.governance").joinpath("data/ATLAS.yaml").read_text(encoding="utf-8")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    doc = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    return {t["id"]: t["name"] for m in doc["matrices"] for t in m["techniques"]}


@functools.cache
def atlas_version() -> str:
    text = resources.files("bastion.governance").joinpath("data/ATLAS.yaml").read_text(encoding="utf-8")
    for line in text.splitlines()[:10]:
        if line.startswith("version:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


@dataclass(frozen=True)
class Threat:
    id: str
    title: str
    atlas: tuple[tuple[str, str], ...]  # (ID, name from ATLAS.yaml)
    owasp_ml: tuple[str, ...]
    owasp_llm: tuple[str, ...]
    likelihood: str
    impact: str
    control: str
    status: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "atlas": [{"id": i, "name": n} for i, n in self.atlas],
            "owasp_ml": [{"id": i, "name": OWASP_ML_2023[i]} for i in self.owasp_ml],
            "owasp_llm": [{"id": i, "name": OWASP_LLM_2025[i]} for i in self.owasp_llm],
            "likelihood": self.likelihood,
            "impact": self.impact,
            "control": self.control,
            "status": self.status,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class ThreatModel:
    system: System
    threats: tuple[Threat, ...]
    atlas_version: str

    def to_dict(self) -> dict[str, Any]:
        counts = {s: sum(1 for t in self.threats if t.status == s) for s in STATUSES}
        return {
            "system": self.system.name,
            "atlas_version": self.atlas_version,
            "assets": list(self.system.assets),
            "counts": counts,
            "threats": [t.to_dict() for t in self.threats],
        }

    def markdown(self) -> str:
        lines = [
            f"# Threat model: {self.system.name}",
            "",
            f"MITRE ATLAS {self.atlas_version}, OWASP ML Top 10 (2023), OWASP LLM Top 10 (2025). "
            "Status: measured / weak (measured, below target) / untested / not-covered.",
            "",
            "| id | threat | ATLAS | OWASP | likelihood | impact | control | status | evidence |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for t in self.threats:
            atlas = "<br>".join(f"{i} {n}" for i, n in t.atlas)
            owasp = "<br>".join([*t.owasp_ml, *t.owasp_llm])
            status = f"**{t.status.upper()}**" if t.status != "measured" else t.status
            lines.append(
                f"| {t.id} | {t.title} | {atlas} | {owasp} | {t.likelihood} | {t.impact} | {t.control} "
                f"| {status} | {t.detail} |"
            )
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        esc = html.escape
        rows = "".join(
            f"<tr class='{esc(t.status)}'><td>{esc(t.id)}</td><td>{esc(t.title)}</td>"
            f"<td>{'<br>'.join(esc(f'{i} {n}') for i, n in t.atlas)}</td>"
            f"<td>{'<br>'.join(esc(x) for x in (*t.owasp_ml, *t.owasp_llm))}</td>"
            f"<td>{esc(t.likelihood)}</td><td>{esc(t.impact)}</td><td>{esc(t.control)}</td>"
            f"<td>{esc(t.status)}</td><td>{esc(t.detail)}</td></tr>"
            for t in self.threats
        )
        return (
            "<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>Threat model: {esc(self.system.name)}</title><style>"
            "td,th{border:1px solid #ccc;padding:4px}.untested,.weak{background:#fde}"
            ".not-covered{background:#eee}</style></head><body>"
            f"<h1>Threat model: {esc(self.system.name)}</h1><p>MITRE ATLAS {esc(self.atlas_version)}</p>"
            "<table><tr><th>id</th><th>threat</th><th>ATLAS</th><th>OWASP</th><th>likelihood</th>"
            f"<th>impact</th><th>control</th><th>status</th><th>evidence</th></tr>{rows}</table></body></html>\n"
        )


def check_catalogue() -> None:
    """Every ATLAS ID and OWASP ID the catalogue cites exists (raises otherwise)."""
    known = atlas_techniques()
    for t in CATALOGUE:
        missing = [i for i in t.atlas if i not in known]
        if missing:
            raise InvalidInput(
                f"threat {t.id} cites ATLAS IDs absent from ATLAS {atlas_version()}: {missing}"
            )
        bad = [i for i in (*t.owasp_ml, *t.owasp_llm) if i not in OWASP_ML_2023 and i not in OWASP_LLM_2025]
        if bad:
            raise InvalidInput(f"threat {t.id} cites unknown OWASP IDs {bad}")


def threat_model(*, system: System, evidence: Evidence) -> ThreatModel:
    """The threats that apply to ``system``, each with its control's measured status."""
    check_catalogue()
    names = atlas_techniques()
    out = []
    for t in CATALOGUE:
        if not t.applies(system):
            continue
        status, detail = t.status(evidence)
        out.append(
            Threat(
                id=t.id,
                title=t.title,
                atlas=tuple((i, names[i]) for i in t.atlas),
                owasp_ml=t.owasp_ml,
                owasp_llm=t.owasp_llm,
                likelihood=t.likelihood(system),
                impact=t.impact(system),
                control=t.control,
                status=status,
                detail=detail,
            )
        )
    return ThreatModel(system=system, threats=tuple(out), atlas_version=atlas_version())


def evidence_for(*, vault: Any, system: System) -> Evidence:
    """The latest version of every asset the system names (unknown assets raise NotFound)."""
    from bastion.governance.inventory import inventory

    entries = inventory(vault=vault, refs=list(system.assets)) if system.assets else ()
    return Evidence(entries=tuple(entries), serve=dict(vault.settings.section("serve")))


def system_from_inventory(*, vault: Any, name: str) -> dict[str, Any]:
    """A starting SYSTEM.yaml mapping for model ``name`` from what the registry knows (review it)."""
    from bastion.governance.inventory import inventory
    from bastion.governance.policy import catalog_lookup

    (entry,) = inventory(vault=vault, refs=[name])
    lookup = catalog_lookup(vault)
    classes = {entry.classification} if entry.classification in DATA_CLASSES else set()
    for root in entry.lineage_roots:
        for col in lookup(root.split(":")[-1]) or []:
            if col.get("label") in DATA_CLASSES:
                classes.add(str(col["label"]))
    meta = entry.metadata
    return {
        "name": entry.name,
        "owner": entry.owner,
        "assets": [entry.name],
        "data_classes": sorted(classes, key=DATA_CLASSES.index) or ["internal"],
        "exposure": ["public_api"] if entry.endpoints else ["internal_batch"],
        "training": {
            "federated": bool(meta.get("federated")),
            "third_party_data": False,
            "pretrained": False,
            "dp": entry.epsilon is not None,
        },
        "generative": False,
        "agents": False,
        "rag": False,
    }


def render(model: ThreatModel, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(model.to_dict(), indent=2, sort_keys=True) + "\n"
    if fmt == "html":
        return model.html()
    return model.markdown()


__all__ = [
    "CATALOGUE",
    "OWASP_LLM_2025",
    "OWASP_ML_2023",
    "Evidence",
    "System",
    "Threat",
    "ThreatModel",
    "atlas_techniques",
    "check_catalogue",
    "evidence_for",
    "parse_system",
    "render",
    "system_from_inventory",
    "threat_model",
]
