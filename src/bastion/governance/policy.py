"""Policy as code: ``[policy.<env>]`` tables in ``bastion.toml``, evaluated against the inventory's evidence.

::

    [policy]
    threat_model = "SYSTEM.yaml"        # relative to the project home

    [policy.prod]
    require_signature = true            # BST-P001 the signed record verifies (always enforced: a version
                                        #   whose record fails is reported for this alone, fail closed)
    require_clean_scan = true           # BST-P002 inspected at push, never pushed with allow_unsafe
    max_epsilon = 8.0                   # BST-P003 trained with DP, ε ≤ 8
    min_robust_accuracy = 0.30          # BST-P004 latest audit: robust accuracy ≥ 0.30
    max_mia_tpr = 0.05                  # BST-P005 latest audit: membership TPR at 0.1 % FPR ≤ 0.05
    require_watermark = true            # BST-P006 a watermark commitment is recorded on the version
    forbid_unprotected_pii = true       # BST-P007 the training file's classification has no pii/secret column
    require_threat_model = true         # BST-P008 the threat model file is newer than the version

Fail closed: a version whose environment has no policy table fails (BST-P000), an empty table is rejected,
unknown rule names raise :class:`~bastion.errors.ConfigError`, and missing evidence (no audit, no ε, no
classification) is a violation, never a pass.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.config import ENVIRONMENTS
from bastion.errors import ConfigError, IntegrityError
from bastion.governance.findings import CheckReport, Issue, Rule
from bastion.governance.inventory import SCAN_CLEAN, SIGNATURE_VERIFIED, InventoryEntry

NO_POLICY = Rule("BST-P000", "no-policy", "The version's environment has no [policy.<env>] table")
SIGNATURE = Rule("BST-P001", "signature", "The version's signed record must verify")
CLEAN_SCAN = Rule("BST-P002", "clean-scan", "The version was inspected at push without an unsafe override")
EPSILON = Rule("BST-P003", "max-epsilon", "The model was trained with differential privacy within ε")
ROBUST = Rule("BST-P004", "min-robust-accuracy", "The latest audit's robust accuracy meets the floor")
MIA = Rule("BST-P005", "max-mia-tpr", "The latest audit's membership TPR at 0.1% FPR is under the ceiling")
WATERMARK = Rule("BST-P006", "watermark", "A watermark commitment is recorded on the version")
PII = Rule("BST-P007", "unprotected-pii", "The training data has no unprotected pii or secret column")
THREAT_MODEL = Rule("BST-P008", "threat-model", "A threat model newer than the version exists")
POLICY_RULES: tuple[Rule, ...] = (
    NO_POLICY,
    SIGNATURE,
    CLEAN_SCAN,
    EPSILON,
    ROBUST,
    MIA,
    WATERMARK,
    PII,
    THREAT_MODEL,
)

_BOOL_KEYS = {
    "require_signature",
    "require_clean_scan",
    "require_watermark",
    "forbid_unprotected_pii",
    "require_threat_model",
}
_FLOAT_KEYS = {"max_epsilon", "min_robust_accuracy", "max_mia_tpr"}


@dataclass(frozen=True)
class EnvPolicy:
    """The rules one environment enforces (``None``/``False``: not enforced)."""

    env: str
    require_signature: bool = False
    require_clean_scan: bool = False
    max_epsilon: float | None = None
    min_robust_accuracy: float | None = None
    max_mia_tpr: float | None = None
    require_watermark: bool = False
    forbid_unprotected_pii: bool = False
    require_threat_model: bool = False


@dataclass(frozen=True)
class Policy:
    envs: Mapping[str, EnvPolicy]
    threat_model: Path | None = None

    def for_env(self, env: str) -> EnvPolicy | None:
        return self.envs.get(env)


def parse_policy(section: Mapping[str, Any], *, home: Path) -> Policy:
    """Validate a ``[policy]`` table; unknown rules, wrong types and empty tables raise ConfigError."""
    envs: dict[str, EnvPolicy] = {}
    for env in ENVIRONMENTS:
        table = section.get(env)
        if table is None:
            continue
        if not isinstance(table, Mapping) or not table:
            raise ConfigError(f"bastion.toml [policy.{env}] must be a non-empty table of rules")
        unknown = sorted(set(table) - _BOOL_KEYS - _FLOAT_KEYS)
        if unknown:
            raise ConfigError(f"bastion.toml [policy.{env}]: unknown rule(s): {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for key, value in table.items():
            if key in _BOOL_KEYS and not isinstance(value, bool):
                raise ConfigError(f"bastion.toml [policy.{env}] {key} must be true or false")
            if key in _FLOAT_KEYS:
                if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                    raise ConfigError(f"bastion.toml [policy.{env}] {key} must be a non-negative number")
                value = float(value)
            values[key] = value
        envs[env] = EnvPolicy(env=env, **values)
    tm = section.get("threat_model")
    if tm is not None and not isinstance(tm, str):
        raise ConfigError("bastion.toml [policy] threat_model must be a path")
    path = None if tm is None else (Path(tm) if Path(tm).is_absolute() else home / tm)
    return Policy(envs=envs, threat_model=path)


def load_policy(settings: Any) -> Policy:
    return parse_policy(settings.section("policy"), home=settings.home)


def _bare(digest: str) -> str:
    return digest.split(":", 1)[1] if digest.startswith("sha256:") else digest


def _parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def evaluate(
    entry: InventoryEntry,
    *,
    policy: Policy,
    env: str | None = None,
    classifications: Callable[[str], Sequence[Mapping[str, Any]] | None] = lambda _d: None,
) -> list[Issue]:
    """The violations of one version against the policy of ``env`` (default: the version's environment)."""
    target_env = env or entry.env or ""
    where = f"registry:{entry.ref}"
    if entry.signature != SIGNATURE_VERIFIED:  # nothing else recorded about it can be trusted
        message = f"signature {entry.signature or 'missing'}: {entry.error or 'not verified'}"
        return [Issue(SIGNATURE, message, where)]
    rules = policy.for_env(target_env)
    if rules is None:
        return [Issue(NO_POLICY, f"no [policy.{target_env}] in bastion.toml: nothing may pass", where)]
    out: list[Issue] = []

    def fail(rule: Rule, message: str, **evidence: Any) -> None:
        out.append(Issue(rule, message, where, evidence=evidence))

    if rules.require_clean_scan and entry.scan != SCAN_CLEAN:
        fail(CLEAN_SCAN, f"scan state is {entry.scan!r}, not clean", scan=entry.scan)
    if rules.max_epsilon is not None:
        if entry.epsilon is None:
            fail(
                EPSILON,
                "not trained with differential privacy (no ε recorded)",
                max_epsilon=rules.max_epsilon,
            )
        elif entry.epsilon > rules.max_epsilon:
            fail(EPSILON, f"ε = {entry.epsilon:.4g} > {rules.max_epsilon:g}", epsilon=entry.epsilon)
    if rules.min_robust_accuracy is not None:
        if entry.robust_accuracy is None:
            fail(ROBUST, "no audit with an evasion result yet", min=rules.min_robust_accuracy)
        elif entry.robust_accuracy < rules.min_robust_accuracy:
            fail(
                ROBUST,
                f"robust accuracy {entry.robust_accuracy:.3f} < {rules.min_robust_accuracy:g}",
                robust_accuracy=entry.robust_accuracy,
            )
    if rules.max_mia_tpr is not None:
        if entry.mia_tpr_at_0_1_fpr is None:
            fail(MIA, "no audit with a membership result yet", max=rules.max_mia_tpr)
        elif entry.mia_tpr_at_0_1_fpr > rules.max_mia_tpr:
            fail(
                MIA,
                f"membership TPR@0.1%FPR {entry.mia_tpr_at_0_1_fpr:.3f} > {rules.max_mia_tpr:g}",
                tpr=entry.mia_tpr_at_0_1_fpr,
            )
    if rules.require_watermark and not entry.watermark:
        fail(WATERMARK, "no watermark commitment recorded on the version")
    if rules.forbid_unprotected_pii:
        _check_pii(entry, classifications, fail)
    if rules.require_threat_model:
        _check_threat_model(entry, policy.threat_model, fail)
    return out


def _check_pii(
    entry: InventoryEntry,
    classifications: Callable[[str], Sequence[Mapping[str, Any]] | None],
    fail: Callable[..., None],
) -> None:
    if not entry.lineage_roots:
        fail(PII, "no training data digest recorded: cannot show the data was protected")
        return
    for root in entry.lineage_roots:
        try:
            columns = classifications(_bare(root))
        except IntegrityError as exc:  # rows written or edited without the key ring count as none
            fail(PII, f"training data sha256:{_bare(root)[:16]}…: {exc}")
            continue
        if columns is None:
            fail(PII, f"training data sha256:{_bare(root)[:16]}… was never classified (bastion data scan)")
            continue
        exposed = sorted(str(c["column_name"]) for c in columns if c.get("label") in ("pii", "secret"))
        if exposed:
            fail(PII, f"training data has unprotected column(s): {', '.join(exposed)}", columns=exposed)


def _check_threat_model(entry: InventoryEntry, path: Path | None, fail: Callable[..., None]) -> None:
    if path is None:
        fail(THREAT_MODEL, "no [policy] threat_model file configured")
        return
    if not path.is_file():
        fail(THREAT_MODEL, f"threat model {path.name} does not exist")
        return
    created = _parse_time(entry.created_at)
    modified = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
    if created is not None and modified < created:
        fail(THREAT_MODEL, f"threat model {path.name} is older than the version ({entry.created_at})")


def catalog_lookup(vault: Any) -> Callable[[str], Sequence[Mapping[str, Any]] | None]:
    """Column classifications by file digest (bare hex), read once from the data catalog; a digest whose
    rows fail their seal raises IntegrityError when looked up (no sealer: nothing counts)."""
    from bastion.data.catalog import catalog_entries, check_classification

    by_digest: dict[str, list[Mapping[str, Any]]] = {}
    stored: dict[str, str] = {}
    for e in catalog_entries(vault.engine):
        by_digest.setdefault(_bare(str(e["digest"])), []).append(e)
        stored[_bare(str(e["digest"]))] = str(e["digest"])
    ctx = getattr(vault, "context", None)

    def lookup(digest: str) -> Sequence[Mapping[str, Any]] | None:
        if digest not in by_digest:
            return None
        if ctx is None:
            raise IntegrityError("the classification cannot be checked without the key ring")
        check_classification(vault.engine, ctx.sealer, stored[digest])
        return by_digest[digest]

    return lookup


def check_versions(
    *,
    vault: Any,
    refs: Sequence[str] | None = None,
    env: str | None = None,
    now: dt.datetime | None = None,
) -> CheckReport:
    """Evaluate the project's policy on ``refs`` (default: every model version the caller may read)."""
    from bastion.governance.inventory import inventory

    policy = load_policy(vault.settings)
    entries = [e for e in inventory(vault=vault, kind="model", refs=refs, now=now) if e.kind == "model"]
    lookup = catalog_lookup(vault)
    issues: list[Issue] = []
    for e in entries:
        issues.extend(evaluate(e, policy=policy, env=env, classifications=lookup))
    return CheckReport(
        issues=tuple(issues), checked=tuple(f"registry:{e.ref}" for e in entries), rules=POLICY_RULES
    )


def enforce(*, vault: Any, ref: str, env: str) -> None:
    """Raise PolicyViolation unless ``ref`` satisfies the policy of ``env`` (the promote hook)."""
    from bastion.errors import PolicyViolation

    report = check_versions(vault=vault, refs=[ref], env=env)
    if not report.ok:
        first = report.issues[0]
        raise PolicyViolation(
            f"{ref} fails the {env} policy: {first.rule.id} {first.message}"
            + (f" (+{len(report.issues) - 1} more)" if len(report.issues) > 1 else ""),
            hint=f"run 'bastion check {ref} --env {env}' for every violation",
        )


def gate_promotion(*, vault: Any, ref: str, to: str) -> str:
    """The promote hook: the exact ``NAME:VERSION`` to promote once it satisfies ``[policy.<to>]``.

    ``ref`` is resolved once (``NAME`` or ``NAME@ENV`` to one immutable version) and that version is both
    checked and promoted, so a push racing the promotion cannot slip an unchecked version through. Where
    bastion.toml has no table for ``to`` nothing is enforced (projects without a policy keep working).
    """
    if load_policy(vault.settings).for_env(to) is None:
        return ref
    version = vault.show(ref)
    exact = f"{version.name}:{version.version}"
    enforce(vault=vault, ref=exact, env=to)
    return exact


__all__ = [
    "POLICY_RULES",
    "EnvPolicy",
    "Policy",
    "catalog_lookup",
    "check_versions",
    "enforce",
    "evaluate",
    "gate_promotion",
    "load_policy",
    "parse_policy",
]
