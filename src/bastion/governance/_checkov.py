"""checkov as an optional second engine of ``check-deploy``: run in its own virtual environment (its pins
conflict with bastion's), read its SARIF, and keep rule id, message, file and line of each result under the
``checkov`` tool. Code snippets checkov copies into its SARIF are dropped (they may hold the very secrets the
check found). checkov findings are advisory (``warning``): the gate's verdict is bastion's rules.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bastion.errors import InvalidInput, ServiceError
from bastion.governance.findings import CheckReport, Issue, Rule

TIMEOUT_S = 600


def issues_from_sarif(doc: Mapping[str, Any], *, base: Path | None = None) -> list[Issue]:
    """checkov's SARIF results as advisory issues (no snippets)."""
    out: list[Issue] = []
    for run in doc.get("runs") or []:
        rules = {r.get("id"): r for r in (run.get("tool") or {}).get("driver", {}).get("rules") or []}
        for res in run.get("results") or []:
            rid = str(res.get("ruleId") or "checkov")
            text = str((res.get("message") or {}).get("text") or "")
            rule_meta = rules.get(rid) or {}
            name = str(rule_meta.get("name") or rid)
            rule = Rule(rid, name[:80], text[:200] or name, level="warning", tool="checkov")
            loc = ((res.get("locations") or [{}])[0].get("physicalLocation")) or {}
            uri = str((loc.get("artifactLocation") or {}).get("uri") or "")
            line = (loc.get("region") or {}).get("startLine")
            target = str(base / uri) if base is not None and uri and not Path(uri).is_absolute() else uri
            out.append(
                Issue(rule, text, target or "checkov", line=int(line) if isinstance(line, int) else None)
            )
    return out


def run_checkov(executable: str, files: Sequence[Path]) -> CheckReport:
    """Run checkov on ``files`` (kubernetes, dockerfile and secrets frameworks) and read its SARIF."""
    if not Path(executable).is_file():
        raise InvalidInput(f"--checkov {executable}: no such executable")
    with tempfile.TemporaryDirectory() as td:
        argv = [executable, "--quiet", "-o", "sarif", "--output-file-path", td]
        argv += ["--framework", "kubernetes", "dockerfile", "secrets"]
        for f in files:
            argv += ["-f", str(f)]
        try:
            subprocess.run(argv, capture_output=True, timeout=TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ServiceError(f"checkov did not run ({type(exc).__name__})") from exc
        sarif = Path(td) / "results_sarif.sarif"
        if not sarif.is_file():
            raise ServiceError("checkov wrote no SARIF (see its own output by running it directly)")
        doc = json.loads(sarif.read_text(encoding="utf-8"))
    return CheckReport(issues=tuple(issues_from_sarif(doc)), checked=())


class CheckovEngine:
    """checkov in its own virtual environment (an :class:`~bastion.governance.interface.Engine`)."""

    name = "checkov"

    def __init__(self, executable: str) -> None:
        self.executable = executable

    def check(self, paths: Sequence[Path]) -> CheckReport:
        return run_checkov(self.executable, paths)


__all__ = ["CheckovEngine", "issues_from_sarif", "run_checkov"]
