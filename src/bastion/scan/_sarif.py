"""SARIF 2.1.0 rendering of a scan report (for code-scanning upload)."""

from __future__ import annotations

from typing import Any

from bastion import __version__
from bastion.scan._model import ScanReport, Severity

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"

RULES: dict[str, str] = {
    "pickle-dangerous-global": "A pickle imports a known code-execution, file or network callable.",
    "pickle-global-not-allowed": "A pickle imports a callable that is not on the allow-list.",
    "pickle-unresolved-global": "A pickle imports a global whose name cannot be resolved statically.",
    "pickle-unresolved-call": "A pickle calls a computed value instead of an imported global.",
    "pickle-global-mutation": "A pickle sets attributes on, or mutates, an imported object.",
    "pickle-extension-code": "A pickle uses the copyreg extension registry.",
    "archive-bomb": "Decompression exceeds the size or ratio bounds.",
    "archive-duplicate-name": "An archive holds the same member name more than once.",
    "archive-path-traversal": "An archive member name escapes the extraction directory.",
    "archive-link-escape": "An archive link points outside the extraction directory.",
    "archive-special-file": "An archive holds a device or FIFO.",
    "zip-header-mismatch": "A zip local header disagrees with the central directory.",
    "zip-crc-mismatch": "A zip member's CRC does not match its data.",
    "zip-overlapping-entries": "Zip entries share bytes (overlapping-entry bomb or polyglot).",
    "zip-tensor-compressed": "A torch tensor record is not stored raw.",
    "torchscript-code": "A TorchScript archive carries code that torch.jit.load runs (unless allowed).",
    "torchscript-denied-op": "TorchScript code opens files (from_file) or calls ops outside aten/prim.",
    "torch-legacy-link": "A member torch's legacy tar loader reads is a link to other bytes.",
    "keras-lambda": "A Keras config holds a Lambda layer (Python code).",
    "keras-module-injection": "A Keras config references a module or function outside keras' safe set.",
    "keras-custom-object": "A Keras config needs a custom object registered in code.",
    "onnx-external-data": "An ONNX tensor reads external data from outside the model directory.",
    "gguf-template-injection": "A GGUF chat template reaches Python internals.",
    "path-symlink-escape": "A symlink in a scanned directory points outside it.",
    "scan-error": "The file could not be analysed (counts as unsafe).",
}
_LEVEL = {Severity.critical: "error", Severity.high: "error", Severity.medium: "warning"}


def _location(path: str, member: str) -> dict[str, Any]:
    loc: dict[str, Any] = {"physicalLocation": {"artifactLocation": {"uri": path}}}
    if member:
        loc["logicalLocations"] = [{"fullyQualifiedName": member, "kind": "member"}]
    return loc


def to_sarif(report: ScanReport) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    for f in report.files:
        for issue in f.issues:
            text = issue.message + (f" (offset {issue.offset})" if issue.offset is not None else "")
            result: dict[str, Any] = {
                "ruleId": issue.rule,
                "level": _LEVEL[issue.severity],
                "message": {"text": text},
                "locations": [_location(f.path, issue.member)],
                "properties": {"severity": issue.severity.value, "callable": issue.callable},
            }
            results.append(result)
        for err in f.errors:
            results.append(
                {
                    "ruleId": "scan-error",
                    "level": "error",
                    "message": {"text": err.message},
                    "locations": [_location(f.path, err.member)],
                }
            )
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "bastion-scan",
                        "version": __version__,
                        "rules": [
                            {"id": rid, "shortDescription": {"text": text}}
                            for rid, text in sorted(RULES.items())
                        ],
                    }
                },
                "results": results,
            }
        ],
    }


__all__ = ["RULES", "to_sarif"]
