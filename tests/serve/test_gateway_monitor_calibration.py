"""The gateway's own PRADA/coverage monitor is calibrated per key on the theft defence's reference rows."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .test_theft import make_defence


def test_the_gateway_monitor_is_calibrated_on_the_theft_reference(
    project: Any, digits: Any, kit: Any
) -> None:
    from bastion.serve.config import GatewayConfig

    defence = make_defence(digits, secret=os.urandom(32))
    gw = kit.make_gateway(project, digits, theft=defence, monitor_key=os.urandom(32))
    assert gw.monitor is not None and gw.monitor.calibration is not None
    # without a theft defence there is nothing to calibrate on: the monitor says so instead of guessing
    plain = kit.make_gateway(project, digits, config=GatewayConfig(), monitor_key=os.urandom(32))
    assert plain.monitor is not None and plain.monitor.calibration is None
    # the calibrated coverage test does not flag a held-out natural stream sent each row three times (the
    # stand-alone PRADA test still does: exact repeats are why the theft defence runs it on distinct rows)
    rows = np.repeat(digits.x_test[:200].reshape(200, -1), 3, axis=0)
    verdicts = [gw.monitor.observe("benign", rows[i : i + 20]) for i in range(0, len(rows), 20)]
    flagged = [v.reason for v in verdicts if v.reason and v.reason.startswith("coverage")]
    assert not flagged, flagged[:1]
