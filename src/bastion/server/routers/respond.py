"""The response state for remote gateways (issue 17 M2): ``GET /v1/respond/state``.

A gateway started with ``bastion serve MODEL --server URL`` has no home, so it cannot read
``HOME/respond/state.json`` itself: it asks here every few seconds
(:class:`bastion.respond.gate.RemoteResponseGate`). The answer is the file's signed bytes exactly as
``bastion respond`` wrote them (signature line + JSON, base64), after the server checked them the way a local
gateway does (signature, then :func:`~bastion.store.response_state.check_current` against the audit log's
latest ``respond:state`` record: a deleted or rolled-back file is refused, 422), plus the public key that
signed them. The gateway verifies the signature itself with a key it pins (``bastion serve --server URL
--response-key PEM``: the server home's log key, which ``bastion log key`` prints; or else the first key it
was sent, with a warning) and never goes back to a lower serial. With no state yet (and none logged) the
server signs an empty state of serial 0 on the spot, so even "nothing is blocked" is a signed answer. When
the home's log has witnesses (``[[log.witness]]``), a log behind them (the whole home rolled back to an
older snapshot) is refused too (:mod:`bastion.respond.rollback`).

Who may ask: ``gateway`` identities (their workload credential) and ``serve:admin`` holders; the state names
blocked addresses and identities, so no one else.
"""

from __future__ import annotations

import base64

from fastapi import APIRouter

from bastion.access import allowed
from bastion.errors import AccessDenied
from bastion.server.deps import CallerIdentity, ServerStateDep
from bastion.store.response_state import (
    ResponseState,
    check_current,
    encode_signed,
    state_path,
    verify_signed,
)

router = APIRouter()


@router.get("/respond/state")
def response_state(identity: CallerIdentity, state: ServerStateDep) -> dict[str, object]:
    if identity.role != "gateway" and not allowed(identity, "serve:admin"):
        raise AccessDenied(f"{identity.name} ({identity.role}) may not read the response state")
    signer = state.base.signer
    logged = state.response_logged.latest()
    try:
        raw = state_path(state.home).read_bytes()  # read once: these bytes are checked and sent
    except FileNotFoundError:
        if logged is not None:
            check_current(None, logged)  # raises: the log records a state that is gone
        raw = encode_signed(ResponseState(), signer)
    current = verify_signed(raw, signer)
    check_current(current, logged)
    if state.response.witnessed is not None:  # the home rolled back as a whole: behind the log's witnesses
        state.response.witnessed()
    return {
        "signed": base64.b64encode(raw).decode("ascii"),
        "serial": current.serial,
        "public_key_pem": signer.public_key_pem(),
    }
