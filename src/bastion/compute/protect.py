"""``data protect`` over a partitioned dataset: one task per partition file, the same layout out, resumable.

1. The dataset is scanned on the executor and every column classified from the whole dataset
   (:func:`bastion.compute.datasets.scan_dataset`), so every partition gets the same plan.
2. One task per partition runs :func:`bastion.data.protect_file` with that merged report and writes
   ``OUT/<same relative path>``. Tokens are deterministic (AES-SIV under the scope's data key), so each
   partition's output is byte for byte what the local single-process engine writes (any engine, any workers).
3. A task carries the scope's data key WRAPPED (:mod:`bastion.compute.keys`); the worker unwraps it through
   its own key provider or refuses the task.

Checkpoints: ``OUT/_bastion_job.json`` names the job (dataset digest, policy, scope, plan); after a partition
is written its worker leaves ``OUT/_bastion_done/<id>.json`` (input and output digests). A rerun of the same
job skips every partition whose marker matches its input digest and whose output still has the recorded
digest, and redoes the rest; a different job into the same OUT is refused. Names starting with ``_`` are not
partitions, so OUT reads as a dataset. Each job writes one audit-log entry (inputs, engine, outcome) and
one lineage event.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bastion.compute.datasets import DatasetScan, location, scan_dataset
from bastion.compute.interface import Executor
from bastion.compute.keys import KeySource, ScopedKey, unwrap_scope_key
from bastion.compute.objects import (
    as_url,
    is_empty,
    lineage_location,
    local_input,
    local_output,
    read_bytes,
    sha256,
    write_bytes,
)
from bastion.config import PASSPHRASE_ENV
from bastion.data import Policy, ScanReport, load_policy, protect_file
from bastion.data.io import DEFAULT_CHUNK_ROWS, DEFAULT_MAX_LINE_BYTES, sha256_file
from bastion.data.policy import policy_from_mapping
from bastion.data.protect import ColumnPlan, make_plan
from bastion.errors import BastionError, ConfigError, Conflict, InvalidInput

if TYPE_CHECKING:
    from bastion.vault import Vault

MANIFEST = "_bastion_job.json"
DONE_DIR = "_bastion_done"


def policy_mapping(policy: Policy) -> dict[str, Any]:
    """``policy`` as the document :func:`policy_from_mapping` reads (a Policy itself does not pickle)."""
    columns = {}
    for name, rule in policy.columns.items():
        entry: dict[str, Any] = {}
        if rule.action is not None:
            entry["action"] = rule.action.value
        if rule.label is not None:
            entry["label"] = rule.label.value
        if rule.quasi_identifier is not None:
            entry["quasi_identifier"] = rule.quasi_identifier
        if rule.entity is not None:
            entry["entity"] = rule.entity
        columns[name] = entry
    return {
        "defaults": {k: v.value for k, v in policy.defaults.items()},
        "options": {
            "token_scope": policy.token_scope,
            "date_granularity": policy.date_granularity,
            "zip_digits": policy.zip_digits,
            "age_band": policy.age_band,
            "mask_keep_last": policy.mask_keep_last,
            "mac_address": policy.mac_address,
        },
        "columns": columns,
    }


@dataclass(frozen=True)
class ProtectTask:
    """One partition to protect (picklable; the data key inside is wrapped)."""

    root: str
    relpath: str
    out_root: str
    fmt: str
    report: ScanReport
    policy: dict[str, Any]
    key: ScopedKey
    chunk_rows: int
    max_line_bytes: int
    use_presidio: bool


@dataclass(frozen=True)
class PartitionProtect:
    relpath: str
    input_digest: str
    output_digest: str
    rows: int
    undetected: dict[str, int] = field(default_factory=dict)
    resumed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.relpath,
            "input_digest": self.input_digest,
            "output_digest": self.output_digest,
            "rows": self.rows,
            "resumed": self.resumed,
        }


def _marker(relpath: str) -> str:
    return f"{DONE_DIR}/{hashlib.sha256(relpath.encode('utf-8')).hexdigest()[:32]}.json"


def protect_partition(task: ProtectTask) -> PartitionProtect:
    """Worker side: unwrap the scope key, protect one partition, leave its done marker."""
    keys = unwrap_scope_key(task.key)
    with local_input(task.root, task.relpath) as src, local_output(task.out_root, task.relpath) as dst:
        result = protect_file(
            path=src,
            out=dst,
            keys=keys,
            policy=policy_from_mapping(task.policy),
            fmt=task.fmt,
            report=task.report,
            chunk_rows=task.chunk_rows,
            max_line_bytes=task.max_line_bytes,
            use_presidio=task.use_presidio,
        )
        input_digest = sha256_file(src)
    done = PartitionProtect(
        relpath=task.relpath,
        input_digest=input_digest,
        output_digest=result.output_digest,
        rows=result.rows,
        undetected=dict(result.undetected),
    )
    record = {**done.to_dict(), "undetected": done.undetected}
    write_bytes(task.out_root, _marker(task.relpath), json.dumps(record, sort_keys=True).encode("utf-8"))
    return done


def _finished(out_root: str, relpath: str, input_digest: str) -> PartitionProtect | None:
    """A partition a previous run of this job finished, if its marker and output still agree."""
    try:
        record = json.loads(read_bytes(out_root, _marker(relpath)).decode("utf-8"))
        if record.get("path") != relpath or record.get("input_digest") != input_digest:
            return None
        if sha256(out_root, relpath) != record.get("output_digest"):
            return None
        return PartitionProtect(
            relpath=relpath,
            input_digest=input_digest,
            output_digest=str(record["output_digest"]),
            rows=int(record["rows"]),
            undetected={str(k): int(v) for k, v in (record.get("undetected") or {}).items()},
            resumed=True,
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


@dataclass(frozen=True)
class DatasetProtect:
    input: str
    output: str
    format: str
    input_digest: str
    output_digest: str
    rows: int
    token_scope: str
    engine: str
    plan: tuple[ColumnPlan, ...]
    scan: DatasetScan
    partitions: tuple[PartitionProtect, ...]

    @property
    def resumed(self) -> int:
        return sum(1 for p in self.partitions if p.resumed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "output": self.output,
            "format": self.format,
            "input_digest": self.input_digest,
            "output_digest": self.output_digest,
            "rows": self.rows,
            "token_scope": self.token_scope,
            "engine": self.engine,
            "label": self.scan.report.label.value,
            "plan": [
                {"column": p.name, "action": p.action.value, "entity": p.entity, "kind": p.kind}
                for p in self.plan
            ],
            "partitions": [p.to_dict() for p in self.partitions],
            "resumed": self.resumed,
        }


def _job_manifest(out_root: str, doc: dict[str, Any]) -> None:
    local = as_url(out_root) is None
    try:
        raw: bytes | None = read_bytes(out_root, MANIFEST)
    except FileNotFoundError:
        raw = None
    except OSError as exc:
        raise Conflict(f"{out_root}/{MANIFEST} is unreadable; protect into an empty directory") from exc
    if raw is not None:
        try:
            previous = json.loads(raw.decode("utf-8"))
        except ValueError as exc:
            raise Conflict(f"{out_root}/{MANIFEST} is unreadable; protect into an empty directory") from exc
        if previous != doc:
            raise Conflict(f"{out_root} holds the output of another protect job; use an empty directory")
        if local:
            (Path(out_root) / DONE_DIR).mkdir(exist_ok=True)
        return
    if not is_empty(out_root):
        raise Conflict(f"{out_root} is not empty and holds no protect job; use an empty directory")
    if local:
        (Path(out_root) / DONE_DIR).mkdir(parents=True, exist_ok=True)
    write_bytes(out_root, MANIFEST, json.dumps(doc, sort_keys=True, indent=1).encode("utf-8"))


def _settings(vault: Vault, policy: Policy | None) -> tuple[Policy, int]:
    section = vault.settings.section("data")
    chunk_rows = section.get("chunk_rows", DEFAULT_CHUNK_ROWS)
    if not isinstance(chunk_rows, int) or isinstance(chunk_rows, bool) or chunk_rows < 1:
        raise ConfigError("[data] chunk_rows must be a positive integer")
    if policy is None:
        path = section.get("policy")
        if path is not None and not Path(path).is_absolute():
            path = vault.settings.home / path
        policy = load_policy(path, token_scope=section.get("token_scope"))
    return policy, chunk_rows


def protect_dataset(
    vault: Vault,
    *,
    path: str | Path,
    out: str | Path,
    executor: Executor,
    policy: Policy | None = None,
    fmt: str | None = None,
    env: str | None = None,
    use_presidio: bool = True,
    passphrase_env: str = PASSPHRASE_ENV,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> DatasetProtect:
    """Protect every partition of ``path`` into ``out`` on ``executor`` (needs ``data:protect``)."""
    from bastion.data.catalog import record_classification, wrapped_scope_key
    from bastion.store.lineage import LineageDataset, record_run

    vault.access.check(vault.identity, "data:protect")
    pol, chunk_rows = _settings(vault, policy)
    env = env or vault.settings.default_env
    src, dst = location(path), location(out)
    if dst == src or dst.startswith(src.rstrip("/") + "/") or src.startswith(dst.rstrip("/") + "/"):
        raise InvalidInput("the output directory must be outside the input dataset (and not contain it)")
    details: dict[str, Any] = {"input": src, "engine": executor.name, "workers": executor.workers}
    try:
        scan = scan_dataset(
            path=src,
            executor=executor,
            fmt=fmt,
            policy=pol,
            chunk_rows=chunk_rows,
            max_line_bytes=max_line_bytes,
            use_presidio=use_presidio,
        )
        details["input_digest"] = scan.report.digest
        plan = make_plan(scan.report, pol)
        wrapped, context = wrapped_scope_key(
            vault.engine, vault.keys, scope=pol.token_scope, env=env, actor=vault.identity.name
        )
        key = ScopedKey(
            scope=pol.token_scope,
            wrapped=wrapped.to_json(),
            context=context,
            source=KeySource(home=str(vault.settings.home.resolve()), passphrase_env=passphrase_env),
        )
        mapping = policy_mapping(pol)
        _job_manifest(
            dst,
            {
                "job": "data.protect",
                "input_digest": scan.report.digest,
                "format": scan.report.format,
                "token_scope": pol.token_scope,
                "policy": mapping,
                "plan": [[p.name, p.action.value, p.entity, p.kind] for p in plan],
                "partitions": [p.relpath for p in scan.partitions],
            },
        )
        results: dict[str, PartitionProtect] = {}
        tasks = []
        for info in scan.partitions:
            done = _finished(dst, info.relpath, info.digest)
            if done is not None:
                results[info.relpath] = done
                continue
            tasks.append(
                ProtectTask(src, info.relpath, dst, scan.report.format, scan.report, mapping, key,
                            chunk_rows, max_line_bytes, use_presidio)
            )  # fmt: skip
        for done in executor.map(protect_partition, tasks).gather():
            results[done.relpath] = done
        parts = tuple(results[p.relpath] for p in scan.partitions)
    except BastionError as exc:
        vault.audit.append(
            actor=vault.identity.name,
            action="data:protect",
            target=dst.rsplit("/", 1)[-1],
            outcome="error",
            details={**details, "error": type(exc).__name__},
        )
        raise
    listing = "".join(f"{p.relpath}\t{p.output_digest}\n" for p in parts)
    result = DatasetProtect(
        input=src,
        output=dst,
        format=scan.report.format,
        input_digest=scan.report.digest,
        output_digest="sha256:" + hashlib.sha256(listing.encode()).hexdigest(),
        rows=sum(p.rows for p in parts),
        token_scope=pol.token_scope,
        engine=executor.name,
        plan=plan,
        scan=scan,
        partitions=parts,
    )
    record_classification(vault.engine, scan.report, actor=vault.identity.name, sealer=vault.context.sealer)
    record_run(
        vault.engine,
        job="data.protect",
        inputs=[LineageDataset(*lineage_location(src), result.input_digest)],
        outputs=[LineageDataset(*lineage_location(dst), result.output_digest)],
        facets={
            "bastion_protect": {
                "token_scope": result.token_scope,
                "rows": result.rows,
                "actions": {p.name: p.action.value for p in plan},
                "engine": executor.name,
                "partitions": len(parts),
            }
        },
    )
    vault.audit.append(
        actor=vault.identity.name,
        action="data:protect",
        target=dst.rsplit("/", 1)[-1],
        outcome="ok",
        details={
            **details,
            "output_digest": result.output_digest,
            "token_scope": result.token_scope,
            "rows": result.rows,
            "partitions": len(parts),
            "resumed": result.resumed,
        },
    )
    return result


__all__ = [
    "DatasetProtect",
    "PartitionProtect",
    "ProtectTask",
    "policy_mapping",
    "protect_dataset",
    "protect_partition",
]
