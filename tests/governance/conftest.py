"""A governed project: a home with a policy, a compliant model version and helpers to seed violations."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bastion.crypto.kdf import KdfParams
from bastion.data.catalog import record_classification
from bastion.data.scan import scan_file
from bastion.errors import UnsafeArtifact
from bastion.governance.evidence import attest_audit
from bastion.vault import Vault, init_project

_RULES = """require_signature = true
require_clean_scan = true
max_epsilon = 8.0
min_robust_accuracy = 0.30
max_mia_tpr = 0.05
require_watermark = true
forbid_unprotected_pii = true
require_threat_model = true
"""
POLICY = f"""
[policy]
threat_model = "SYSTEM.yaml"

[policy.prod]
{_RULES}
[policy.dev]
{_RULES}"""

SYSTEM_YAML = """name: fraud-scoring
owner: risk-team
generative: false
exposure: [public_api]
data_classes: [pii]
training: {federated: false, third_party_data: true}
agents: false
assets: [fraud]
"""


def refuse_pickles(path: Path) -> None:
    """A real (small) inspector on the vault's plug-in seam: refuses ``.pkl`` files."""
    candidates = [path] if path.is_file() else list(path.rglob("*"))
    for p in candidates:
        if p.suffix == ".pkl":
            raise UnsafeArtifact(f"{p.name}: pickle files are refused")


def audit_note(*, robust: float = 0.55, tpr: float = 0.01, grade: str = "B") -> dict[str, Any]:
    """The shape ``bastion audit --push`` stores (``AuditReport.summary()``)."""
    return {
        "created": "2026-12-01T00:00:00+00:00",
        "budget": "quick",
        "seed": 0,
        "grade": grade,
        "reasons": [],
        "families": {
            "evasion": {
                "status": "ok",
                "grade": grade,
                "metrics": {"clean_accuracy": 0.95, "robust_accuracy": robust},
            },
            "membership": {"status": "ok", "grade": "A", "metrics": {"auc": 0.52, "tpr_at_0_1_fpr": tpr}},
            "extraction": {"status": "ok", "grade": "C", "metrics": {"random_fidelity": 0.62}},
        },
        "report_sha256": "0" * 64,
    }


