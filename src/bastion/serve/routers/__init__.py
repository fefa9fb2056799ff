"""The gateway's routers, one per concern: health and metrics, inference, admin."""

from __future__ import annotations

from bastion.serve.routers import admin, health, inference

__all__ = ["admin", "health", "inference"]
