"""Start and reliably stop the Flower processes of a local federation.

Every process starts in its own session (process group). Stopping sends SIGTERM to the group and to every
descendant psutil can see (the SuperLink and SuperNodes spawn ``flwr-serverapp`` / ``flwr-clientapp``
children), waits, then SIGKILLs what is left. An ``atexit`` hook stops whatever a crashed caller left.
Every process also carries the group's random tag in its environment, and stopping finds them by it too: a
SIGTERM that arrives while a process is being started (after the fork, before it is recorded) used to leave
that SuperNode running (round 27: the SIGTERM test failed once under load).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import psutil

_LIVE: set[ProcessGroup] = set()
_LOCK = threading.Lock()
_TAG = "BASTION_FLOWER_GROUP"


def free_port(host: str = "127.0.0.1") -> int:
    """An ephemeral TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ProcessGroup:
    """The processes of one federation; ``stop()`` is idempotent and also runs at interpreter exit."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes], Path]] = []
        self.tag = secrets.token_hex(16)
        with _LOCK:
            _LIVE.add(self)

    def start(self, name: str, args: Sequence[str], *, env: Mapping[str, str], log_path: Path) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                list(args),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**env, _TAG: self.tag},
                start_new_session=True,
            )
        self.procs.append((name, proc, log_path))

    def dead(self) -> list[str]:
        """Names of processes that have exited."""
        return [name for name, proc, _ in self.procs if proc.poll() is not None]

    def pids(self) -> list[int]:
        """Every live process of the federation, descendants included."""
        out: list[int] = []
        for _, proc, _ in self.procs:
            out.append(proc.pid)
            with contextlib.suppress(psutil.Error):
                out.extend(c.pid for c in psutil.Process(proc.pid).children(recursive=True))
        return out

    def log_tail(self, name: str, *, lines: int = 20) -> str:
        for pname, _, path in self.procs:
            if pname == name and path.is_file():
                text = path.read_text(encoding="utf-8", errors="replace").splitlines()
                return "\n".join(text[-lines:])
        return ""

    def stop(self, *, timeout: float = 5.0) -> None:
        victims: list[psutil.Process] = []
        for _, proc, _ in reversed(self.procs):
            with contextlib.suppress(psutil.Error):
                parent = psutil.Process(proc.pid)
                victims.extend(parent.children(recursive=True))
                victims.append(parent)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
        known = {v.pid for v in victims}
        victims.extend(p for p in self._tagged() if p.pid not in known)
        for victim in victims:
            with contextlib.suppress(psutil.Error):
                victim.terminate()
        _, alive = psutil.wait_procs(victims, timeout=timeout)
        for victim in alive:
            with contextlib.suppress(psutil.Error):
                victim.kill()
        for _, proc, _ in self.procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=timeout)
        psutil.wait_procs(alive, timeout=timeout)
        late = self._tagged()  # started while this stop ran
        for victim in late:
            with contextlib.suppress(psutil.Error):
                victim.kill()
        psutil.wait_procs(late, timeout=timeout)
        with _LOCK:
            _LIVE.discard(self)

    def _tagged(self) -> list[psutil.Process]:
        """This user's processes whose environment carries this group's tag."""
        out = []
        me = os.getpid()
        for proc in psutil.process_iter():
            if proc.pid == me:
                continue
            with contextlib.suppress(psutil.Error, OSError):
                if proc.environ().get(_TAG) == self.tag:
                    out.append(proc)
        return out


@contextlib.contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """While active (main thread only), SIGTERM raises SystemExit so ``finally`` blocks stop the processes;
    ``atexit`` alone does not run when the interpreter is terminated by a signal."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@atexit.register
def _stop_all() -> None:
    with _LOCK:
        groups = list(_LIVE)
    for group in groups:
        group.stop(timeout=2.0)
