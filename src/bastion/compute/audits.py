"""``bastion audit --models GLOB``: one adversarial audit per registry model version, on an executor.

The driver (the process that holds the vault) does everything that needs a key:

1. lists the model versions whose ``NAME:VERSION`` matches the glob (:func:`match_versions`);
2. pulls each one (decrypt and verify, as ``bastion audit --model NAME:VERSION`` does) into a private
   temporary directory and reads the verified plaintext files into the task;
3. after the tasks ran, checks that each result belongs to the task it asked for (name, version, manifest
   digest and the SHA-256 of the model bytes it sent) and only then hands it to ``record`` (which writes the
   report and the attested ``audit`` annotation through the vault, still in the driver);
4. writes one ``audit:run`` audit-log entry for the job (engine, pattern, versions, outcome).

A worker receives the model's verified plaintext files, the evaluation rows and the audit settings; it never
receives the key ring, the passphrase, a data key or a token, and it writes nothing to the registry. It loads
the model once and runs every requested attack family on it (the task keeps the model loaded for the whole
audit). The plaintext weights travel in the task payload: the local pool pickles them through a pipe; on Dask
or Spark use a private local cluster (127.0.0.1) or a cluster you trust over TLS, as for any bastion task.
The binding check catches a result returned for another task (a mix-up, a stale or replayed result), not a
dishonest worker: whoever controls a worker can report any grade, and the driver attests what it was told.

A version that cannot be pulled, loaded or audited is reported with its error and the others still finish.
Results do not depend on the engine or the number of workers: every task gets the same seed and the job's
start time (``now``) as the report's ``created`` stamp; only the per-family ``seconds`` differ between runs.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bastion.compute.interface import Executor
from bastion.errors import BastionError, IntegrityError, InvalidInput, NotFound

if TYPE_CHECKING:
    from bastion.adversarial.audit import AuditReport
    from bastion.adversarial.loading import AuditData

#: the most model bytes one task may carry (the audit loads them into memory in the worker)
MAX_TASK_MODEL_BYTES = 2 * 1024 * 1024 * 1024
_ERROR_CHARS = 300


@dataclass(frozen=True)
class AuditSettings:
    """What every version's audit runs with (the same for all tasks of a job)."""

    attacks: tuple[str, ...] = ("evasion", "membership", "extraction", "poisoning")
    budget: str = "quick"
    seed: int = 0
    clip: tuple[float, float] | None = None
    n_classes: int | None = None


@dataclass(frozen=True)
class AuditTask:
    """One version's audit as it travels to a worker: verified plaintext, rows, settings; no key."""

    name: str
    version: int
    manifest_digest: str
    files: tuple[tuple[str, bytes], ...] = field(repr=False)
    model_sha256: str
    data: AuditData = field(repr=False)
    settings: AuditSettings
    created: str  # ISO time stamp of the job: every report of the job carries the same one

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"


@dataclass(frozen=True)
class TaskResult:
    """What a worker sends back: the binding it audited and the report, or a one-line error."""

    name: str
    version: int
    manifest_digest: str
    model_sha256: str
    report: AuditReport | None
    error: str | None


@dataclass(frozen=True)
class VersionAudit:
    """One version's outcome in the driver: its report (None when it failed) and what ``record`` did."""

    ref: str
    manifest_digest: str
    report: AuditReport | None = None
    error: str | None = None
    recorded: Any = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "manifest_digest": self.manifest_digest,
            "grade": None if self.report is None else self.report.grade,
            "error": self.error,
        }


@dataclass(frozen=True)
class AuditRun:
    """The job: every matched version in ``NAME:VERSION`` order, the engine and the pattern."""

    pattern: str
    engine: str
    versions: tuple[VersionAudit, ...]

    @property
    def failed(self) -> tuple[VersionAudit, ...]:
        return tuple(v for v in self.versions if not v.ok)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pattern": self.pattern,
            "engine": self.engine,
            "versions": [v.to_dict() for v in self.versions],
            "failed": len(self.failed),
        }


Recorder = Callable[[VersionAudit], Any]


def match_versions(versions: Sequence[Any], pattern: str) -> list[Any]:
    """The model versions a glob selects, sorted by name then version number.

    A pattern without ``:`` matches names (``digits*`` is every version of every model whose name starts
    with ``digits``); with ``:`` it matches ``NAME:VERSION`` (``digits:*``, ``*:3``, ``fraud-?:1[0-9]``).
    ``fnmatch`` rules, case-sensitive (registry names are lowercase).
    """
    pattern = pattern.strip()
    if not pattern:
        raise InvalidInput("--models needs a glob over NAME:VERSION (e.g. 'digits*' or '*:3')")
    on_ref = ":" in pattern
    chosen = [
        v
        for v in versions
        if fnmatch.fnmatchcase(f"{v.name}:{v.version}" if on_ref else str(v.name), pattern)
    ]
    return sorted(chosen, key=lambda v: (str(v.name), int(v.version)))