class Project:
    def __init__(self, home: Path, vault: Vault, tmp: Path) -> None:
        self.home, self.vault, self.tmp = home, vault, tmp
        self.clean_csv = tmp / "train_clean.csv"
        self.clean_csv.write_text("amount,merchant\n" + "".join(f"{i}.5,shop{i % 7}\n" for i in range(60)))
        self.pii_csv = tmp / "train_pii.csv"
        self.pii_csv.write_text("amount,email\n" + "".join(f"{i}.5,user{i}@example.com\n" for i in range(60)))
        for f in (self.clean_csv, self.pii_csv):
            record_classification(
                vault.engine,
                scan_file(path=f, use_presidio=False),
                actor="owner",
                sealer=vault.context.sealer,
            )

    def push_model(
        self,
        name: str,
        *,
        epsilon: float | None = 2.0,
        data: Path | None = None,
        audit: dict[str, Any] | None = None,
        watermark: bool = True,
        allow_unsafe: bool = False,
        env: str = "dev",
        ledger_dataset: str | None = None,
    ) -> str:
        d = self.tmp / f"art-{name}-{os.urandom(4).hex()}"
        d.mkdir()
        (d / "model.safetensors").write_bytes(os.urandom(256))
        data = data or self.clean_csv
        meta: dict[str, Any] = {
            "dataset": data.name,
            "dataset_digest": hashlib.sha256(data.read_bytes()).hexdigest(),
            "private": epsilon is not None,
            "epsilon": epsilon,
            "delta": 1e-5 if epsilon is not None else None,
            "accuracy": 0.95,
            "architecture": {"kind": "mlp", "hidden": [64]},
        }
        if ledger_dataset is not None:
            meta["ledger_dataset"] = ledger_dataset
        if epsilon is not None:
            meta["spend_id"] = self.spend(epsilon)
        v = self.vault.push(
            d, name=name, env=env, metadata=meta, allow_unsafe=allow_unsafe, classification="confidential"
        )
        ref = v.ref
        self.record_training(ref, data=data, meta=meta)
        note = audit if audit is not None else audit_note()
        self.vault.annotate(ref, namespace="audit", data=attest_audit(self.vault, ref, note))
        if watermark:
            self.watermark(ref)
        self.touch_threat_model()
        return ref

    # Evidence the way bastion makes it (the gate counts nothing else, issue 11 F2).

    def spend(self, epsilon: float) -> str:
        """A settled privacy-ledger spend of ``epsilon`` (what a DP training run charges)."""
        from bastion.privacy.ledger import ledger_for_vault

        ledger = ledger_for_vault(self.vault)
        key = "governance-fixture-train"
        if key not in ledger.datasets():
            ledger.set_budget(key, epsilon=1e6, delta=0.5)
        with ledger.charge(datasets=key, epsilon=epsilon, delta=1e-5, kind="train") as reservation:
            ledger.settle(reservation, epsilon=epsilon, delta=1e-5)
        return str(reservation.spend_id)

    def record_training(self, ref: str, *, data: Path, meta: dict[str, Any]) -> None:
        """The lineage run and log entry :func:`bastion.privacy.training.record_training` writes."""
        from bastion.privacy.training import ledger_key
        from bastion.store.lineage import FILE_NAMESPACE, REGISTRY_NAMESPACE, LineageDataset, record_run

        record_run(
            self.vault.engine,
            job="privacy.train",
            inputs=[LineageDataset(FILE_NAMESPACE, str(data.resolve()), ledger_key(data))],
            outputs=[LineageDataset(REGISTRY_NAMESPACE, ref, None)],
        )
        self.vault.audit.append(
            actor=self.vault.identity.name,
            action="privacy:train",
            target=str(data.name),
            outcome="ok",
            details={k: meta.get(k) for k in ("private", "epsilon", "delta", "accuracy", "spend_id")},
        )

    def commitment(self, ref: str) -> str:
        """The watermark commitment recorded on ``ref``."""
        return str(self.vault.annotations(ref, namespace="watermark")[-1].data["commitment"])

    def watermark(self, ref: str) -> str:
        """A logged watermark commitment (``log_commitment``) annotated on ``ref``; returns it."""
        from bastion.watermark.commitment import (
            WatermarkRecord,
            annotate_version,
            commitment_of,
            log_commitment,
        )
        from bastion.watermark.triggers import TriggerSpec

        spec = TriggerSpec(input_shape=(1, 8, 8), n_classes=10)
        digest = hashlib.sha256(os.urandom(16)).hexdigest()
        record = WatermarkRecord(
            key_id="wm-1",
            spec=spec,
            trigger_digest=digest,
            commitment=commitment_of(key_id="wm-1", spec=spec, trigger_digest=digest),
            created_at="2026-12-01T00:00:00+00:00",
            target=ref,
        )
        annotate_version(self.vault, log_commitment(self.vault, record), ref)
        return record.commitment

    def touch_threat_model(self, *, age_s: float = 0.0) -> None:
        p = self.home / "SYSTEM.yaml"
        p.write_text(SYSTEM_YAML)
        t = p.stat().st_mtime + 5 - age_s
        os.utime(p, (t, t))


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    home = tmp_path / "home"
    v = init_project(
        home=home,
        passphrase=os.environ["BASTION_PASSPHRASE"],
        kdf=KdfParams.unsafe_fast(),
        inspectors=[refuse_pickles],
    )
    with (home / "bastion.toml").open("a", encoding="utf-8") as fh:
        fh.write(POLICY)
    v.close()
    from bastion.vault import open_vault

    vault = open_vault(home=home, passphrase=os.environ["BASTION_PASSPHRASE"], inspectors=[refuse_pickles])
    monkeypatch.setenv("BASTION_HOME", str(home))
    yield Project(home, vault, tmp_path)
    vault.close()


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    def _write(rel: str, text: str) -> Path:
        p = tmp_path / "code" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
        return p

    return _write


@pytest.fixture(name="audit_note")
def _audit_note() -> Callable[..., dict[str, Any]]:
    return audit_note
