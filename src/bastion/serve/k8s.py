"""A hardened Kubernetes manifest for the gateway (``bastion serve --deployment k8s``).

Non-root user, read-only root filesystem, every capability dropped, no privilege escalation, the runtime's
default seccomp profile, no service-account token, CPU/memory requests and limits, liveness/readiness probes
on the OIP health routes, and a NetworkPolicy that admits only the gateway port and lets the pod reach only
DNS and (when configured) Redis.
"""

from __future__ import annotations

import json
from typing import Any


def manifest(
    *,
    model_ref: str,
    name: str = "bastion-gateway",
    image: str = "bastion-ml:latest",
    port: int = 8443,
    replicas: int = 2,
    redis_port: int | None = 6379,
    namespace: str = "bastion",
) -> list[dict[str, Any]]:
    """The Deployment, Service and NetworkPolicy as a list of Kubernetes objects.

    Replicas share rate limits and the extraction monitor only through Redis (the ``bastion-redis``
    Service, run separately), so more than one replica without ``redis_port`` is refused, as
    ``bastion serve --workers 2`` without ``--redis`` is."""
    from bastion.errors import ConfigError

    if replicas < 1:
        raise ConfigError("replicas must be >= 1")
    if replicas > 1 and redis_port is None:
        raise ConfigError(
            f"{replicas} replicas without Redis would each keep their own rate limits and monitor",
            hint="add --redis (a bastion-redis Service), or run one replica",
        )
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "bastion"}
    meta = {"name": name, "namespace": namespace, "labels": labels}
    args = ["serve", model_ref, "--host", "0.0.0.0", "--port", str(port)]  # noqa: S104 - inside the pod
    args += ["--tls-cert", "/etc/bastion/tls/tls.crt", "--tls-key", "/etc/bastion/tls/tls.key"]
    if redis_port is not None:
        args += ["--redis", f"redis://bastion-redis:{redis_port}/0"]
    container = {
        "name": "gateway",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["bastion"],
        "args": args,
        "ports": [{"name": "https", "containerPort": port, "protocol": "TCP"}],
        "env": [
            {"name": "BASTION_HOME", "value": "/var/lib/bastion"},
            {
                "name": "BASTION_PASSPHRASE",
                "valueFrom": {"secretKeyRef": {"name": f"{name}-secrets", "key": "passphrase"}},
            },
            {
                "name": "BASTION_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": f"{name}-secrets", "key": "deployer-token"}},
            },
        ],
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "resources": {
            "requests": {"cpu": "500m", "memory": "512Mi"},
            "limits": {"cpu": "2", "memory": "2Gi", "ephemeral-storage": "1Gi"},
        },
        "livenessProbe": {
            "httpGet": {"path": "/v2/health/live", "port": port, "scheme": "HTTPS"},
            "periodSeconds": 10,
        },
        "readinessProbe": {
            "httpGet": {"path": "/v2/health/ready", "port": port, "scheme": "HTTPS"},
            "periodSeconds": 5,
        },
        "volumeMounts": [
            {"name": "home", "mountPath": "/var/lib/bastion"},
            {"name": "tls", "mountPath": "/etc/bastion/tls", "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - an emptyDir, the only writable scratch
        ],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "fsGroup": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [
                        {"name": "home", "persistentVolumeClaim": {"claimName": f"{name}-home"}},
                        {"name": "tls", "secret": {"secretName": f"{name}-tls"}},
                        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}},
                    ],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {"selector": labels, "ports": [{"name": "https", "port": 443, "targetPort": port}]},
    }
    egress: list[dict[str, Any]] = [
        {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
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


def render(objects: list[dict[str, Any]]) -> str:
    """A multi-document YAML stream (JSON documents are valid YAML, so no YAML library is needed)."""
    return "".join("---\n" + json.dumps(obj, indent=2) + "\n" for obj in objects)


__all__ = ["manifest", "render"]
