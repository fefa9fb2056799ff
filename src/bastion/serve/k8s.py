"""Hardened Kubernetes manifests for a team deployment (``bastion serve MODEL --deployment k8s``).

Two separate workloads, so that whoever compromises the pod that faces the network holds one model and a
token that can pull only that model — never the key ring (issue 11 item 6):

* ``bastion-server`` (a one-replica StatefulSet): ``bastion server``, the only process that holds the key
  ring (``BASTION_PASSPHRASE`` from the ``bastion-server-keyring`` Secret, plus the PKCS#11 PIN when the home
  uses an HSM) and the database (the home on its own PersistentVolumeClaim). Its NetworkPolicy admits only
  the gateway pods and pods labelled ``bastion.dev/server-client: "true"`` (admins, CI), and optional admin
  CIDRs; it reaches only DNS (plus what ``server_egress`` names: an external PostgreSQL, a log witness).
* ``bastion-gateway`` (a Deployment): ``bastion serve MODEL --server https://bastion-server…``. Its only
  credential is ``BASTION_TOKEN`` from the ``bastion-gateway-token`` Secret: a ``gateway``-role token scoped
  to this model (``bastion token create --role gateway --model NAME --env prod``), plus its attester key
  (``bastion-gateway-attester``) that answers the server's release challenge (the server releases the model
  only to evidence its approved policy accepts: :mod:`bastion.server.routers.gateway`). No passphrase, no home
  volume, no owner or deployer token anywhere in it. It pulls the model from the server into a memory-backed
  scratch directory, verifies and scans it, and serves it; it reaches only the server, DNS and Redis.

Both: non-root user 10001 (the ``Dockerfile``'s), read-only root filesystem, every capability dropped, no
privilege escalation, the runtime's default seccomp profile, no service-account token, requests and limits,
liveness/readiness probes. The Secrets themselves are not emitted (they have no safe default value):
:func:`secret_instructions` says how to create them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

USER_ID = 10001
SERVER_NAME = "bastion-server"
GATEWAY_NAME = "bastion-gateway"
CLIENT_LABEL = "bastion.dev/server-client"
HOME_DIR = "/var/lib/bastion"
TLS_DIR = "/etc/bastion/tls"
CA_DIR = "/etc/bastion/server-ca"
ATTESTER_DIR = "/etc/bastion/attester"


def _security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": USER_ID,
        "runAsGroup": USER_ID,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _pod_spec(container: dict[str, Any], volumes: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": USER_ID,
            "runAsGroup": USER_ID,
            "fsGroup": USER_ID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": volumes,
    }


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _probe(path: str, port: int, period: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": port, "scheme": "HTTPS"}, "periodSeconds": period}


_DNS = {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}


def server_objects(
    *,
    image: str,
    namespace: str,
    port: int = 8443,
    storage: str = "10Gi",
    admin_cidrs: Sequence[str] = (),
    pkcs11_pin_env: str | None = None,
    server_egress: Sequence[dict[str, Any]] = (),
) -> list[dict[str, Any]]:
    """The server's StatefulSet, Service and NetworkPolicy."""
    labels = {"app.kubernetes.io/name": SERVER_NAME, "app.kubernetes.io/part-of": "bastion"}
    meta = {"name": SERVER_NAME, "namespace": namespace, "labels": labels}
    env = [
        {"name": "BASTION_HOME", "value": HOME_DIR},
        _secret_env("BASTION_PASSPHRASE", f"{SERVER_NAME}-keyring", "passphrase"),
    ]
    if pkcs11_pin_env is not None:
        env.append(_secret_env(pkcs11_pin_env, f"{SERVER_NAME}-keyring", "pkcs11-pin"))
    args = ["server", "--host", "0.0.0.0", "--port", str(port)]  # noqa: S104 - inside the pod
    args += ["--tls-cert", f"{TLS_DIR}/tls.crt", "--tls-key", f"{TLS_DIR}/tls.key"]
    container = {
        "name": "server",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["bastion"],
        "args": args,
        "ports": [{"name": "https", "containerPort": port, "protocol": "TCP"}],
        "env": env,
        "securityContext": _security_context(),
        "resources": {
            "requests": {"cpu": "500m", "memory": "512Mi"},
            "limits": {"cpu": "2", "memory": "2Gi", "ephemeral-storage": "1Gi"},
        },
        "livenessProbe": _probe("/healthz", port, 10),
        "readinessProbe": _probe("/healthz", port, 5),
        "volumeMounts": [
            {"name": "home", "mountPath": HOME_DIR},
            {"name": "tls", "mountPath": TLS_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - an emptyDir, the only writable scratch
        ],
    }
    volumes = [
        {"name": "tls", "secret": {"secretName": f"{SERVER_NAME}-tls"}},
        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}},
    ]
    statefulset = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": meta,
        "spec": {
            "serviceName": SERVER_NAME,
            "replicas": 1,  # one writer of the home (key ring, audit log, SQLite)
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": _pod_spec(container, volumes)},
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "home"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": storage}},
                    },
                }
            ],
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {"selector": labels, "ports": [{"name": "https", "port": 443, "targetPort": port}]},
    }
    sources: list[dict[str, Any]] = [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": GATEWAY_NAME}}},
        {"namespaceSelector": {}, "podSelector": {"matchLabels": {CLIENT_LABEL: "true"}}},
        *({"ipBlock": {"cidr": cidr}} for cidr in admin_cidrs),
    ]
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta,
        "spec": {
            "podSelector": {"matchLabels": labels},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": sources, "ports": [{"protocol": "TCP", "port": port}]}],
            "egress": [_DNS, *server_egress],
        },
    }
    return [statefulset, service, policy]


