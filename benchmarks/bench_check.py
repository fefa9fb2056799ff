"""Benchmark of the governance gate (issue 15): ``bastion check`` over a project with N model versions and a
code tree of F files, through the CLI entry point, against the 30 s budget; the code-review part is also
timed against bandit alone on the same tree (its library API, same run), the anchor for the code engine.

    python benchmarks/bench_check.py                       # 1,000 versions, 200 files
    python benchmarks/bench_check.py --versions 100 --files 50   # quick
    python benchmarks/bench_check.py --deploy-only --checkov /tmp/checkov-venv/bin/checkov

``--checkov BIN`` also runs ``bastion check-deploy`` and checkov (its own virtual environment: its pins
conflict with ours) on the same seeded manifests and Dockerfile: per seeded problem, who reports it, and the
wall time of each (same run).

The project is built once (pushes with a real inspector, audit and watermark annotations, one classified
training file); building it is not timed. Each version carries the evidence a compliant model has, and every
tenth version a seeded violation, so the gate has real work on both paths.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 30.0

POLICY = """
[policy]
threat_model = "SYSTEM.yaml"

[policy.dev]
require_signature = true
require_clean_scan = true
max_epsilon = 8.0
min_robust_accuracy = 0.30
max_mia_tpr = 0.05
require_watermark = true
forbid_unprotected_pii = true
require_threat_model = true
"""

SNIPPETS = [
    "import torch\n\ndef load(p):\n    return torch.load(p, weights_only=True)\n",
    "import json\n\ndef read(p):\n    with open(p) as fh:\n        return json.load(fh)\n",
    "import numpy as np\n\ndef arr(p):\n    return np.load(p)\n",
    "import yaml\n\ndef cfg(p):\n    return yaml.safe_load(open(p))\n",
    "import pickle\n\ndef legacy(p):\n    return pickle.load(open(p, 'rb'))\n",  # seeded finding
]


def build_project(tmp: Path, n_versions: int) -> Path:
    from bastion.crypto.kdf import KdfParams
    from bastion.data.catalog import record_classification
    from bastion.data.scan import scan_file
    from bastion.vault import init_project

    def inspector(path: Path) -> None:  # a real (small) inspector on the seam: refuse pickles
        for p in [path] if path.is_file() else path.rglob("*"):
            if p.suffix == ".pkl":
                from bastion.errors import UnsafeArtifact

                raise UnsafeArtifact("pickle refused")

    home = tmp / "home"
    vault = init_project(
        home=home,
        passphrase=os.environ["BASTION_PASSPHRASE"],
        kdf=KdfParams.unsafe_fast(),
        inspectors=[inspector],
    )
    with (home / "bastion.toml").open("a") as fh:
        fh.write(POLICY)
    data = tmp / "train.csv"
    data.write_text("amount,merchant\n" + "".join(f"{i}.5,shop{i % 7}\n" for i in range(200)))
    record_classification(vault.engine, scan_file(path=data, use_presidio=False), actor="owner")
    digest = hashlib.sha256(data.read_bytes()).hexdigest()
    art = tmp / "art"
    art.mkdir()
    t0 = time.perf_counter()
    for i in range(n_versions):
        (art / "model.safetensors").write_bytes(os.urandom(128))
        meta = {
            "dataset": "train.csv",
            "dataset_digest": digest,
            "private": True,
            "epsilon": 2.0 + (i % 10 == 3) * 20,
        }
        ref = vault.push(art, name=f"model-{i % 100:03d}", metadata=meta).ref
        fam = {
            "evasion": {"metrics": {"robust_accuracy": 0.5}},
            "membership": {"metrics": {"tpr_at_0_1_fpr": 0.01}},
        }
        vault.annotate(ref, namespace="audit", data={"grade": "B", "families": fam})
        vault.annotate(ref, namespace="watermark", data={"commitment": "ab" * 32})
        if (i + 1) % 200 == 0:
            print(
                f"  built {i + 1}/{n_versions} versions ({time.perf_counter() - t0:.0f} s)", file=sys.stderr
            )
    vault.close()
    (home / "SYSTEM.yaml").write_text("name: bench\nexposure: [internal_batch]\n")
    return home


def build_tree(tmp: Path, n_files: int) -> Path:
    root = tmp / "code"
    for i in range(n_files):
        d = root / f"pkg{i // 20}"
        d.mkdir(parents=True, exist_ok=True)
        body = SNIPPETS[i % len(SNIPPETS)] + "".join(
            f"\n\ndef helper_{k}(x):\n    return x * {k}\n" for k in range(40)
        )
        (d / f"mod{i}.py").write_text(body)
    return root


CPU: dict[str, float] = {}


def timed_cli(args: list[str]) -> tuple[float, int, dict]:
    """Wall seconds, exit code and JSON output; the process's CPU seconds go to ``CPU[args[0]…]``."""
    from bastion.cli import run

    buf = io.StringIO()
    c0, t0 = time.process_time(), time.perf_counter()
    with contextlib.redirect_stdout(buf):
        code = run(args)
    wall = time.perf_counter() - t0
    CPU[" ".join(args[:2])] = time.process_time() - c0
    return wall, code, json.loads(buf.getvalue())


