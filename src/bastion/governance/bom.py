"""CycloneDX 1.6 ML-BOM of one registry version, with a model card.

The document is built with ``cyclonedx-python-lib`` (a ``machine-learning-model`` component, ``data``
components for the training data by SHA-256, ``library`` components for the Python environment, the
model-signing signature as a ``digital-signature`` external reference). The library has no model-card
support, so the ``modelCard`` object (CycloneDX 1.6 ``modelCard``: model parameters, datasets by reference,
quantitative analysis, considerations) is added to the serialised component here, and the whole document is
validated with the library's strict 1.6 JSON-schema validator before it is returned: an invalid BOM is never
written (:class:`~bastion.errors.InvalidInput`).

The figures come from :func:`bastion.governance.inventory` (audit annotation, training metadata, watermark
commitment). Considerations that only a person can state (users, use cases, ethical and fairness notes,
limitations) come from ``card`` (a mapping, e.g. a YAML file the owner keeps) or the version's
``model_card`` metadata; measured limitations are added from the evidence.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
from collections.abc import Mapping
from typing import Any

from bastion.errors import DependencyMissing, InvalidInput
from bastion.governance.inventory import InventoryEntry, inventory

CARD_KEYS = frozenset({"users", "use_cases", "ethical_considerations", "fairness", "limitations", "task"})


def _environment() -> list[tuple[str, str]]:
    """The Python distributions of the running environment, sorted, deduplicated."""
    seen: dict[str, str] = {}
    for d in importlib.metadata.distributions():
        name = d.metadata["Name"]
        if name and name.lower() not in seen:
            seen[name.lower()] = d.version
    return sorted(seen.items())


def _metric(kind: str, value: float | None, slice_: str | None = None) -> dict[str, Any] | None:
    if value is None:
        return None
    m: dict[str, Any] = {"type": kind, "value": f"{value:.6g}"}
    if slice_:
        m["slice"] = slice_
    return m


def _strings(card: Mapping[str, Any], key: str) -> list[str]:
    value = card.get(key) or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"model card: {key} must be a string or a list of strings")
    return list(value)


def model_card(entry: InventoryEntry, *, card: Mapping[str, Any], dataset_refs: list[str]) -> dict[str, Any]:
    """The CycloneDX 1.6 ``modelCard`` object of one version."""
    unknown = sorted(set(card) - CARD_KEYS)
    if unknown:
        raise InvalidInput(
            f"model card: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(CARD_KEYS))})"
        )
    meta = entry.metadata
    arch = meta.get("architecture") if isinstance(meta.get("architecture"), Mapping) else {}
    params: dict[str, Any] = {"approach": {"type": "supervised"}}
    if card.get("task"):
        params["task"] = str(card["task"])
    if arch:
        params["architectureFamily"] = str(arch.get("kind") or arch.get("family") or "unknown")
        params["modelArchitecture"] = json.dumps(dict(arch), sort_keys=True)
    if dataset_refs:
        params["datasets"] = [{"ref": r} for r in dataset_refs]
    accuracy = meta.get("accuracy") if isinstance(meta.get("accuracy"), int | float) else entry.clean_accuracy
    metrics = [
        _metric("accuracy", accuracy),
        _metric("robust-accuracy", entry.robust_accuracy, "audit evasion family (L-inf PGD/ensemble)"),
        _metric("membership-inference-auc", entry.mia_auc, "audit membership family"),
        _metric("membership-inference-tpr-at-0.1%-fpr", entry.mia_tpr_at_0_1_fpr, "audit membership family"),
        _metric("extraction-fidelity", entry.extraction_fidelity, "audit extraction family"),
        _metric("dp-epsilon", entry.epsilon, f"delta={entry.delta:g}" if entry.delta is not None else None),
    ]
    limitations = _strings(card, "limitations")
    if entry.audit_grade is None:
        limitations.append("No adversarial audit has been recorded for this version.")
    else:
        limitations.append(f"Adversarial audit grade {entry.audit_grade} (bastion audit).")
    if entry.epsilon is None:
        limitations.append("Not trained with differential privacy: no formal bound on training-data leakage.")
    ethical = [{"name": n} for n in _strings(card, "ethical_considerations")]
    fairness = [{"groupAtRisk": g} for g in _strings(card, "fairness")]
    considerations: dict[str, Any] = {"technicalLimitations": limitations}
    if users := _strings(card, "users"):
        considerations["users"] = users
    if uses := _strings(card, "use_cases"):
        considerations["useCases"] = uses
    if ethical:
        considerations["ethicalConsiderations"] = ethical
    if fairness:
        considerations["fairnessAssessments"] = fairness
    out: dict[str, Any] = {"modelParameters": params, "considerations": considerations}
    kept = [m for m in metrics if m is not None]
    if kept:
        out["quantitativeAnalysis"] = {"performanceMetrics": kept}
    props = [{"name": "bastion:audit-grade", "value": entry.audit_grade}] if entry.audit_grade else []
    if entry.watermark:
        props.append({"name": "bastion:watermark-commitment", "value": entry.watermark})
    if props:
        out["properties"] = props
    return out


def build_bom(
    *,
    vault: Any,
    ref: str,
    card: Mapping[str, Any] | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """The validated CycloneDX 1.6 ML-BOM (a JSON object) of the model version ``ref``."""
    try:
        from cyclonedx.model import ExternalReference, ExternalReferenceType, HashAlgorithm, HashType, XsUri
        from cyclonedx.model.bom import Bom
        from cyclonedx.model.component import Component, ComponentType
        from cyclonedx.output.json import JsonV1Dot6
        from cyclonedx.schema import SchemaVersion
        from cyclonedx.validation.json import JsonStrictValidator
        from packageurl import PackageURL
    except ImportError as exc:
        raise DependencyMissing(
            "cyclonedx-python-lib is not installed", hint="pip install 'bastion-ml[governance]'"
        ) from exc
    (entry,) = inventory(vault=vault, refs=[ref], now=now)
    if entry.kind != "model":
        raise InvalidInput(f"{entry.ref} is a {entry.kind}: an ML-BOM describes a model")
    if entry.signature != "verified":
        raise InvalidInput(f"{entry.ref}: the signed record does not verify; no BOM for it")
    version = vault.show(entry.ref)
    model_ref = f"model:{entry.ref}"
    model = Component(
        name=entry.name,
        version=str(entry.version),
        type=ComponentType.MACHINE_LEARNING_MODEL,
        bom_ref=model_ref,
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=version.manifest_digest)],
        external_references=[
            ExternalReference(
                type=ExternalReferenceType.DIGITAL_SIGNATURE,
                url=XsUri(f"bastion://registry/{entry.name}/{entry.version}/model.sig"),
                comment="model-signing bundle over the file digests; manifest signed by the project key",
            )
        ],
    )
    bom = Bom()
    bom.metadata.component = model
    bom.metadata.timestamp = now or dt.datetime.now(dt.UTC)
    data_refs: list[str] = []
    for n, digest in enumerate(entry.lineage_roots):
        data_ref = f"data:{digest}"
        data_refs.append(data_ref)
        bom.components.add(
            Component(
                name=entry.training_dataset or f"training-data-{n}",
                type=ComponentType.DATA,
                bom_ref=data_ref,
                hashes=[HashType(alg=HashAlgorithm.SHA_256, content=digest)],
            )
        )
    for name, ver in _environment():
        bom.components.add(
            Component(
                name=name,
                version=ver,
                type=ComponentType.LIBRARY,
                bom_ref=f"pypi:{name}@{ver}",
                purl=PackageURL(type="pypi", name=name, version=ver),
            )
        )
    bom.register_dependency(model, list(bom.components))
    doc = json.loads(JsonV1Dot6(bom).output_as_string())
    meta_card = entry.metadata.get("model_card")
    card_data = dict(card if card is not None else (meta_card if isinstance(meta_card, Mapping) else {}))
    doc["metadata"]["component"]["modelCard"] = model_card(entry, card=card_data, dataset_refs=data_refs)
    if entry.classification:
        doc["metadata"]["component"].setdefault("properties", []).append(
            {"name": "bastion:classification", "value": entry.classification}
        )
    for comp in doc.get("components", []):
        if comp.get("bom-ref") in data_refs:
            comp["data"] = [
                {"type": "dataset", "name": comp["name"], "classification": _data_class(vault, comp)}
            ]
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(doc))
    if error is not None:
        raise InvalidInput(f"the ML-BOM does not validate against CycloneDX 1.6: {error}")
    return doc


def _data_class(vault: Any, comp: Mapping[str, Any]) -> str:
    """The training file's label from the data catalog (``unclassified`` when it was never scanned)."""
    from bastion.governance.policy import catalog_lookup

    digest = comp["hashes"][0]["content"]
    columns = catalog_lookup(vault)(digest) or []
    order = ["public", "internal", "confidential", "pii", "secret"]
    labels = [str(c.get("file_label") or c.get("label")) for c in columns]
    known = [lbl for lbl in labels if lbl in order]
    return max(known, key=order.index) if known else "unclassified"


__all__ = ["CARD_KEYS", "build_bom", "model_card"]
