"""Fixtures of the CLI tests: ``home``, a fresh project home behind ``$BASTION_HOME`` (tests/_support)."""

from __future__ import annotations

from tests._support.cli_home import home

__all__ = ["home"]
