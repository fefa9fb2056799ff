"""Models: the :class:`ModelAdapter` seam, its adapters, and the built-in training recipes and data.

``bastion.models.interface`` defines the protocol; ``bastion.models.adapters`` the torch, scikit-learn,
callable and remote (Open Inference Protocol v2) adapters; ``bastion.models.data`` and
``bastion.models.recipes`` the offline datasets and small MLP recipes. Torch is imported only when a torch
adapter or recipe is used.
"""

from __future__ import annotations

from bastion.models.adapters import CallableAdapter, RemoteAdapter, SklearnAdapter, TorchAdapter
from bastion.models.interface import (
    GradientAdapter,
    ModelAdapter,
    check_input,
    check_labels,
    supports_gradients,
)

__all__ = [
    "CallableAdapter",
    "GradientAdapter",
    "ModelAdapter",
    "RemoteAdapter",
    "SklearnAdapter",
    "TorchAdapter",
    "check_input",
    "check_labels",
    "supports_gradients",
]
