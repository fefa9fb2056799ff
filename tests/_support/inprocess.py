"""The CLI through its entry point (:func:`bastion.cli.run`) in the test process, as a subprocess sees it.

``run_cli(argv, env=..., cwd=...)`` replaces the whole environment with ``env`` and the working directory
with ``cwd`` for the call, captures stdout and stderr as text, and restores both afterwards. It saves the
interpreter start and the imports of a ``python -c "from bastion.cli import main; main()"`` subprocess
(about 0.6 s of CPU each). What only a real process can show (no traceback printed by the interpreter, the
exit status of ``sys.exit``, what is inherited by children) stays with the tests that spawn one: at least one
per command group.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

CLI = ("python", "-c", "from bastion.cli import main; main()")


def run_cli(argv: Sequence[str], *, env: Mapping[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``bastion argv`` in this process with exactly ``env`` and ``cwd``; the exit code and output."""
    from bastion.cli import run

    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    out, err = io.StringIO(), io.StringIO()
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = run(list(argv))
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return subprocess.CompletedProcess([*CLI, *argv], code, out.getvalue(), err.getvalue())