def gateway_objects(
    *,
    model_ref: str,
    image: str,
    namespace: str,
    port: int = 8443,
    server_port: int = 8443,
    replicas: int = 1,
    redis_port: int | None = None,
    scratch: str = "1Gi",
) -> list[dict[str, Any]]:
    """The gateway's Deployment, Service and NetworkPolicy: a workload token, nothing else."""
    from bastion.errors import ConfigError

    if replicas < 1:
        raise ConfigError("replicas must be >= 1")
    if replicas > 1 and redis_port is None:
        raise ConfigError(
            f"{replicas} replicas without Redis would each keep their own rate limits and monitor",
            hint="add --redis (a bastion-redis Service), or run one replica",
        )
    labels = {"app.kubernetes.io/name": GATEWAY_NAME, "app.kubernetes.io/part-of": "bastion"}
    meta = {"name": GATEWAY_NAME, "namespace": namespace, "labels": labels}
    server_url = f"https://{SERVER_NAME}.{namespace}.svc"
    args = ["serve", model_ref, "--server", server_url, "--ca", f"{CA_DIR}/ca.crt"]
    args += ["--attester-key", f"{ATTESTER_DIR}/key.pem"]  # answers the server's release challenge
    args += ["--host", "0.0.0.0", "--port", str(port)]  # noqa: S104 - inside the pod
    args += ["--tls-cert", f"{TLS_DIR}/tls.crt", "--tls-key", f"{TLS_DIR}/tls.key"]
    if redis_port is not None:
        args += ["--redis", f"redis://bastion-redis:{redis_port}/0"]
    container = {
        "name": "gateway",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["bastion"],
        "args": args,
        "ports": [{"name": "https", "containerPort": port, "protocol": "TCP"}],
        # the workload credential: a gateway-role token that pulls this model only
        "env": [_secret_env("BASTION_TOKEN", f"{GATEWAY_NAME}-token", "token")],
        "securityContext": _security_context(),
        "resources": {
            "requests": {"cpu": "500m", "memory": "512Mi"},
            "limits": {"cpu": "2", "memory": "2Gi", "ephemeral-storage": "1Gi"},
        },
        "livenessProbe": _probe("/v2/health/live", port, 10),
        "readinessProbe": _probe("/v2/health/ready", port, 5),
        "volumeMounts": [
            {"name": "tls", "mountPath": TLS_DIR, "readOnly": True},
            {"name": "server-ca", "mountPath": CA_DIR, "readOnly": True},
            {"name": "attester", "mountPath": ATTESTER_DIR, "readOnly": True},
            # the pulled plaintext lives here only while it is verified, scanned and loaded: memory-backed
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - an emptyDir, the only writable scratch
        ],
    }
    volumes = [
        {"name": "tls", "secret": {"secretName": f"{GATEWAY_NAME}-tls"}},
        {"name": "server-ca", "secret": {"secretName": f"{SERVER_NAME}-ca"}},
        {"name": "attester", "secret": {"secretName": f"{GATEWAY_NAME}-attester", "defaultMode": 0o400}},
        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": scratch}},
    ]
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": _pod_spec(container, volumes)},
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {"selector": labels, "ports": [{"name": "https", "port": 443, "targetPort": port}]},
    }
    egress: list[dict[str, Any]] = [
        _DNS,
        {
            "to": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": SERVER_NAME}}}],
            "ports": [{"protocol": "TCP", "port": server_port}],
        },
    ]
    if redis_port is not None:
        egress.append(
            {
                "to": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "bastion-redis"}}}],
                "ports": [{"protocol": "TCP", "port": redis_port}],
            }
        )
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta,
        "spec": {
            "podSelector": {"matchLabels": labels},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"ports": [{"protocol": "TCP", "port": port}]}],
            "egress": egress,
        },
    }
    return [deployment, service, policy]