def bandit_alone(tree: Path) -> float:
    import logging

    from bandit.core import config, manager

    logging.getLogger("bandit").setLevel(logging.ERROR)
    t0 = time.perf_counter()
    mgr = manager.BanditManager(config.BanditConfig(), "file", quiet=True)
    mgr.discover_files([str(tree)], recursive=True)
    mgr.run_tests()
    return time.perf_counter() - t0


K8S_BASE = """apiVersion: apps/v1
kind: Deployment
metadata: {name: fraud, namespace: ml}
spec:
  template:
    metadata: {labels: {app: fraud}}
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 10001}
      @HOSTNS@
      containers:
      - name: gateway
        image: @IMAGE@
        args: @ARGS@
        securityContext: {readOnlyRootFilesystem: @RO@, @PRIV@ @CAPS@}
        env: @ENV@
        @RES@
        volumeMounts: [{name: models, mountPath: /models, readOnly: @MRO@}]
      volumes: [{name: models, persistentVolumeClaim: {claimName: models}} @HOSTPATH@]
---
apiVersion: v1
kind: Service
metadata: {name: fraud, namespace: ml}
spec: {type: LoadBalancer, selector: {app: fraud}}
@NETPOL@"""
NETPOL_DOC = """---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: ml}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}"""
LIVE = "sk-live-" + "9f8e7d6c5b4a39281726354a"
DEFAULTS = {
    "@HOSTNS@": "",
    "@IMAGE@": "registry.example/gw:1.0@sha256:" + "a" * 64,
    "@ARGS@": "[serve, --api-key-file, /run/secrets/key]",
    "@RO@": "true",
    "@PRIV@": "",
    "@CAPS@": "",
    "@ENV@": "[]",
    "@RES@": "",
    "@MRO@": "true",
    "@HOSTPATH@": "",
    "@NETPOL@": NETPOL_DOC,
}
SEEDED = {  # rule -> (replacements, checkov check ids that cover the same problem)
    "BST-D001": ({"@PRIV@": "privileged: true,"}, {"CKV_K8S_16"}),
    "BST-D002": (
        {"securityContext: {runAsNonRoot: true, runAsUser: 10001}": "securityContext: {runAsUser: 0}"},
        {"CKV_K8S_23", "CKV_K8S_40"},
    ),
    "BST-D003": ({"@RO@": "false"}, {"CKV_K8S_22"}),
    "BST-D004": ({"@HOSTPATH@": ", {name: logs, hostPath: {path: /var/log}}"}, {"CKV_K8S_27"}),
    "BST-D005": ({"@CAPS@": "capabilities: {add: [SYS_ADMIN]}"}, {"CKV_K8S_25", "CKV_K8S_39"}),
    "BST-D006": ({"@NETPOL@": "", "namespace: ml}": "namespace: ml2}"}, {"CKV2_K8S_6"}),
    "BST-D007": ({"@IMAGE@": "vllm/vllm-openai:latest"}, {"CKV_K8S_14", "CKV_K8S_43"}),
    "BST-D008": ({"@ENV@": "[{name: UPSTREAM_KEY, value: " + LIVE + "}]"}, {"CKV_K8S_35"}),
    "BST-D009": ({"@ARGS@": "[jupyter, lab, \"--ServerApp.token=''\"]"}, set()),
    "BST-D010": ({"@MRO@": "false"}, set()),
    "BST-D011": (
        {"@HOSTNS@": "hostIPC: true", "@RES@": "resources: {limits: {nvidia.com/gpu: 1}}"},
        {"CKV_K8S_18"},
    ),
}


def _manifest(changes: dict[str, str]) -> str:
    text = K8S_BASE
    for k, v in changes.items():
        if k not in DEFAULTS:
            text = text.replace(k, v)
    for k, v in {**DEFAULTS, **{k: v for k, v in changes.items() if k in DEFAULTS}}.items():
        text = text.replace(k, v)
    return text


