"""Deployment checks: Kubernetes manifests and Dockerfiles, with ML-specific rules on top of the general ones.

Rules (``BST-D…``): privileged containers, running as root, a writable root filesystem, ``hostPath``
volumes, added capabilities, workloads without a NetworkPolicy, ``latest`` or undigested images, credentials
in environment variables (a hard-coded ``sk-live…`` key in an env var is found: the value is matched against
:mod:`bastion.governance._secrets`, and secret-named variables with literal values are flagged), model
servers / Jupyter / dashboards exposed without authentication, model files mounted from writable volumes and
GPU workloads with host access. Messages name the kind of credential, never its value.

Manifests are parsed with ``yaml.safe_load_all``; nothing is applied or pulled. See :mod:`.osv` for the
image SBOM and the OSV advisory match.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from bastion.errors import DependencyMissing, InvalidInput
from bastion.governance._secrets import looks_secret
from bastion.governance.findings import CheckReport, Issue, Rule

PRIVILEGED = Rule("BST-D001", "privileged", "A container runs privileged")
ROOT = Rule("BST-D002", "root-user", "A container may run as root")
WRITABLE_ROOT = Rule("BST-D003", "writable-root-fs", "The root filesystem is writable", level="warning")
HOST_PATH = Rule("BST-D004", "host-path", "A hostPath volume exposes the node's filesystem")
CAPS = Rule("BST-D005", "added-capabilities", "Linux capabilities are added")
NETPOL = Rule("BST-D006", "no-network-policy", "Workloads without any NetworkPolicy", level="warning")
IMAGE = Rule("BST-D007", "undigested-image", "An image is not pinned by digest (or uses latest)")
ENV_SECRET = Rule("BST-D008", "secret-in-env", "A credential is written into an environment variable")
NO_AUTH = Rule(
    "BST-D009", "unauthenticated-ml-server", "A model server, notebook or dashboard is exposed without auth"
)
MODEL_RW = Rule("BST-D010", "writable-model-volume", "Model files are mounted from a writable volume")
GPU_HOST = Rule(
    "BST-D011", "gpu-host-access", "A GPU workload has host access (namespaces, devices, privileged)"
)
DEPLOY_RULES = (
    PRIVILEGED,
    ROOT,
    WRITABLE_ROOT,
    HOST_PATH,
    CAPS,
    NETPOL,
    IMAGE,
    ENV_SECRET,
    NO_AUTH,
    MODEL_RW,
    GPU_HOST,
)

WORKLOADS = {"Pod", "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicaSet"}
_SECRET_NAME = re.compile(r"(?i)(api[_-]?key|secret|token|passw(or)?d|credential|private[_-]?key)")
_SERVERS = re.compile(
    r"(?i)\b(jupyter|notebook|tensorboard|mlflow|ray[-_]?dashboard|streamlit|gradio|tritonserver|torchserve|"
    r"vllm|text-generation-inference|tgi|ollama|kserve|seldon)\b"
)
_AUTH_HINT = re.compile(r"(?i)(--api-key|--auth|--token[= ]\S|token=\S|password=\S|oauth|--enable-auth)")
_EMPTY_TOKEN = re.compile(r"(?i)(token|password)=(''|\"\"|\s|$)")
_GPU = ("nvidia.com/gpu", "amd.com/gpu")
MAX_BYTES = 5 << 20


def _image_issue(image: str) -> str | None:
    if "@sha256:" in image:
        return None
    name = image.rsplit("/", 1)[-1]
    if ":" not in name or name.endswith(":latest"):
        return f"image {image} uses the latest tag and no digest"
    return f"image {image} is not pinned by digest (@sha256:…)"


def _pod_spec(doc: Mapping[str, Any]) -> Mapping[str, Any] | None:
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        return (((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}).get("spec")
    if kind in WORKLOADS:
        return (spec.get("template") or {}).get("spec")
    return None


def _pod_labels(doc: Mapping[str, Any]) -> Mapping[str, str]:
    if doc.get("kind") == "Pod":
        return (doc.get("metadata") or {}).get("labels") or {}
    return ((((doc.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels")) or {}


def _exposed_selectors(docs: Sequence[Mapping[str, Any]]) -> list[Mapping[str, str]]:
    out = []
    for d in docs:
        if d.get("kind") == "Service" and (d.get("spec") or {}).get("type") in ("LoadBalancer", "NodePort"):
            out.append((d.get("spec") or {}).get("selector") or {})
        if d.get("kind") == "Ingress":
            out.append({"*": "*"})  # an Ingress exposes something: treat every server as reachable
    return out


def _check_workload(doc: Mapping[str, Any], where: str, exposed: list[Mapping[str, str]]) -> Iterator[Issue]:
    spec = _pod_spec(doc)
    if not isinstance(spec, Mapping):
        return
    name = f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name', '?')}"
    pod_sc = spec.get("securityContext") or {}
    volumes = {v.get("name"): v for v in spec.get("volumes") or [] if isinstance(v, Mapping)}
    labels = _pod_labels(doc)
    is_exposed = any(
        sel == {"*": "*"} or (sel and all(labels.get(k) == v for k, v in sel.items())) for sel in exposed
    )
    for v in volumes.values():
        if "hostPath" in v:
            yield Issue(
                HOST_PATH,
                f"{name}: volume {v.get('name')} mounts hostPath {v['hostPath'].get('path')}",
                where,
            )
    host_ns = [k for k in ("hostPID", "hostIPC", "hostNetwork") if spec.get(k)]
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    for c in containers:
        if not isinstance(c, Mapping):
            continue
        cname = f"{name} container {c.get('name', '?')}"
        sc = c.get("securityContext") or {}
        if sc.get("privileged"):
            yield Issue(PRIVILEGED, f"{cname} is privileged", where)
        non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
        if uid == 0 or (non_root is not True and not (isinstance(uid, int) and uid > 0)):
            yield Issue(
                ROOT, f"{cname} may run as root (set runAsNonRoot: true and a non-zero runAsUser)", where
            )
        if sc.get("readOnlyRootFilesystem") is not True:
            yield Issue(WRITABLE_ROOT, f"{cname} has a writable root filesystem", where)
        added = ((sc.get("capabilities") or {}).get("add")) or []
        if added:
            yield Issue(CAPS, f"{cname} adds capabilities {', '.join(map(str, added))}", where)
        image = str(c.get("image") or "")
        if msg := _image_issue(image):
            yield Issue(IMAGE, f"{cname}: {msg}", where)
        for e in c.get("env") or []:
            if not isinstance(e, Mapping) or "value" not in e:
                continue
            value = str(e.get("value") or "")
            kind = looks_secret(value)
            if kind or (_SECRET_NAME.search(str(e.get("name"))) and value and not value.startswith("$(")):
                what = kind or "a literal value in a secret-named variable"
                yield Issue(ENV_SECRET, f"{cname}: env {e.get('name')} holds {what} (use a Secret)", where)
        cmdline = " ".join(str(x) for x in [image, *(c.get("command") or []), *(c.get("args") or [])])
        host_port = any(isinstance(p, Mapping) and p.get("hostPort") for p in c.get("ports") or [])
        server = _SERVERS.search(cmdline)
        reachable = is_exposed or host_port or spec.get("hostNetwork")
        if server and reachable and (_EMPTY_TOKEN.search(cmdline) or not _AUTH_HINT.search(cmdline)):
            message = f"{cname}: {server.group(1)} is reachable from outside without authentication"
            yield Issue(NO_AUTH, message, where)
        for m in c.get("volumeMounts") or []:
            if not isinstance(m, Mapping):
                continue
            path = str(m.get("mountPath", ""))
            if "model" in path.lower() or "model" in str(m.get("name", "")).lower():
                vol = volumes.get(m.get("name")) or {}
                ro_source = (vol.get("persistentVolumeClaim") or {}).get("readOnly") or "configMap" in vol
                if m.get("readOnly") is not True and not ro_source:
                    yield Issue(
                        MODEL_RW, f"{cname}: model volume {m.get('name')} at {path} is writable", where
                    )
        limits = {
            **((c.get("resources") or {}).get("limits") or {}),
            **((c.get("resources") or {}).get("requests") or {}),
        }
        if any(g in limits for g in _GPU):
            dev_mounts = [
                v.get("name")
                for v in volumes.values()
                if str((v.get("hostPath") or {}).get("path", "")).startswith("/dev")
            ]
            access = [
                *host_ns,
                *(["privileged"] if sc.get("privileged") else []),
                *(f"hostPath {d}" for d in dev_mounts),
            ]
            if access:
                yield Issue(GPU_HOST, f"{cname} requests a GPU with host access: {', '.join(access)}", where)


def check_manifests(docs: Sequence[tuple[str, Mapping[str, Any]]]) -> list[Issue]:
    """The findings of a set of Kubernetes objects, each with the file it came from."""
    issues: list[Issue] = []
    exposed = _exposed_selectors([d for _, d in docs])
    for where, d in docs:
        issues.extend(_check_workload(d, where, exposed))
    workloads = [(w, d) for w, d in docs if d.get("kind") in WORKLOADS]
    has_netpol = {
        (d.get("metadata") or {}).get("namespace", "default")
        for _, d in docs
        if d.get("kind") == "NetworkPolicy"
    }
    for where, d in workloads:
        ns = (d.get("metadata") or {}).get("namespace", "default")
        if ns not in has_netpol:
            name = (d.get("metadata") or {}).get("name", "?")
            issues.append(Issue(NETPOL, f"{d.get('kind')}/{name}: no NetworkPolicy in namespace {ns}", where))
    return issues


def check_dockerfile(text: str, *, path: str) -> list[Issue]:
    issues: list[Issue] = []
    user: str | None = None
    logical: list[tuple[int, str]] = []
    buf, start = "", 0
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not buf:
            start = n
        if line.startswith("#") and not buf:
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        logical.append((start, buf + line))
        buf = ""
    stages: list[str] = []
    for n, line in logical:
        op, _, rest = line.partition(" ")
        op = op.upper()
        if op == "FROM":
            words = [w for w in rest.split() if not w.startswith("--")]
            image = words[0] if words else ""
            if image.lower() != "scratch" and image not in stages and (msg := _image_issue(image)):
                issues.append(Issue(IMAGE, msg, path, line=n))
            if len(words) >= 3 and words[1].upper() == "AS":
                stages.append(words[2])
            user = None  # every stage starts as root
        elif op == "USER":
            user = rest.strip().split(":")[0]
        elif op in ("ENV", "ARG"):
            try:
                parts = shlex.split(rest)
            except ValueError:
                parts = rest.split()
            pairs = (
                [p.partition("=") for p in parts]
                if "=" in rest
                else [(parts[0], "=", " ".join(parts[1:]))]
                if parts
                else []
            )
            for key, sep, value in pairs:
                kind = looks_secret(value)
                if kind or (sep and value and _SECRET_NAME.search(key) and not value.startswith("$")):
                    what = kind or "a literal value in a secret-named variable"
                    issues.append(
                        Issue(ENV_SECRET, f"{op} {key} holds {what} (baked into every layer)", path, line=n)
                    )
        elif (
            op in ("CMD", "ENTRYPOINT")
            and _SERVERS.search(rest)
            and (_EMPTY_TOKEN.search(rest) or not _AUTH_HINT.search(rest))
        ):
            server = _SERVERS.search(rest).group(1)  # type: ignore[union-attr]
            issues.append(Issue(NO_AUTH, f"{op} starts {server} without authentication", path, line=n))
    if user is None or user in ("root", "0"):
        issues.append(
            Issue(ROOT, "the final stage runs as root (add a USER with a non-zero uid)", path, line=None)
        )
    return issues


def _load_yaml(text: str, path: str) -> list[tuple[str, Mapping[str, Any]]]:
    try:
        import yaml
    except ImportError as exc:
        raise DependencyMissing(
            "PyYAML is not installed", hint="pip install 'bastion-ml[governance]'"
        ) from exc
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{path}: not valid YAML") from exc
    out: list[tuple[str, Mapping[str, Any]]] = []
    for d in docs:
        if isinstance(d, Mapping) and d.get("kind") == "List":
            out.extend((path, x) for x in d.get("items") or [] if isinstance(x, Mapping))
        elif isinstance(d, Mapping):
            out.append((path, d))
    return out


def check_deploy(*, paths: Sequence[str | Path]) -> CheckReport:
    """Check Kubernetes manifests (``.yaml``/``.yml``/``.json``) and Dockerfiles; other files are refused."""
    docs: list[tuple[str, Mapping[str, Any]]] = []
    issues: list[Issue] = []
    checked: list[str] = []
    for p in map(Path, paths):
        if not p.is_file():
            raise InvalidInput(f"{p}: no such file")
        if p.stat().st_size > MAX_BYTES:
            raise InvalidInput(f"{p}: larger than {MAX_BYTES >> 20} MiB")
        text = p.read_text(encoding="utf-8", errors="replace")
        if p.name.startswith("Dockerfile") or p.suffix == ".dockerfile" or p.name.endswith(".Dockerfile"):
            issues.extend(check_dockerfile(text, path=str(p)))
        elif p.suffix in (".yaml", ".yml", ".json"):
            docs.extend(_load_yaml(text, str(p)))
        else:
            raise InvalidInput(f"{p}: not a Kubernetes manifest (.yaml/.yml/.json) or a Dockerfile")
        checked.append(str(p))
    issues.extend(check_manifests(docs))
    return CheckReport(issues=tuple(issues), checked=tuple(checked), rules=DEPLOY_RULES)


__all__ = ["DEPLOY_RULES", "check_deploy", "check_dockerfile", "check_manifests"]
