"""A model behind an HTTP endpoint speaking the Open Inference Protocol v2 (KServe / Triton / bastion's
gateway), as a black box: :class:`RemoteAdapter`.

The HTTP client is ``httpx`` with its transport seam: ``transport=`` takes any ``httpx.BaseTransport``
(``httpx.MockTransport(handler)`` in tests where a real server is not the point, a transport with client
certificates or a proxy in a deployment); by default ``httpx``'s own, verifying TLS. Headers (a bearer token)
are sent but never echoed in errors; every transport or protocol failure is one
:class:`~bastion.errors.ServiceError` line.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any

import httpx
import numpy as np

from bastion.errors import InvalidInput, ServiceError
from bastion.models.adapters import _OUTPUTS, Outputs, _n_classes, _normalise, _shape
from bastion.models.interface import check_input


class RemoteAdapter:
    """A model behind an HTTP endpoint speaking the Open Inference Protocol v2 (black box).

    Sends ``POST {url}/v2/models/{model}/infer`` with one FP32 input tensor and reads the first output (or
    ``output_name``). ``headers`` (e.g. ``{"Authorization": "Bearer …"}``) are sent but never echoed in
    errors. ``transport``: the ``httpx`` transport to send through (default: a verifying HTTPS one).
    ``close()`` (or ``with``) releases the connection pool.
    """

    def __init__(
        self,
        url: str,
        *,
        model: str,
        n_classes: int,
        input_shape: tuple[int, ...] | int,
        outputs: Outputs = "probabilities",
        input_name: str = "input",
        output_name: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        batch_size: int = 256,
        clip_values: tuple[float, float] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise InvalidInput(f"endpoint must be an http(s) URL, got {url!r}")
        if outputs not in _OUTPUTS:
            raise InvalidInput(f"outputs must be one of {', '.join(_OUTPUTS)}, got {outputs!r}")
        if batch_size < 1:
            raise InvalidInput("batch_size must be >= 1")
        self.endpoint = f"{url.rstrip('/')}/v2/models/{urllib.parse.quote(model, safe='')}/infer"
        self._n_classes = _n_classes(n_classes)
        self._input_shape = _shape(input_shape)
        self.outputs: str = outputs
        self.label_only = outputs == "labels"
        self.input_name = input_name
        self.output_name = output_name
        self.clip_values = clip_values  # the valid input range: attacks stay inside it
        self.timeout = float(timeout)
        self.batch_size = int(batch_size)
        self._client = httpx.Client(
            transport=transport,
            timeout=self.timeout,
            headers={"Content-Type": "application/json", **dict(headers or {})},
            follow_redirects=False,
        )

    @property
    def n_classes(self) -> int:
        return self._n_classes

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self._input_shape

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> RemoteAdapter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _post(self, x: np.ndarray) -> Any:
        """One OIP v2 request for the batch ``x``: the decoded JSON answer."""
        tensor = {"name": self.input_name, "shape": [int(d) for d in x.shape], "datatype": "FP32"}
        body = {"inputs": [{**tensor, "data": x.reshape(-1).tolist()}]}
        try:
            response = self._client.post(self.endpoint, json=body)
        except httpx.TimeoutException as exc:
            raise ServiceError("inference endpoint unreachable: timed out") from exc
        except httpx.HTTPError as exc:  # connection refused, DNS, TLS, protocol errors
            raise ServiceError(f"inference endpoint unreachable: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise ServiceError(f"inference endpoint answered HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError as exc:
            raise ServiceError("inference endpoint returned invalid JSON") from exc

    def _infer(self, x: np.ndarray) -> np.ndarray:
        payload = self._post(x)
        outputs = payload.get("outputs") if isinstance(payload, dict) else None
        if not isinstance(outputs, list) or not outputs:
            raise ServiceError("inference endpoint returned no outputs")
        chosen = outputs[0]
        if self.output_name is not None:
            named = [o for o in outputs if isinstance(o, dict) and o.get("name") == self.output_name]
            if not named:
                raise ServiceError(f"inference endpoint returned no output named {self.output_name!r}")
            chosen = named[0]
        try:
            data = np.asarray(chosen["data"], dtype=np.float64)
            shape = [int(d) for d in chosen.get("shape", [data.size])]
            data = data.reshape(shape)
        except (KeyError, TypeError, ValueError) as exc:
            raise ServiceError("inference endpoint returned a malformed output tensor") from exc
        if self.outputs == "labels":
            data = data.reshape(-1)
        return _normalise(
            data, n=x.shape[0], n_classes=self._n_classes, outputs=self.outputs, source="the endpoint"
        )

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        arr = check_input(x, self._input_shape)
        return np.concatenate(
            [self._infer(arr[i : i + self.batch_size]) for i in range(0, arr.shape[0], self.batch_size)]
        )

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.predict_proba(x).argmax(axis=1).astype(np.int64)

    def negotiate(self, x: np.ndarray) -> str:
        """Pick the richest named output the endpoint gives this caller (one query with ``x[:1]``).

        A bastion gateway answers with ``probabilities`` (admin), ``top_k_*`` and ``label`` (consumer) or
        ``label`` alone (auditor): full probabilities are used when offered, else the label (label-only).
        Endpoints without named outputs keep the first output. Returns the mode chosen."""
        payload = self._post(check_input(x, self._input_shape)[:1])
        outputs = payload.get("outputs") if isinstance(payload, dict) else None
        names = [str(o.get("name")) for o in outputs or [] if isinstance(o, dict)]
        if "probabilities" in names:
            self.outputs, self.output_name, self.label_only = "probabilities", "probabilities", False
        elif "label" in names:
            self.outputs, self.output_name, self.label_only = "labels", "label", True
        return self.outputs


__all__ = ["RemoteAdapter"]
