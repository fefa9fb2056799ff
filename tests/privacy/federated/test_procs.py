"""Round 27: a Flower process started just as the federation is stopped is stopped too.

``test_sigterm_to_the_cli_stops_every_flower_process`` failed once under load: the CLI's SIGTERM arrived while
a SuperNode was being started (after the fork, before the group recorded it), and that SuperNode kept
running. Every process now carries the group's random tag in its environment, and ``stop`` finds it by that.
"""

from __future__ import annotations

import os
import subprocess
import sys

import psutil

from bastion.privacy.federated._procs import _TAG, ProcessGroup


def _sleeper(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"], env=env, start_new_session=True
    )


def test_a_process_the_group_never_recorded_is_stopped_by_its_tag(tmp_path) -> None:
    group = ProcessGroup()
    group.start(
        "recorded",
        [sys.executable, "-c", "import time; time.sleep(120)"],
        env=dict(os.environ),
        log_path=tmp_path / "recorded.log",
    )
    lost = _sleeper({**os.environ, _TAG: group.tag})  # as if SIGTERM had hit between fork and record
    other = _sleeper({**os.environ, _TAG: "another-group"})  # another federation's process is not touched
    try:
        group.stop(timeout=5.0)
        assert lost.wait(timeout=10) is not None
        assert all(proc.poll() is not None for _, proc, _ in group.procs)
        assert other.poll() is None and psutil.pid_exists(other.pid)
    finally:
        for proc in (lost, other):
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
