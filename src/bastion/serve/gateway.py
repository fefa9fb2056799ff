"""One served model's gateway: the verified model and every part that guards it (limits, guard, output
policy, extraction monitor, theft defence, API watermark, drift monitor, audit writer, metrics).

The routers (:mod:`bastion.serve.routers`) and the middleware (:mod:`bastion.serve.middleware`) receive it
by dependency injection (``request.app.state.gateway``); :func:`bastion.serve.app.create_app` wires it in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from bastion.errors import BastionError, ConfigError, InvalidInput
from bastion.serve.auth import Authenticator
from bastion.serve.config import GatewayConfig
from bastion.serve.guards import InputGuard
from bastion.serve.monitor import ExtractionMonitor, MonitorStore, RedisMonitorStore
from bastion.serve.observability import AuditSink, BatchedAuditWriter, Metrics, gateway_logger
from bastion.serve.output import OutputPolicy
from bastion.serve.ratelimit import RateLimiter
from bastion.serve.text import MONITOR_FEATURES, PiiRedactor, TextModel


@dataclass(frozen=True)
class ServedModel:
    """A verified, loaded model version."""

    name: str
    version: str
    adapter: Any  # bastion.models.ModelAdapter
    digest: str
    env: str | None = None
    platform: str = "bastion"
    input_name: str = "input"
    extras: dict[str, Any] = field(default_factory=dict)
    # bastion.models.data.Preprocessing stored with the model: requests carry raw features; the input guard
    # applies it once; everything after it (range limits, model, drift, watermark, theft) sees model space
    preprocessing: Any = None


class Gateway:
    """All the gateway's parts for one served model. ``close()`` flushes the audit writer."""

    def __init__(
        self,
        *,
        model: ServedModel,
        config: GatewayConfig,
        authenticator: Authenticator,
        audit: AuditSink | None,
        monitor_store: MonitorStore | None = None,
        namespace: str = "",
        logger: logging.Logger | None = None,
        watermark: Any = None,
        theft: Any = None,
        monitor_key: bytes | None = None,
        drift: Any = None,
        response_gate: Any = None,
    ) -> None:
        self.model = model
        # bastion.respond.gate.ResponseGate: clients/identities blocked or throttled by `bastion respond`
        self.response_gate = response_gate
        self.drift = drift  # bastion.serve.drift.DriftMonitor: live input/output drift against training
        self.theft = theft  # bastion.serve.theft.TheftDefence: keyed detection and responses per consumer
        self.config = config
        self.auth = authenticator
        self.log = logger or gateway_logger()
        self.metrics = Metrics()
        self.limiter = RateLimiter(config=config.rate_limit, redis_url=config.redis_url, namespace=namespace)
        shape = tuple(int(d) for d in model.adapter.input_shape)
        self.guard = InputGuard(
            config=config.input_guard,
            input_shape=shape,
            input_name=model.input_name,
            model=model.adapter,
            preprocessing=model.preprocessing,
        )
        self.output = OutputPolicy(config.output_policy)
        self.text_model: TextModel | None = model.adapter if isinstance(model.adapter, TextModel) else None
        self.redactor = PiiRedactor() if self.text_model is not None else None
        self.monitor: ExtractionMonitor | None = None
        if config.monitor.enabled:
            n_features = MONITOR_FEATURES if self.text_model is not None else int(np.prod(shape))
            store = monitor_store
            if store is None and config.redis_url:
                store = RedisMonitorStore(
                    config=config.monitor,
                    n_features=n_features,
                    url=config.redis_url,
                    prefix=f"{config.monitor.key_prefix}{namespace}:{model.name}",
                )
            lo, hi = config.input_guard.min_value, config.input_guard.max_value
            center = (lo + hi) / 2.0 if lo is not None and hi is not None else 0.0
            if self.text_model is not None:  # hashed, L2-normalised bags of words
                center = 1.0 / np.sqrt(MONITOR_FEATURES)
            # With a theft defence its reference rows (model space) calibrate the coverage test per key, so
            # no key's hyperplanes flag natural traffic; without one the monitor stays uncalibrated.
            ref_x = ref_y = None
            refs = getattr(getattr(theft, "scorer", None), "refs", None)
            if refs and self.text_model is None:
                ref_x = np.concatenate([np.asarray(r).reshape(len(r), -1) for r in refs])
                ref_y = np.concatenate([np.full(len(r), c) for c, r in enumerate(refs)])
                if ref_x.shape[1] != n_features:
                    ref_x = ref_y = None
            self.monitor = ExtractionMonitor(
                config=config.monitor,
                n_features=n_features,
                store=store,
                center=center,
                key=monitor_key or (store.shared_secret() if isinstance(store, RedisMonitorStore) else None),
                reference=ref_x,
                reference_labels=ref_y,
            )
        self.he_model = _he_model(model.adapter, model.preprocessing)
        if config.api_watermark.enabled and self.text_model is not None:
            raise ConfigError("[serve.api_watermark] marks numeric inputs only; it cannot mark a text model")
        if config.api_watermark.enabled and watermark is None:
            raise ConfigError("[serve.api_watermark] is enabled but no watermark key was given")
        self.watermark = watermark if config.api_watermark.enabled else None
        audit_cfg = config.audit
        self.writer = (
            BatchedAuditWriter(
                audit,
                target=f"{model.name}:{model.version}",
                max_queue=audit_cfg.max_queue,
                on_failure=audit_cfg.on_failure,
                stall_s=audit_cfg.block_s,
                failure_sample=audit_cfg.failure_sample,
                on_error=self._audit_failed,
            )
            if audit is not None
            else None
        )
        writer = self.writer
        if writer is not None:
            self.metrics.audit_dropped.set_function(lambda: float(writer.dropped))
        if drift is not None:
            drift.register_metrics(self.metrics.registry, model=model.name)
        # Redis-backed limits or monitor: their synchronous calls leave the event loop (threadpool).
        self.blocking_checks = bool(config.redis_url) or self.limiter.shared

    def screen_texts(self, texts: list[str]) -> tuple[list[str], tuple[str, ...]]:
        """Apply ``[serve.text] input_pii`` before the model (or anything else) sees the texts."""
        action = self.config.text.input_pii
        if action == "allow" or self.redactor is None:
            return texts, ()
        out: list[str] = []
        found: set[str] = set()
        for text in texts:
            clean, entities = self.redactor.redact(text)
            if entities and action == "reject":
                raise InvalidInput(f"input text contains PII ({', '.join(sorted(set(entities)))}): rejected")
            found.update(entities)
            out.append(clean)
        return out, tuple(sorted(found))

    def redact_output(self, value: str) -> str:
        if self.redactor is None:
            self.redactor = PiiRedactor()
        return self.redactor.redact(value)[0]

    def drift_changed(self, change: Any) -> None:
        """A drift alert raised or cleared (``DriftTransition``): one warning and one audit entry."""
        details = {"model": self.model.name, "version": self.model.version, **change.details()}
        reason = "; ".join(change.report.alerts) or f"cleared: {', '.join(change.cleared)}"
        self.log.warning(
            "drift alert changed",
            extra={
                "event": "drift-alert",
                "model": self.model.name,
                "version": self.model.version,
                "reason": reason,
            },
        )
        if self.writer is not None:
            self.writer.event(action="serve:drift-alert", outcome="ok", details=details)

    def _audit_failed(self, exc: Exception) -> None:
        self.log.error(
            "audit write failed", extra={"event": "audit-error", "reason": f"{type(exc).__name__}"[:80]}
        )

    def close(self) -> None:
        marks_file = self.config.api_watermark.marks_file
        if self.watermark is not None and marks_file and len(self.watermark):
            self.watermark.marks().save(marks_file)
        self.limiter.close()
        if self.writer is not None:
            self.writer.close()


def _he_model(adapter: Any, preprocessing: Any = None) -> Any:
    """The model's CKKS form when it has one (Linear layers, square activations), else None.

    Encrypted rows cannot be scaled by the gateway, so a stored preprocessing ``(x - shift) / scale`` is
    folded into the first layer (``W / scale``, ``b - W @ (shift / scale)``): encrypted requests carry raw
    features, like plaintext ones."""
    module = getattr(adapter, "module", None)
    if module is None:
        return None
    try:
        from bastion.privacy.he import model_from_torch
    except ImportError:
        return None
    try:
        he = model_from_torch(module)
    except (BastionError, ImportError):
        return None
    if preprocessing is None:
        return he
    (w, b), *rest = he.layers
    shift, scale = np.asarray(preprocessing.shift), np.asarray(preprocessing.scale)
    first = (w / scale, b - w @ (shift / scale))
    return replace(he, layers=(first, *rest))


__all__ = ["Gateway", "ServedModel"]
