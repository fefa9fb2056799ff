"""Image vulnerability check: a CycloneDX SBOM of an image's OS (dpkg) and Python packages, matched against
OSV-format advisories from a local directory (air-gapped sites; no network is used here).

:func:`sbom_from_rootfs` reads an unpacked image filesystem (``docker export`` / ``crane export`` output):
``var/lib/dpkg/status`` for Debian packages and every ``*.dist-info/METADATA`` for Python ones.
:func:`check_sbom` matches each ``pkg:pypi``/``pkg:deb`` component against the advisories' ``affected``
entries: explicit ``versions`` and ``ECOSYSTEM`` ranges (``introduced``/``fixed``/``last_affected``), with
PEP 440 ordering for PyPI and dpkg ordering (epoch, upstream, revision; ``~`` sorts first) for Debian.
Where the network allows, ``pip-audit`` does the same for Python packages against the live OSV database.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bastion.errors import DependencyMissing, InvalidInput
from bastion.governance.findings import CheckReport, Issue, Rule

VULNERABLE = Rule("BST-D020", "vulnerable-package", "An image package matches a known advisory (OSV)")
MAX_ADVISORY_BYTES = 4 << 20


def _norm_pypi(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _order(c: str) -> int:
    if c == "~":
        return -1
    if c.isalpha():
        return ord(c)
    return ord(c) + 256


def _cmp_part(a: str, b: str) -> int:
    """dpkg's verrevcmp on one part (upstream or revision)."""
    i = j = 0
    while i < len(a) or j < len(b):
        diff = 0
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) and not a[i].isdigit() else 0
            bc = _order(b[j]) if j < len(b) and not b[j].isdigit() else 0
            if ac != bc:
                return -1 if ac < bc else 1
            i += 1
            j += 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not diff:
                diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if diff:
            return -1 if diff < 0 else 1
    return 0


def dpkg_compare(a: str, b: str) -> int:
    """-1, 0 or 1 as Debian version ``a`` sorts before, with or after ``b``."""

    def split(v: str) -> tuple[int, str, str]:
        epoch, _, rest = v.rpartition(":") if ":" in v else ("0", "", v)
        upstream, _, rev = rest.rpartition("-") if "-" in rest else (rest, "", "0")
        return int(epoch or 0), upstream, rev

    ea, ua, ra = split(a)
    eb, ub, rb = split(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _cmp_part(ua, ub) or _cmp_part(ra, rb)


def _compare(ecosystem: str, a: str, b: str) -> int:
    if ecosystem == "PyPI":
        from packaging.version import InvalidVersion, Version

        try:
            va, vb = Version(a), Version(b)
        except InvalidVersion:
            return (a > b) - (a < b)
        return (va > vb) - (va < vb)
    return dpkg_compare(a, b)


def _affected(ecosystem: str, version: str, entry: Mapping[str, Any]) -> str | None:
    """The fixed version (or "no fix") when ``version`` is affected by this ``affected`` entry, else None."""
    if version in (entry.get("versions") or []):
        return "listed"
    for rng in entry.get("ranges") or []:
        if rng.get("type") not in ("ECOSYSTEM", "SEMVER"):
            continue
        affected, fixed = False, None
        for ev in rng.get("events") or []:
            if "introduced" in ev:
                intro = str(ev["introduced"])
                if intro == "0" or _compare(ecosystem, version, intro) >= 0:
                    affected, fixed = True, None
            elif "fixed" in ev and affected:
                if _compare(ecosystem, version, str(ev["fixed"])) >= 0:
                    affected = False
                else:
                    fixed = str(ev["fixed"])
            elif (
                "last_affected" in ev
                and affected
                and _compare(ecosystem, version, str(ev["last_affected"])) > 0
            ):
                affected = False
        if affected:
            return fixed or "no fix"
    return None


def load_advisories(directory: Path) -> list[Mapping[str, Any]]:
    if not directory.is_dir():
        raise InvalidInput(f"{directory}: not a directory of OSV JSON advisories")
    out = []
    for p in sorted(directory.rglob("*.json")):
        if p.stat().st_size > MAX_ADVISORY_BYTES:
            raise InvalidInput(f"{p}: advisory larger than 4 MiB")
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"{p}: not an OSV JSON advisory") from exc
        if not isinstance(doc, Mapping) or "id" not in doc or not isinstance(doc.get("affected", []), list):
            raise InvalidInput(f"{p}: not an OSV advisory (needs id and affected)")
        out.append(doc)
    return out


def _purl_parts(purl: str) -> tuple[str, str, str] | None:
    m = re.fullmatch(r"pkg:(pypi|deb)/(?:[^/@]+/)?([^@/?#]+)@([^?#]+)(?:[?#].*)?", purl)
    if not m:
        return None
    from urllib.parse import unquote

    kind, name, version = m.group(1), unquote(m.group(2)), unquote(m.group(3))
    return ("PyPI" if kind == "pypi" else "Debian"), name, version


