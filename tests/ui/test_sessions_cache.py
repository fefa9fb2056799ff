"""Page views do not each re-verify the log or re-run the hunt (issue 17 L8)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from bastion.errors import IntegrityError
from bastion.ui.cache import Throttled, VerifyCache


@dataclass
class _Head:
    size: int
    root_hash: bytes


class _Vault:
    def __init__(self) -> None:
        self.size, self.verifies, self.broken = 1, 0, False

    def log_head(self) -> _Head:
        return _Head(self.size, bytes([self.size % 256]) * 32)

    def log_verify(self) -> str:
        self.verifies += 1
        if self.broken:
            raise IntegrityError("log entry 3 does not match the tree")
        return f"ok@{self.size}"

    def close(self) -> None:
        pass


def test_the_log_is_verified_once_per_head_not_per_view() -> None:
    clock = [0.0]
    vault = _Vault()
    for _ in range(50):  # without the cache: every view verifies the whole log
        vault.log_verify()
    assert vault.verifies == 50
    vault.verifies = 0
    cache = VerifyCache(ttl_s=60, min_interval_s=5, clock=lambda: clock[0])
    viewed = cache.wrap(vault)
    assert [viewed.log_verify() for _ in range(50)] == ["ok@1"] * 50 and vault.verifies == 1
    vault.size = 2  # the head moved: re-verified, but not more than once per min_interval_s
    clock[0] = 1.0
    assert viewed.log_verify() == "ok@1" and vault.verifies == 1
    clock[0] = 6.0
    assert viewed.log_verify() == "ok@2" and vault.verifies == 2
    vault.broken = True  # an entry rewritten in place, same head: FAILED once the ttl has passed
    clock[0] = 30.0
    assert viewed.log_verify() == "ok@2"
    clock[0] = 70.0
    with pytest.raises(IntegrityError):
        viewed.log_verify()
    with pytest.raises(IntegrityError):  # a failure is never cached
        viewed.log_verify()
    assert vault.verifies == 4
    viewed.close()  # everything else passes through


def test_the_hunt_runs_at_most_once_per_interval() -> None:
    clock = [0.0]
    calls: list[Any] = []

    def hunt_context(vault: Any) -> dict[str, Any]:
        calls.append(vault)
        return {"findings": len(calls)}

    page = Throttled(hunt_context, min_interval_s=30, clock=lambda: clock[0])
    assert [page(None)["findings"] for _ in range(20)] == [1] * 20
    clock[0] = 31.0
    assert page(None)["findings"] == 2 and page.runs == 2


def test_dashboard_views_share_one_verification(ui: Any, ui_project: Any, monkeypatch: Any) -> None:
    from bastion.vault import Vault

    count = [0]
    real = Vault.log_verify

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Vault, "log_verify", counted)
    with ui[0](ui_project) as client:
        ui[1](client, ui_project.tokens["auditor"])
        for _ in range(4):
            assert client.get("/log").status_code == 200
            assert client.get("/").status_code == 200
    assert count[0] == 1
