"""bastion: secure an ML model as routinely as you test it.

The public surface lives in the capability packages (``bastion.vault``, ``bastion.scan``, ``bastion.data``,
``bastion.privacy``, ``bastion.adversarial``, ``bastion.watermark``, ``bastion.serve``); this module only
carries the version and the error tree.
"""

from importlib.metadata import PackageNotFoundError, version

from bastion.errors import BastionError

try:
    __version__ = version("bastion-ml")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+local"

__all__ = ["BastionError", "__version__"]
