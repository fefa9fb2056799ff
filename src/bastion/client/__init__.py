"""The remote seam: ``bastion.connect(url, token=...)`` returns a :class:`RemoteVault` that offers the local
Vault's public methods (same results, same exceptions), answered by a ``bastion server``.

This machine never holds a KEK, the passphrase or the database: only the token (and, for a private CA, the
CA certificate). Push and pull stream tar in bounded chunks (constant memory on both sides). The CLI uses the
same seam when ``BASTION_URL`` is set (:func:`bastion.cli._common.open_vault`).

    >>> import bastion
    >>> vault = bastion.connect("https://bastion.example:8443", token=token)  # doctest: +SKIP
    >>> vault.pull("digits@prod", out="model/")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import ssl

from bastion.client._http import Transport, check_url
from bastion.client.remote import NotAvailableRemotely, RemoteAccess, RemoteVault
from bastion.errors import ConfigError

URL_ENV = "BASTION_URL"
CA_ENV = "BASTION_CA"


def connect(
    url: str,
    *,
    token: str,
    ca: str | os.PathLike[str] | None = None,
    verify: bool | ssl.SSLContext = True,
) -> RemoteVault:
    """A vault on the server at ``url`` acting as ``token``'s identity.

    ``ca``: a PEM CA bundle to trust (a private CA or the server's self-signed certificate); ``verify=False``
    is for nothing but loopback experiments (an ``unsafe`` choice: the token would go to whoever answers).
    """
    from bastion.vault.project import caller_token

    checked = caller_token(token)  # empty or not shaped like a bastion token: ConfigError, never a fallback
    if checked is None:  # pragma: no cover - caller_token only returns None for token=None
        raise ConfigError("a token is needed to connect")
    return RemoteVault(
        Transport(check_url(url), token=checked, ca=None if ca is None else str(ca), verify=verify)
    )


__all__ = ["CA_ENV", "URL_ENV", "NotAvailableRemotely", "RemoteAccess", "RemoteVault", "check_url", "connect"]
