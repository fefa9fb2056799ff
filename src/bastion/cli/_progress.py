"""Progress on a terminal, silence elsewhere: the one helper every long-running command uses.

``progress(enabled=…)`` yields an ``update(task, fraction, note)`` callable that draws one Rich bar per task
on stderr. It draws nothing (and starts nothing) when stderr is not a terminal, when the output format is
JSON, or when ``BASTION_NO_PROGRESS`` is set, so scripts and pipes see only the command's own output. The
display starts on the first update, so a command that fails before doing any work prints no empty bar.
When a new task starts, earlier unfinished tasks are marked done; on exit every task reads "done".

``step(message, enabled=…)`` is the single-task form: a spinner with the elapsed time for one long call
whose progress is not measurable (a training run, a federation).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

Update = Callable[[str, float, str], None]


def interactive(*, json_output: bool = False) -> bool:
    """True when progress should be drawn: a terminal on stderr, text output, not switched off."""
    if json_output or os.environ.get("BASTION_NO_PROGRESS"):
        return False
    stream = sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


class _Bars:
    def __init__(self) -> None:
        self.bars: Any = None
        self.tasks: dict[str, Any] = {}
        self.current: str | None = None

    def _start(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.bars = Progress(
            TextColumn("{task.description:<11}"),
            BarColumn(),
            TextColumn("{task.fields[note]}", markup=False),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self.bars.start()

    def _finish(self, task: str) -> None:
        task_id = self.tasks[task]
        state = next(t for t in self.bars.tasks if t.id == task_id)
        if state.completed < 1.0:
            self.bars.update(task_id, completed=1.0, note="done")

    def update(self, task: str, fraction: float, note: str) -> None:
        if self.bars is None:
            self._start()
        if task not in self.tasks:
            if self.current is not None:
                self._finish(self.current)
            self.tasks[task] = self.bars.add_task(task, total=1.0, note="")
            self.current = task
        done = max(0.0, min(fraction, 1.0))
        self.bars.update(self.tasks[task], completed=done, note=note)

    def close(self, ok: bool) -> None:
        if self.bars is None:
            return
        if ok:
            for task in self.tasks:
                self._finish(task)
        self.bars.stop()


def _silent(task: str, fraction: float, note: str) -> None:
    return None


@contextmanager
def progress(*, enabled: bool) -> Iterator[Update]:
    """Yield ``update(task, fraction, note)``; draws bars only when ``enabled`` (see :func:`interactive`)."""
    if not enabled:
        yield _silent
        return
    bars = _Bars()
    ok = False
    try:
        yield bars.update
        ok = True
    finally:
        bars.close(ok)


@contextmanager
def step(message: str, *, enabled: bool) -> Iterator[None]:
    """A spinner with elapsed time while one long call runs; nothing when not ``enabled``."""
    if not enabled:
        yield
        return
    from rich.console import Console

    console = Console(stderr=True)
    with console.status(message.replace("[", r"\["), spinner="dots"):
        yield
    console.print(f"{message} — done", markup=False, highlight=False)


__all__ = ["Update", "interactive", "progress", "step"]
