"""Guard fixtures: a real project home with tokens, a real upstream process, the proxy in a thread."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from tests._support.server_thread import ServerThread as _ServerThread

PASSPHRASE = "guard tests passphrase"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Project:
    vault: Any
    tokens: dict[str, str]


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    from bastion.vault import init_project

    vault = init_project(home=tmp_path_factory.mktemp("guard-home") / "home", passphrase=PASSPHRASE)
    tokens = {}
    for name, role, models in [("alice", "consumer", ["echo"]), ("bob", "consumer", ["other"])]:
        _, tokens[name] = vault.create_token(name=name, role=role, models=models)
    yield Project(vault=vault, tokens=tokens)
    vault.close()


@pytest.fixture(scope="session")
def upstream() -> Iterator[str]:
    """The deterministic OpenAI-compatible upstream as its own process on 127.0.0.1."""
    yield from serve_upstream(["-m", "bastion.guard.testing", "--chunk-chars", "6", "--port"], "upstream")


def serve_upstream(args: list[str], what: str) -> Iterator[str]:
    """Run ``python *args PORT`` on a free 127.0.0.1 port, yield its URL once it answers, stop it after."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, *args, str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/v1/models", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(10)


class ServerThread(_ServerThread):
    """The proxy (its lifespan on) over the shared uvicorn thread."""

    def __init__(self, app: Any) -> None:
        super().__init__(app, lifespan="on")


def make_proxy(project: Project, upstream: str, **overrides: Any) -> Any:
    from bastion.serve.auth import Authenticator
    from bastion.serve.guard_proxy import GuardProxy, ProxyConfig

    config = ProxyConfig(upstream=upstream, **overrides)
    return GuardProxy(
        config=config,
        authenticator=Authenticator(verify_token=project.vault.authenticate),
        audit=project.vault.audit,
    )


def assert_obfuscated_flagged(rewrite: Any, injections: Any, channel: str, name: str = "") -> None:
    """Each of ``injections`` rewritten by ``rewrite`` is flagged on ``channel`` as obfuscation (the rounds-17
    normaliser tests: a rewrite the detector must read through)."""
    from bastion.guard import PromptDetector

    det = PromptDetector()
    for text in injections:
        rewritten = rewrite(text)
        verdict = det.scan(rewritten, channel=channel)
        assert verdict.flagged, (name, channel, rewritten, verdict.score)
        assert "obfuscation" in verdict.categories, (name, channel, rewritten)


# Lisu letters that look like Latin capitals (the rounds 18 / 18b rewrite tests spell injections with them)
LISU = dict(zip("ABCDEFGHIJKLMNOPRSTUVWXYZ", "ꓮꓐꓚꓓꓰꓝꓖꓧꓲꓙꓗꓡꓟꓠꓳꓑꓣꓢꓔꓴꓦꓪꓫꓬꓜ", strict=True))


def plain_rule_hits(text: str) -> tuple[str, ...]:
    """Round 16's rule_hits, the reference the perf tests check the fast rule matching against: every rule's
    whole pattern, then the line-start patterns at every view."""
    from bastion.guard import rules

    low = text.lower()
    hits = {r.name for r in rules.RULES if r.pattern.search(low)}
    missing = [(n, p) for n, p in rules._LINE_START if n not in hits]
    for line, pos in rules._views(low) if missing else ():
        hits.update(n for n, p in missing if p.match(line, pos))
    return tuple(r.name for r in rules.RULES if r.name in hits)
