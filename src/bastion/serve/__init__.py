"""The secure serving gateway: OIP v2 over TLS with authentication, roles, rate limits, an extraction monitor,
input guards, output policy, key release over attestation evidence, batched audit logging and metrics.

``bastion serve MODEL_REF`` (see :mod:`bastion.serve.server`) is the usual way in; :func:`create_app` with a
:class:`Gateway` serves any loaded model in-process.
"""

from __future__ import annotations

from bastion.serve.app import Gateway, ServedModel, create_app
from bastion.serve.attestation import (
    Claims,
    Evidence,
    KeyReleaseDecision,
    KeyReleasePolicy,
    SoftwareAttester,
    SoftwareEvidenceVerifier,
)
from bastion.serve.auth import Authenticator, JwtVerifier
from bastion.serve.config import GatewayConfig, load_gateway_config
from bastion.serve.interface import EvidenceVerifier, MonitorStore, RateLimitStorage
from bastion.serve.monitor import ExtractionMonitor, MemoryMonitorStore, MonitorVerdict, RedisMonitorStore
from bastion.serve.server import ServeOptions, build_gateway, run

__all__ = [
    "Authenticator",
    "Claims",
    "Evidence",
    "EvidenceVerifier",
    "ExtractionMonitor",
    "Gateway",
    "GatewayConfig",
    "JwtVerifier",
    "KeyReleaseDecision",
    "KeyReleasePolicy",
    "MemoryMonitorStore",
    "MonitorStore",
    "MonitorVerdict",
    "RateLimitStorage",
    "RedisMonitorStore",
    "ServeOptions",
    "ServedModel",
    "SoftwareAttester",
    "SoftwareEvidenceVerifier",
    "build_gateway",
    "create_app",
    "load_gateway_config",
    "run",
]
