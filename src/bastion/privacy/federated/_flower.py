"""Flower plumbing for :mod:`._runner`: the app's ``pyproject.toml``, the executables and their environment,
the SuperLink's health check, and a run submitted to (and polled from) its Control API."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from bastion.errors import DependencyMissing, ServiceError
from bastion.privacy.federated._config import (
    APP_NAME,
    APP_PUBLISHER,
    CLIENT_COMPONENT,
    SERVER_COMPONENT,
    FederationConfig,
)
from bastion.privacy.federated._procs import ProcessGroup
from bastion.privacy.federated._tls import TlsMaterial


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))


def write_app(directory: Path, config: FederationConfig, *, results_path: Path, model_path: Path) -> Path:
    """Write the Flower app (a ``pyproject.toml`` naming bastion's components) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = [
        "[build-system]",
        'requires = ["hatchling"]',
        'build-backend = "hatchling.build"',
        "",
        "[project]",
        f'name = "{APP_NAME}"',
        'version = "1.0.0"',
        'description = "bastion federated training (FedAvg, optional SecAgg+ and DP)"',
        'license = "Apache-2.0"',
        "dependencies = []",
        "",
        "[tool.flwr.app]",
        f'publisher = "{APP_PUBLISHER}"',
        "",
        "[tool.flwr.app.components]",
        f'serverapp = "{SERVER_COMPONENT}"',
        f'clientapp = "{CLIENT_COMPONENT}"',
        "",
        "[tool.flwr.app.config]",
    ]
    for key, value in config.run_config(results_path=results_path, model_path=model_path).items():
        lines.append(f"{key} = {_toml_value(value)}")
    path = directory / "pyproject.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _flower_executable(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    if candidate.is_file():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise DependencyMissing(f"{name} not found", hint="pip install 'bastion-ml[federated]'")
    return found


def _base_env(flwr_home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "FLWR_HOME": str(flwr_home),
            "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
            "FLWR_DISABLE_UPDATE_CHECK": "1",
            "FLWR_TELEMETRY_ENABLED": "0",
            "OMP_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1",
            "PATH": str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""),
        }
    )
    return env


def _wait_healthy(url: str, tls: TlsMaterial, procs: ProcessGroup, *, deadline: float) -> None:
    import httpx

    while time.monotonic() < deadline:
        if procs.dead():
            raise ServiceError(
                "the Flower SuperLink exited during start-up: " + procs.log_tail("superlink", lines=3)
            )
        try:
            if httpx.get(url, verify=str(tls.ca_cert), timeout=1.0).is_success:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise ServiceError("the Flower SuperLink did not become healthy in time")


def _control_client(address: str, tls: TlsMaterial) -> Any:
    from flwr.cli.cli_client_interceptor import CliClientHttpInterceptor
    from flwr.supercore.control.control_http_client import ControlHttpClient
    from flwr.supercore.interceptors.http.runtime_version import RuntimeVersionHttpInterceptor

    return ControlHttpClient.from_server_address(
        server_address=address,
        insecure=False,
        root_certificates=tls.ca_cert.read_bytes(),
        interceptors=[
            CliClientHttpInterceptor(),
            RuntimeVersionHttpInterceptor(component_name="flwr CLI"),
        ],
    )


def _submit_and_wait(
    client: Any, app_dir: Path, procs: ProcessGroup, *, deadline: float
) -> tuple[int, str, str]:
    from flwr.cli.build import build_fab_from_disk
    from flwr.common.serde import fab_to_proto
    from flwr.proto.control_pb2 import ListRunsRequest, StartRunRequest, StopRunRequest
    from flwr.supercore.fab import Fab

    fab_bytes = build_fab_from_disk(app_dir)
    import hashlib

    fab = Fab(hashlib.sha256(fab_bytes).hexdigest(), fab_bytes, {})
    res = client.StartRun(StartRunRequest(fab=fab_to_proto(fab)))
    if not res.HasField("run_id"):
        raise ServiceError("the SuperLink did not start the run")
    run_id = int(res.run_id)
    while True:
        runs = client.ListRuns(ListRunsRequest(run_id=run_id))
        run = runs.run_dict.get(run_id)
        if run is not None and run.status.status == "finished":
            return run_id, run.status.sub_status, run.status.details
        dead = procs.dead()
        if dead:
            raise ServiceError(f"Flower process(es) exited during the run: {', '.join(dead)}")
        if time.monotonic() > deadline:
            client.StopRun(StopRunRequest(run_id=run_id))
            raise ServiceError("the federation did not finish before the timeout")
        time.sleep(0.3)
