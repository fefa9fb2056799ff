"""``bastion demo``: the whole lifecycle on built-in data in one command (see :mod:`bastion.demo.runner`)."""

from __future__ import annotations

from bastion.demo.runner import DemoError, DemoRun, run_demo

__all__ = ["DemoError", "DemoRun", "run_demo"]
