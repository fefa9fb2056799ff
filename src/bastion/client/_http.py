"""The HTTP transport: httpx over TLS, a bearer token, the server's JSON errors raised as bastion errors."""

from __future__ import annotations

import ipaddress
import queue
import ssl
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx

from bastion import errors as E

DEFAULT_TIMEOUT = httpx.Timeout(120.0, connect=15.0)
STREAM_TIMEOUT = httpx.Timeout(None, connect=15.0)  # a push answers once the server scanned and signed


def is_loopback(host: str) -> bool:
    """(The client stays free of the serve extra: no import of bastion.serve.)"""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str) -> str:
    """``https://host[:port]`` (``http://`` only on a loopback host: the token must not travel in clear)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise E.ConfigError(f"not a server URL: {url!r} (expected https://HOST[:PORT])")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise E.ConfigError("plain http:// is allowed only to a loopback server: use https://")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise E.ConfigError("the server URL must not carry credentials, a query or a fragment")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def _verify(ca: str | None, verify: bool | ssl.SSLContext) -> bool | ssl.SSLContext:
    if ca is not None:
        try:
            return ssl.create_default_context(cafile=ca)
        except (OSError, ssl.SSLError) as exc:
            raise E.ConfigError(f"cannot load the CA file {ca}") from exc
    return verify


def raise_for(response: httpx.Response) -> None:
    """Raise the bastion error the server named (unknown names: ServiceError); nothing for 2xx."""
    if response.is_success:
        return
    try:
        body = response.json()
        name, message, hint = str(body["error"]), str(body["message"]), body.get("hint")
    except Exception as exc:
        raise E.ServiceError(f"the server answered HTTP {response.status_code}") from exc
    cls = getattr(E, name, None)
    if not (isinstance(cls, type) and issubclass(cls, E.BastionError)):
        cls = E.ServiceError
    raise rebuild(cls, message, hint=str(hint) if hint else None)


def rebuild(cls: type[E.BastionError], message: str, *, hint: str | None = None) -> E.BastionError:
    """An instance of ``cls`` carrying ``message`` (also for classes whose constructor wants more)."""
    try:
        return cls(message, hint=hint)
    except TypeError:
        exc = cls.__new__(cls)
        E.BastionError.__init__(exc, message, hint=hint)
        return exc


class Transport:
    """One connection pool to one server, authenticated with one token."""

    def __init__(
        self,
        url: str,
        *,
        token: str,
        ca: str | None = None,
        verify: bool | ssl.SSLContext = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = check_url(url)
        self._client = httpx.Client(
            base_url=self.url + "/v1",
            headers={"Authorization": f"Bearer {token}", "User-Agent": "bastion-client"},
            verify=_verify(ca, verify),
            timeout=DEFAULT_TIMEOUT,
            transport=transport,
            follow_redirects=False,
        )

    def close(self) -> None:
        self._client.close()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except httpx.ConnectError as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                raise E.ServiceError(
                    f"TLS verification of {self.url} failed",
                    hint="give the server's CA with --ca FILE (bastion login) or BASTION_CA",
                ) from exc
            raise E.ServiceError(f"cannot reach the server at {self.url}") from exc
        except httpx.TimeoutException as exc:
            raise E.ServiceError(f"the server at {self.url} did not answer in time") from exc
        except httpx.HTTPError as exc:
            raise E.ServiceError(f"the connection to {self.url} failed ({type(exc).__name__})") from exc

    def call(self, method: str, path: str, *, json: Any = None, params: Any = None) -> Any:
        with self._errors():
            response = self._client.request(method, path, json=json, params=params)
        raise_for(response)
        try:
            return response.json()
        except ValueError as exc:
            raise E.ServiceError("the server sent a response that is not JSON") from exc

    def upload(self, path: str, body: Iterable[bytes], *, length: int | None = None) -> Any:
        """POST a streamed body (an iterator of chunks: nothing is read ahead). With its exact ``length``
        the body goes out as is (no chunked framing, so no per-chunk copy); a body that then sends more or
        fewer bytes fails the request."""
        headers = {"Content-Type": "application/x-tar"}
        if length is not None:
            headers["Content-Length"] = str(length)
        with self._errors():
            response = self._client.post(path, content=body, headers=headers, timeout=STREAM_TIMEOUT)
        raise_for(response)
        return response.json()

    @contextmanager
    def download(self, path: str, *, params: Any = None) -> Iterator[httpx.Response]:
        """GET a streamed body; the response is checked (errors raised) before it is handed out."""
        with self._errors(), self._client.stream("GET", path, params=params, timeout=STREAM_TIMEOUT) as resp:
            if not resp.is_success:
                resp.read()
                raise_for(resp)
            yield resp


class ResponseReader:
    """A file-like ``read(n)`` over a streamed response (what tarfile's stream mode reads from).

    A helper thread receives (TLS-decrypts) the next chunks while the caller parses, hashes and writes the
    previous ones; at most ``depth`` chunks wait in between, so memory stays bounded.
    """

    def __init__(self, response: httpx.Response, chunk: int, *, depth: int = 8) -> None:
        self._q: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._buf = b""
        self._eof = False
        self._thread = threading.Thread(target=self._pump, args=(response, chunk), daemon=True)
        self._thread.start()

    def _pump(self, response: httpx.Response, chunk: int) -> None:
        item: bytes | BaseException | None = None
        try:
            for data in response.iter_raw(chunk):
                if not self._put(data):
                    return
        except BaseException as exc:  # handed to the reader, which raises it in its own thread
            item = exc
        self._put(item)

    def _put(self, item: bytes | BaseException | None) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def close(self) -> None:
        """Stop the helper thread (the response itself is closed by its context manager)."""
        self._stop.set()
        self._thread.join(5)

    def read(self, size: int = -1, /) -> bytes:
        while not self._buf and not self._eof:
            item = self._q.get()
            if item is None:
                self._eof = True
            elif isinstance(item, httpx.HTTPError):
                raise E.ServiceError(f"the download broke off ({type(item).__name__})") from item
            elif isinstance(item, BaseException):
                raise item
            else:
                self._buf = item
        if size < 0 or size >= len(self._buf):
            out, self._buf = self._buf, b""  # the whole piece: no copy
            return out
        out, self._buf = self._buf[:size], self._buf[size:]
        return out