def _one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:_ERROR_CHARS] if text else type(exc).__name__


def _model_sha256(files: Sequence[tuple[str, bytes]]) -> str:
    h = hashlib.sha256()
    for rel, data in files:
        h.update(len(rel.encode()).to_bytes(8, "big") + rel.encode() + len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()


def _audit_loaded(task: AuditTask, directory: Path) -> AuditReport:
    from bastion.adversarial.audit import AuditTarget, run_audit
    from bastion.adversarial.loading import describe_model, open_model, to_model_space

    s, ds = task.settings, task.data
    classes = s.n_classes or int(ds.y.max()) + 1
    if classes < 2:
        raise InvalidInput("the data holds a single class; pass --n-classes")
    with open_model(
        str(directory), input_shape=ds.x.shape[1:], n_classes=classes, clip_values=s.clip
    ) as loaded:
        ds = to_model_space(ds, loaded)
        try:
            loaded.adapter.predict(ds.x[:1])
        except (RuntimeError, ValueError) as exc:
            raise InvalidInput(f"{task.ref} cannot take the data's rows ({type(exc).__name__})") from exc
        held = ds.x if ds.member is None else ds.x[~ds.member]
        held_y = ds.y if ds.member is None else ds.y[~ds.member]
        description = {**describe_model(loaded), "reference": task.ref, "registry_ref": task.ref}
        target = AuditTarget(
            model=loaded.adapter,
            x=held,
            y=held_y,
            x_train=None if ds.member is None else ds.x[ds.member],
            y_train=None if ds.member is None else ds.y[ds.member],
            trainer=loaded.trainer,
            description={**description, "data": {"source": ds.source}},
        )
        stamp = dt.datetime.fromisoformat(task.created)
        return run_audit(target=target, attacks=s.attacks, budget=s.budget, seed=s.seed, now=lambda: stamp)


def audit_version(task: AuditTask) -> TaskResult:
    """Worker side: write the verified files to a private directory, load the model once, audit it."""
    try:
        import torch

        torch.set_num_threads(1)  # the single audit's setting: small models, fair to a shared machine
    except ImportError:
        pass
    report, error = None, None
    digest = _model_sha256(task.files)
    root: Path | None = None
    try:
        if digest != task.model_sha256:
            raise IntegrityError("the model bytes changed in transit")
        with tempfile.TemporaryDirectory(prefix="bastion-audit-") as tmp:  # 0700
            root = Path(tmp) / "model"
            for rel, data in task.files:
                path = (root / rel).resolve()
                if root.resolve() not in path.parents:
                    raise InvalidInput(f"{task.ref}: file path {rel!r} leaves the model directory")
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                path.write_bytes(data)
                path.chmod(0o600)
            report = _audit_loaded(task, root)
    except Exception as exc:  # a task boundary: one version's failure is that version's result
        error = _one_line(exc)
        if root is not None:
            error = error.replace(str(root), task.ref)  # the same message on every worker
    return TaskResult(task.name, task.version, task.manifest_digest, digest, report, error)


def _task(vault: Any, version: Any, data: AuditData, settings: AuditSettings, created: str) -> AuditTask:
    """Pull (decrypt + verify) one version in the driver and carry its plaintext files."""
    ref = f"{version.name}:{version.version}"
    with tempfile.TemporaryDirectory(prefix="bastion-audit-") as tmp:
        pulled = vault.pull(ref, out=Path(tmp) / "artifact")
        if pulled.manifest_digest != version.manifest_digest:
            raise IntegrityError(f"{ref}: the pulled version is not the listed one")
        root = Path(tmp) / "artifact"
        files = []
        total = 0
        for p in sorted(root.rglob("*")):
            if p.is_file() and not p.is_symlink():
                total += p.stat().st_size
                if total > MAX_TASK_MODEL_BYTES:
                    raise InvalidInput(f"{ref}: larger than {MAX_TASK_MODEL_BYTES} bytes for one task")
                files.append((p.relative_to(root).as_posix(), p.read_bytes()))
    return AuditTask(
        name=str(version.name),
        version=int(version.version),
        manifest_digest=str(version.manifest_digest),
        files=tuple(files),
        model_sha256=_model_sha256(files),
        data=data,
        settings=settings,
        created=created,
    )


def _bound(task: AuditTask, result: TaskResult) -> VersionAudit:
    """The result, accepted only if it is the answer to ``task``."""
    binding = (result.name, result.version, result.manifest_digest, result.model_sha256)
    expected = (task.name, task.version, task.manifest_digest, task.model_sha256)
    if binding != expected:
        return VersionAudit(task.ref, task.manifest_digest, error="IntegrityError: result for another task")
    if result.error is not None or result.report is None:
        return VersionAudit(task.ref, task.manifest_digest, error=result.error or "no report")
    if result.report.model.get("registry_ref") != task.ref:
        return VersionAudit(
            task.ref, task.manifest_digest, error="IntegrityError: report names another model"
        )
    return VersionAudit(task.ref, task.manifest_digest, report=result.report)


def _log(vault: Any, run: AuditRun, executor: Executor, settings: AuditSettings, data: AuditData) -> None:
    vault.audit.append(
        actor=vault.identity.name,
        action="audit:run",
        target=run.pattern,
        outcome="ok" if not run.failed else "error",
        details={
            "engine": executor.name,
            "workers": executor.workers,
            "versions": {v.ref: (v.report.grade if v.report else "failed") for v in run.versions},
            "failed": len(run.failed),
            "attacks": list(settings.attacks),
            "budget": settings.budget,
            "seed": settings.seed,
            "data": data.source,
            "data_sha256": rows_digest(data),
        },
    )


def audit_models(
    *,
    vault: Any,
    models: str,
    data: AuditData,
    executor: Executor,
    settings: AuditSettings | None = None,
    record: Recorder | None = None,
    batch: int | None = None,
    now: Callable[[], dt.datetime] | None = None,
) -> AuditRun:
    """Audit every model version matching ``models`` (see :func:`match_versions`) on ``executor``.

    ``vault`` is a local :class:`~bastion.vault.Vault` (its key ring decrypts the versions and seals the log
    entry). ``record(version_audit)`` runs in this process for each version whose audit succeeded and is
    bound to its task, in ``NAME:VERSION`` order; its return value is kept as ``recorded`` (an exception
    there marks that version failed). ``batch`` versions are held in memory at once (default: twice the
    executor's workers).
    """
    if not hasattr(vault, "context"):
        raise InvalidInput("--models needs a local project: the driver decrypts the versions and attests")
    vault.access.check(vault.identity, "audit:run")
    cfg = settings or AuditSettings()
    chosen = match_versions(vault.list(kind="model"), models)
    if not chosen:
        raise NotFound(f"no model version matches {models!r}")
    created = (now or (lambda: dt.datetime.now(dt.UTC)))().isoformat(timespec="seconds")
    size = batch or 2 * max(1, executor.workers)
    out: list[VersionAudit] = []
    for start in range(0, len(chosen), size):
        jobs: list[tuple[AuditTask, Any]] = []
        for version in chosen[start : start + size]:
            try:
                task = _task(vault, version, data, cfg, created)
            except BastionError as exc:
                ref = f"{version.name}:{version.version}"
                out.append(VersionAudit(ref, str(version.manifest_digest), error=_one_line(exc)))
                continue
            # one job per version, submitted as soon as it is decrypted: workers start while the next pulls
            try:
                jobs.append((task, executor.map(audit_version, [task])))
            except Exception as exc:  # a pool broken by an earlier task (a worker that died): this one fails
                out.append(VersionAudit(task.ref, task.manifest_digest, error=_one_line(exc)))
        for task, job in jobs:
            try:
                (result,) = job.gather()
            except BastionError as exc:  # the engine lost the task (e.g. a worker died on every retry)
                out.append(VersionAudit(task.ref, task.manifest_digest, error=_one_line(exc)))
                continue
            done = _bound(task, result)
            if done.ok and record is not None:
                try:
                    done = VersionAudit(done.ref, done.manifest_digest, done.report, recorded=record(done))
                except BastionError as exc:
                    done = VersionAudit(done.ref, done.manifest_digest, done.report, error=_one_line(exc))
            out.append(done)
    out.sort(key=lambda v: (v.ref.rsplit(":", 1)[0], int(v.ref.rsplit(":", 1)[1])))
    run = AuditRun(pattern=models, engine=executor.name, versions=tuple(out))
    _log(vault, run, executor, cfg, data)
    return run


def rows_digest(data: AuditData) -> str:
    """SHA-256 over the evaluation rows (for callers that record which data an audit ran on)."""
    h = hashlib.sha256()
    for a in (data.x, data.y, data.member):
        if a is not None:
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


__all__ = [
    "MAX_TASK_MODEL_BYTES",
    "AuditRun",
    "AuditSettings",
    "AuditTask",
    "TaskResult",
    "VersionAudit",
    "audit_models",
    "audit_version",
    "match_versions",
]
