"""A local pool whose worker died refuses new work with a ServiceError, not a raw BrokenProcessPool."""

from __future__ import annotations

import os
import signal

import pytest

from bastion.compute.local import LocalExecutor
from bastion.errors import ServiceError


def _die(_: int) -> int:
    os.kill(os.getpid(), signal.SIGKILL)
    return 0


def test_a_broken_pool_refuses_new_work_with_a_service_error() -> None:
    with LocalExecutor(workers=1) as ex:
        with pytest.raises(ServiceError):
            ex.map(_die, [1]).gather()
        with pytest.raises(ServiceError, match="worker process died"):
            ex.map(abs, [1]).gather()