def manifest(
    *,
    model_ref: str,
    image: str = "bastion-ml:latest",
    port: int = 8443,
    replicas: int = 1,
    redis_port: int | None = 6379,
    namespace: str = "bastion",
    admin_cidrs: Sequence[str] = (),
    pkcs11_pin_env: str | None = None,
    server_egress: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """The server's objects, then the gateway's (see the module docstring). ``server_egress``: ``CIDR:PORT``
    destinations the server may reach besides DNS (an external PostgreSQL, an HTTPS log witness).

    Gateway replicas share rate limits and the extraction monitor only through Redis (the ``bastion-redis``
    Service, run separately), so more than one replica without ``redis_port`` is refused, as ``bastion
    serve --workers 2`` without ``--redis`` is."""
    gateway = gateway_objects(
        model_ref=model_ref,
        image=image,
        namespace=namespace,
        port=port,
        server_port=port,
        replicas=replicas,
        redis_port=redis_port,
    )
    server = server_objects(
        image=image,
        namespace=namespace,
        port=port,
        admin_cidrs=admin_cidrs,
        pkcs11_pin_env=pkcs11_pin_env,
        server_egress=[egress_rule(spec) for spec in server_egress],
    )
    return [*server, *gateway]


def egress_rule(spec: str) -> dict[str, Any]:
    """``CIDR:PORT`` (e.g. ``10.0.4.0/24:5432``) as a NetworkPolicy egress rule (TCP), else ConfigError."""
    import ipaddress

    from bastion.errors import ConfigError

    cidr, sep, port = spec.rpartition(":")
    try:
        network = ipaddress.ip_network(cidr, strict=True)
        number = int(port)
    except ValueError as exc:
        raise ConfigError(f"--server-egress {spec!r}: expected CIDR:PORT, e.g. 10.0.4.0/24:5432") from exc
    if not sep or not 0 < number < 65536 or network.prefixlen == 0:
        raise ConfigError(f"--server-egress {spec!r}: expected CIDR:PORT with a port 1-65535, not 0.0.0.0/0")
    return {"to": [{"ipBlock": {"cidr": str(network)}}], "ports": [{"protocol": "TCP", "port": number}]}


def secret_instructions(*, model_ref: str, namespace: str = "bastion") -> str:
    """How to create the Secrets the manifests name (YAML comments; no secret value is ever printed)."""
    name = model_ref.split("@", 1)[0].split(":", 1)[0]
    env = model_ref.split("@", 1)[1] if "@" in model_ref else "prod"
    lines = [
        "Secrets to create first (never commit them):",
        f"  kubectl -n {namespace} create secret generic {SERVER_NAME}-keyring "
        "--from-file=passphrase=./passphrase   # the key ring: server only",
        f"  kubectl -n {namespace} create secret tls {SERVER_NAME}-tls --cert=server.crt --key=server.key",
        f"  kubectl -n {namespace} create secret generic {SERVER_NAME}-ca --from-file=ca.crt=./ca.crt",
        f"  kubectl -n {namespace} create secret tls {GATEWAY_NAME}-tls --cert=gateway.crt --key=gateway.key",
        f"  bastion token create --name gateway-{name} --role gateway --model {name} --env {env} "
        "> ./gateway-token   # as an admin, against the server",
        f"  kubectl -n {namespace} create secret generic {GATEWAY_NAME}-token "
        "--from-file=token=./gateway-token",
        "  openssl genpkey -algorithm ed25519 -out gateway-attester.pem && "
        "openssl pkey -in gateway-attester.pem -pubout -out gateway-attester.pub.pem",
        f"  bastion serve {model_ref} --approve --gateway-attester gateway-attester.pub.pem "
        "  # admin, on the server's home: the server releases the model only to this key's evidence",
        f"  kubectl -n {namespace} create secret generic {GATEWAY_NAME}-attester "
        "--from-file=key.pem=./gateway-attester.pem",
        f'Admin and CI pods that talk to the server carry the label {CLIENT_LABEL}: "true".',
    ]
    return "".join(f"# {line}\n" for line in lines)


def render(objects: list[dict[str, Any]], *, header: str = "") -> str:
    """A multi-document YAML stream (JSON documents are valid YAML, so no YAML library is needed)."""
    return header + "".join("---\n" + json.dumps(obj, indent=2) + "\n" for obj in objects)


__all__ = ["egress_rule", "gateway_objects", "manifest", "render", "secret_instructions", "server_objects"]
