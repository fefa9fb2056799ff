"""bastion: secure an ML model as routinely as you test it.

The public surface lives in the capability packages (``bastion.vault``, ``bastion.scan``, ``bastion.data``,
``bastion.privacy``, ``bastion.adversarial``, ``bastion.watermark``, ``bastion.serve``); this module only
carries the version, the error tree and ``connect`` (the remote vault of :mod:`bastion.client`).
"""

from importlib.metadata import PackageNotFoundError, version

from bastion.errors import BastionError

try:
    __version__ = version("bastion-ml")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+local"


def __getattr__(name: str) -> object:
    """``bastion.connect(url, token=...)``: a vault on a ``bastion server`` (imported on first use)."""
    if name == "connect":
        from bastion.client import connect

        return connect
    raise AttributeError(f"module 'bastion' has no attribute {name!r}")


__all__ = ["BastionError", "__version__", "connect"]
