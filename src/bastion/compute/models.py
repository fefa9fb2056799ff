"""``bastion scan`` over many model files or a bucket prefix: one task per file, cached by content digest.

Each task reads one file (a private temporary copy for an object-store URL, :mod:`bastion.compute.objects`),
hashes it (SHA-256) and looks for ``CACHE/<sha256>-<fingerprint>.json``; on a miss it runs the ordinary
scanner (:func:`bastion.scan.scan`) and writes the entry. The fingerprint is the SHA-256 of the bastion
version, the scan configuration (limits and ``extra_allow``) and the allow-list file, so a new scanner or a
changed allow-list never reuses an old verdict. The client merges the reports in path order (the same on
every engine), then applies the cross-file rule for ONNX external data, so SARIF and JSON are one report.

Trust: a cache entry is a verdict; whoever can write the cache directory can mark a file safe. Keep it as
private as the scanner itself (a local directory, 0600 files, or a bucket prefix only the scanner writes). A
file with ONNX external data is never cached (its verdict depends on the files beside it); an object-store
ONNX model is scanned without its siblings, so a model with external data is an error there (fail closed).
Every file is listed, hidden ones included (a scanner does not skip ``.evil.pkl``); symbolic links in a local
tree are reported, not followed.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.compute.interface import Executor
from bastion.compute.objects import as_url, filesystem, local_input, read_bytes, write_bytes
from bastion.errors import InvalidInput, NotFound, ServiceError
from bastion.scan import FileReport, Issue, ScanConfig, ScanError, ScanReport, Severity


@dataclass(frozen=True)
class ModelScanTask:
    root: str
    relpath: str
    display: str
    config: ScanConfig
    cache: str | None
    fingerprint: str


@dataclass(frozen=True)
class ModelScanResult:
    report: FileReport
    digest: str
    cached: bool


@functools.lru_cache(maxsize=4)
def fingerprint(config: ScanConfig) -> str:
    """What a cached verdict depends on besides the file's bytes."""
    import bastion
    import bastion.scan

    allowlist = Path(bastion.scan.__file__).with_name("allowlist.json")
    doc = {
        "version": bastion.__version__,
        "config": dataclasses.asdict(config),
        "allowlist": hashlib.sha256(allowlist.read_bytes()).hexdigest() if allowlist.is_file() else None,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def _from_dict(d: dict[str, Any], path: str) -> FileReport:
    return FileReport(
        path,
        str(d["format"]),
        int(d["size"]),
        issues=tuple(
            Issue(
                str(i["rule"]),
                Severity(i["severity"]),
                str(i["message"]),
                str(i["member"]),
                i["callable"],
                i["offset"],
            )
            for i in d["issues"]
        ),
        errors=tuple(ScanError(str(e["message"]), str(e["member"])) for e in d["errors"]),
        members=tuple(str(m) for m in d["members"]),
    )


def scan_model_file(task: ModelScanTask) -> ModelScanResult:
    """Worker side: hash one file, answer from the cache or scan it and fill the cache."""
    from bastion.data.io import sha256_file
    from bastion.scan import scan

    with local_input(task.root, task.relpath) as p:
        if p.is_symlink():
            report = FileReport(task.display, "symlink", 0, errors=(ScanError("symbolic link not followed"),))
            return ModelScanResult(report, "", False)
        digest = sha256_file(p)
        key = f"{digest.removeprefix('sha256:')}-{task.fingerprint[:32]}.json"
        if task.cache is not None:
            try:
                return ModelScanResult(
                    _from_dict(json.loads(read_bytes(task.cache, key)), task.display), digest, True
                )
            except (OSError, ValueError, KeyError, TypeError):
                pass  # absent or unreadable: scan again and rewrite it
        (report,) = scan(paths=[p], config=task.config).files
    if as_url(task.root) is not None:
        report = dataclasses.replace(report, path=task.display)
    if task.cache is not None and not report.external_data and not report.external_spans:
        entry = {k: v for k, v in report.to_dict().items() if k != "path"}
        write_bytes(task.cache, key, json.dumps(entry, sort_keys=True).encode("utf-8"))
    return ModelScanResult(report, digest, False)


def _list(root: str) -> tuple[str, list[str]]:
    """(root as tasks carry it, every file under it as relative paths, sorted)."""
    url = as_url(root)
    if url is not None:
        fs, base = filesystem(url)
        try:
            if fs.isfile(base):
                return url, [base.rsplit("/", 1)[-1]]
            found = [str(f)[len(base) + 1 :] for f in fs.find(base, detail=False)]
        except OSError as exc:
            raise ServiceError(f"object store: listing {url} failed ({type(exc).__name__})") from exc
        if not found:
            raise NotFound(f"nothing to scan at {url}")
        return url, sorted(found)
    path = Path(root)
    if not path.exists() and not path.is_symlink():
        raise NotFound(f"no such file or directory: {root}")
    if not path.is_dir() or path.is_symlink():
        return str(path.absolute()), [path.name]
    rels = []
    for dirpath, dirnames, filenames in os.walk(path):  # links to directories are listed as names
        for name in [*filenames, *(d for d in dirnames if (Path(dirpath) / d).is_symlink())]:
            rels.append((Path(dirpath) / name).relative_to(path).as_posix())
    return str(path.absolute()), sorted(rels)


def scan_models(
    *,
    paths: list[str | Path],
    executor: Executor,
    config: ScanConfig | None = None,
    cache: str | Path | None = None,
) -> tuple[ScanReport, int]:
    """Scan every file under ``paths`` (directories, files or ``s3://bucket/prefix``) on ``executor``.

    Returns the merged report and how many files were answered from ``cache`` (a directory or a URL).
    """
    from bastion.scan import accept_external_data

    if not paths:
        raise InvalidInput("no paths to scan")
    cfg = config or ScanConfig()
    fp = fingerprint(cfg)
    cache_at = None if cache is None else (as_url(cache) or str(Path(cache).absolute()))
    if cache_at is not None and as_url(cache_at) is None:
        Path(cache_at).mkdir(parents=True, exist_ok=True, mode=0o700)
    tasks = []
    for given in paths:
        root, rels = _list(str(given) if as_url(given) is None else str(as_url(given)))
        url = as_url(root)
        for rel in rels:
            single = not Path(root).is_dir() if url is None else root.rsplit("/", 1)[-1] == rel
            display = root if single else (f"{root}/{rel}" if url else str(Path(root) / rel))
            tasks.append(ModelScanTask(root, rel, display, cfg, cache_at, fp))
    results = executor.map(scan_model_file, tasks).gather()
    reports = accept_external_data([r.report for r in results])
    return ScanReport(tuple(reports)), sum(1 for r in results if r.cached)


__all__ = ["ModelScanResult", "ModelScanTask", "fingerprint", "scan_model_file", "scan_models"]
