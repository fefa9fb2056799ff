"""A real project home with a few pushed models (the shared fixture in tests/_support/pushed_vault.py)."""

from __future__ import annotations

from tests._support.pushed_vault import vault

__all__ = ["vault"]
