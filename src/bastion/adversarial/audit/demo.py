"""The ``--demo`` audit target: a small MLP trained on scikit-learn's digits."""

from __future__ import annotations

from bastion.adversarial.audit.types import AuditTarget


def demo_target(*, seed: int = 0, epochs: int = 30) -> AuditTarget:
    """A small MLP trained on scikit-learn's digits (pixels in [0, 1]): the ``--demo`` model."""
    from bastion.adversarial.attacks.membership import mlp_shadow_trainer
    from bastion.models.data import load_dataset

    ds = load_dataset("digits", seed=seed)
    trainer = mlp_shadow_trainer(
        input_shape=(ds.n_features,),
        n_classes=ds.n_classes,
        hidden=(64,),
        epochs=epochs,
        batch_size=64,
        lr=3e-3,
        clip_values=(0.0, 1.0),
    )
    model = trainer(ds.x_train, ds.y_train, seed)
    return AuditTarget(
        model=model,
        x=ds.x_test,
        y=ds.y_test,
        x_train=ds.x_train,
        y_train=ds.y_train,
        trainer=trainer,
        description={
            "reference": "demo: MLP(64) on digits",
            "kind": "torch",
            "input_shape": [ds.n_features],
            "n_classes": ds.n_classes,
            "white_box": True,
            "data": {"source": "scikit-learn digits (built in)"},
        },
    )


__all__ = ["demo_target"]