def deploy_vs_checkov(checkov: str) -> None:
    import subprocess

    with tempfile.TemporaryDirectory() as td:
        d = Path(td)
        for rule, (changes, _) in SEEDED.items():
            (d / f"{rule}.yaml").write_text(_manifest(changes))
        (d / "compliant.yaml").write_text(_manifest({}))
        files = sorted(str(p) for p in d.glob("*.yaml"))
        t_ours, code, ours = timed_cli(["check-deploy", *files, "--format", "json"])
        t0 = time.perf_counter()
        proc = subprocess.run(
            [checkov, "-d", str(d), "--framework", "kubernetes", "secrets", "-o", "json", "--quiet"],
            capture_output=True,
            text=True,
            check=False,
        )
        t_ckv = time.perf_counter() - t0
        raw = json.loads(proc.stdout)
        failed: dict[str, set[str]] = {}
        for r in raw if isinstance(raw, list) else [raw]:
            for c in r["results"]["failed_checks"]:
                failed.setdefault(Path(c["file_path"]).name, set()).add(c["check_id"])
        ours_by_file: dict[str, set[str]] = {}
        for i in ours["issues"]:
            ours_by_file.setdefault(Path(i["target"]).name, set()).add(i["rule"])
        print("\ncheck-deploy vs checkov, same seeded manifests (one problem per file), same run:")
        print("| seeded problem | bastion finds it | checkov finds it (checks) |")
        print("|---|---|---|")
        both = 0
        for rule, (_, ckv_ids) in SEEDED.items():
            f = f"{rule}.yaml"
            o = rule in ours_by_file.get(f, set())
            extra = failed.get(f, set()) - failed.get("compliant.yaml", set())
            hit = sorted(ckv_ids & extra)  # a mapped check that fails here and not on the compliant file
            both += o and bool(hit)
            print(f"| {rule} | {'yes' if o else 'NO'} | {', '.join(hit) if hit else 'no'} |")
        comp_ours = sorted(ours_by_file.get("compliant.yaml", set()))
        comp_ckv = sorted(failed.get("compliant.yaml", set()))
        print(f"compliant file: bastion {comp_ours or 'nothing'}; checkov {len(comp_ckv)} failed: {comp_ckv}")
        print(f"both report {both}/{len(SEEDED)} seeded problems")
        print(
            f"time: bastion check-deploy {t_ours:.2f} s (in-process, exit {code}); checkov {t_ckv:.2f} s "
            f"(subprocess incl. start-up) -> checkov / bastion = {t_ckv / t_ours:.1f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--versions", type=int, default=1000)
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--checkov", help="checkov executable (in its own virtual environment)")
    ap.add_argument("--deploy-only", action="store_true")
    args = ap.parse_args()
    if args.checkov:
        deploy_vs_checkov(args.checkov)
    if args.deploy_only:
        return
    os.environ.setdefault("BASTION_PASSPHRASE", "bench-passphrase-not-secret")
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        t0 = time.perf_counter()
        home = build_project(tmp, args.versions)
        tree = build_tree(tmp, args.files)
        print(
            f"setup (not timed): {args.versions} versions, {args.files} files "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        os.environ["BASTION_HOME"] = str(home)
        load = os.getloadavg()
        t_all, code, doc = timed_cli(["check", "--all", str(tree), "--format", "json"])
        t_models, _, dm = timed_cli(["check", "--format", "json"])
        t_code, _, dc = timed_cli(["check", str(tree), "--format", "json"])
        t_bandit = bandit_alone(tree)
        n_models = sum(1 for c in doc["checked"] if c.startswith("registry:"))
        print(f"load average at start: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} ({os.cpu_count()} cores)")
        cpu_all = CPU["check --all"]
        print(
            f"CPU time of check --all TREE: {cpu_all:.2f} s (single-threaded: the wall time on an idle core) "
            f"= {cpu_all / BUDGET_S:.2f} x the 30 s budget"
        )
        print(
            f"bastion check --all TREE: {t_all:.2f} s for {n_models} versions"
            f" + {len(doc['checked']) - n_models} files"
            f" (exit {code}, {len(doc['issues'])} issues) = {t_all / BUDGET_S:.2f} x the 30 s budget"
        )
        print(
            f"  versions only: {t_models:.2f} s ({len(dm['issues'])} issues, "
            f"{t_models / args.versions * 1e3:.1f} ms/version)"
        )
        print(
            f"  code only:     {t_code:.2f} s ({len(dc['issues'])} issues); bandit alone {t_bandit:.2f} s"
            f" -> bastion code review / bandit = {t_code / t_bandit:.2f}"
        )


if __name__ == "__main__":
    main()
