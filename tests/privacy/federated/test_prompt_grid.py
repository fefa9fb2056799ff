"""PromptGrid: the ServerApp's grid that pulls replies every 50-400 ms instead of Flower's 3 s."""

from __future__ import annotations

import time
from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("flwr")

from bastion.privacy.federated.app import PromptGrid


class _SlowLink:
    """A stand-in for the SuperLink side of a grid: each message's reply shows up after its own delay."""

    def __init__(self, delays: dict[str, float]) -> None:
        self.delays = delays
        self.pushed_at = 0.0
        self.pulls = 0
        self.run = "run-7"
        self.created: list[tuple[Any, ...]] = []

    def set_run(self, run: Any) -> None:
        self.run = run

    def create_message(self, *args: Any) -> Any:
        self.created.append(args)
        return SimpleNamespace(args=args)

    def get_node_ids(self) -> Iterable[int]:
        return [1, 2]

    def get_nodes(self) -> Iterable[Any]:
        return ["n1", "n2"]

    def push_messages(self, messages: Iterable[Any]) -> Iterable[str]:
        self.pushed_at = time.monotonic()
        return [m.id for m in messages]

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Any]:
        self.pulls += 1
        now = time.monotonic() - self.pushed_at
        ready = [i for i in message_ids if self.delays[i] <= now]
        return [SimpleNamespace(metadata=SimpleNamespace(reply_to_message_id=i)) for i in ready]


def _messages(*ids: str) -> list[Any]:
    return [SimpleNamespace(id=i) for i in ids]


def test_every_reply_is_collected_soon_after_the_last_one_arrives() -> None:
    link = _SlowLink({"a": 0.05, "b": 0.3, "c": 0.6})
    grid = PromptGrid(link)  # type: ignore[arg-type]
    t0 = time.monotonic()
    replies = list(grid.send_and_receive(_messages("a", "b", "c")))
    waited = time.monotonic() - t0
    assert sorted(r.metadata.reply_to_message_id for r in replies) == ["a", "b", "c"]
    assert 0.6 <= waited < 1.2  # Flower's own grid: the first pull after 3 s
    assert link.pulls < 15  # backs off instead of spinning


def test_a_timeout_returns_the_replies_that_came() -> None:
    link = _SlowLink({"a": 0.0, "b": 30.0})
    grid = PromptGrid(link)  # type: ignore[arg-type]
    t0 = time.monotonic()
    replies = list(grid.send_and_receive(_messages("a", "b"), timeout=0.3))
    assert [r.metadata.reply_to_message_id for r in replies] == ["a"]
    assert time.monotonic() - t0 < 1.0


def test_everything_else_is_the_wrapped_grid() -> None:
    link = _SlowLink({})
    grid = PromptGrid(link)  # type: ignore[arg-type]
    grid.set_run("run-9")
    assert grid.run == "run-9"
    assert list(grid.get_node_ids()) == [1, 2] and list(grid.get_nodes()) == ["n1", "n2"]
    grid.create_message("content", "train", 1, "1", 60.0)
    assert link.created == [("content", "train", 1, "1", 60.0)]