def check_sbom(
    sbom: Mapping[str, Any], *, advisories: Sequence[Mapping[str, Any]], source: str
) -> CheckReport:
    """Every SBOM component (pypi/deb purl) that an advisory covers, as BST-D020 findings."""
    index: dict[tuple[str, str], list[tuple[Mapping[str, Any], Mapping[str, Any]]]] = {}
    for adv in advisories:
        for aff in adv.get("affected") or []:
            pkg = aff.get("package") or {}
            eco = str(pkg.get("ecosystem", "")).split(":")[0]
            name = _norm_pypi(str(pkg.get("name", ""))) if eco == "PyPI" else str(pkg.get("name", ""))
            index.setdefault((eco, name), []).append((adv, aff))
    issues: list[Issue] = []
    components = sbom.get("components") or []
    for comp in components:
        parts = _purl_parts(str(comp.get("purl") or ""))
        if parts is None:
            continue
        eco, name, version = parts
        key = (eco, _norm_pypi(name) if eco == "PyPI" else name)
        for adv, aff in index.get(key, []):
            fixed = _affected(eco, version, aff)
            if fixed is None:
                continue
            aliases = ", ".join(str(a) for a in adv.get("aliases") or [])
            note = f" ({aliases})" if aliases else ""
            fix = "no fixed version" if fixed in ("no fix", "listed") else f"fixed in {fixed}"
            issues.append(
                Issue(
                    VULNERABLE,
                    f"{eco} {name} {version}: {adv['id']}{note}, {fix}",
                    source,
                    evidence={"id": adv["id"], "package": name, "version": version, "ecosystem": eco},
                )
            )
    return CheckReport(issues=tuple(issues), checked=(source,), rules=(VULNERABLE,))


def read_sbom(path: Path) -> Mapping[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path}: not a CycloneDX JSON SBOM") from exc
    if not isinstance(doc, Mapping) or doc.get("bomFormat") != "CycloneDX":
        raise InvalidInput(f"{path}: not a CycloneDX JSON SBOM (bomFormat)")
    return doc


def _dpkg(root: Path) -> list[tuple[str, str]]:
    status = root / "var" / "lib" / "dpkg" / "status"
    if not status.is_file():
        return []
    out = []
    for block in status.read_text(encoding="utf-8", errors="replace").split("\n\n"):
        fields = dict(
            (k.strip(), v.strip())
            for k, _, v in (ln.partition(":") for ln in block.splitlines() if ln and ln[0] != " ")
        )
        if (
            fields.get("Package")
            and fields.get("Version")
            and "installed" in fields.get("Status", "installed")
        ):
            out.append((fields["Package"], fields["Version"]))
    return out


def _python(root: Path) -> list[tuple[str, str]]:
    out = []
    for dirpath, dirnames, _files in os.walk(root):
        for d in list(dirnames):
            if d.endswith(".dist-info"):
                meta = Path(dirpath) / d / "METADATA"
                if meta.is_file():
                    head = meta.read_text(encoding="utf-8", errors="replace").split("\n\n", 1)[0]
                    f = {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in head.splitlines())}
                    if f.get("Name") and f.get("Version"):
                        out.append((f["Name"], f["Version"]))
                dirnames.remove(d)
    return out


def sbom_from_rootfs(root: Path) -> dict[str, Any]:
    """A CycloneDX 1.6 SBOM (JSON object) of the Debian and Python packages in an unpacked image."""
    if not root.is_dir():
        raise InvalidInput(f"{root}: not a directory (an unpacked image filesystem)")
    try:
        from cyclonedx.model.bom import Bom
        from cyclonedx.model.component import Component, ComponentType
        from cyclonedx.output.json import JsonV1Dot6
        from packageurl import PackageURL
    except ImportError as exc:
        raise DependencyMissing(
            "cyclonedx-python-lib is not installed", hint="pip install 'bastion-ml[governance]'"
        ) from exc
    bom = Bom()
    for name, version in sorted(set(_dpkg(root))):
        purl = PackageURL(type="deb", namespace="debian", name=name, version=version)
        bom.components.add(
            Component(name=name, version=version, type=ComponentType.LIBRARY, purl=purl, bom_ref=str(purl))
        )
    for name, version in sorted(set(_python(root))):
        purl = PackageURL(type="pypi", name=_norm_pypi(name), version=version)
        bom.components.add(
            Component(name=name, version=version, type=ComponentType.LIBRARY, purl=purl, bom_ref=str(purl))
        )
    doc: dict[str, Any] = json.loads(JsonV1Dot6(bom).output_as_string())
    return doc


__all__ = ["VULNERABLE", "check_sbom", "dpkg_compare", "load_advisories", "read_sbom", "sbom_from_rootfs"]
