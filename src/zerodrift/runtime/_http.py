"""A small HTTP client for a REST API served on a unix socket (podman's).

The standard library's ``http.client`` does all the HTTP work; this module
only connects it to a unix socket and turns failures into zerodrift errors.
A third-party client would add a dependency for five endpoints' worth of
convenience and, in podman-py's case, silently dropped options.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import quote, urlencode

from zerodrift.errors import OperationalError

__all__ = ["ApiError", "UnixClient"]

_API_PREFIX = "/v4.0.0/libpod"


class ApiError(OperationalError):
    """The API answered with an error status.

    Attributes:
        status: The HTTP status code.
    """

    reference = "podman-api-error"

    def __init__(self, status: int, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class UnixClient:
    """Calls the libpod REST API on one unix socket.

    Args:
        socket_path: The API socket.
        timeout: Default seconds to wait for an answer.
    """

    def __init__(self, socket_path: str, *, timeout: float = 60.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    def url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        """Build the request target for an API path and query parameters."""
        target = _API_PREFIX + path
        if params:
            clean = {
                k: (json.dumps(v) if isinstance(v, dict | list) else v)
                for k, v in params.items()
                if v is not None
            }
            clean = {
                k: (str(v).lower() if isinstance(v, bool) else v)
                for k, v in clean.items()
            }
            target += "?" + urlencode(clean)
        return target

    def _open(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: bytes | Iterable[bytes] | None = None,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> tuple[_UnixConnection, http.client.HTTPResponse]:
        conn = _UnixConnection(self.socket_path, timeout or self.timeout)
        headers = {"Content-Type": content_type} if body is not None else {}
        try:
            if body is not None and not isinstance(body, bytes):
                headers["Transfer-Encoding"] = "chunked"
                conn.request(
                    method,
                    self.url(path, params),
                    body=body,
                    headers=headers,
                    encode_chunked=True,
                )
            else:
                conn.request(method, self.url(path, params), body=body, headers=headers)
            return conn, conn.getresponse()
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            conn.close()
            raise OperationalError(
                f"podman API socket {self.socket_path} is unreachable: {exc.strerror}",
                hint="start it with 'podman system service --time=0 "
                f"unix://{self.socket_path}', or use runtime: podman:// in the "
                "spec to let zerodrift start a private one",
                reference="podman-unreachable",
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise OperationalError(
                f"podman API {method} {path} failed: {exc}",
                reference="podman-unreachable",
            ) from exc

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: bytes | Iterable[bytes] | None = None,
        json_body: Any = None,
        content_type: str = "application/json",
        timeout: float | None = None,
        ok: Iterable[int] = (),
    ) -> tuple[int, bytes]:
        """Send one request and return the status and body.

        Args:
            method: HTTP method.
            path: API path below ``/libpod`` (``/containers/json``).
            params: Query parameters; dicts and lists are JSON-encoded.
            body: Raw body (bytes, or an iterable streamed chunked).
            json_body: A value sent as JSON instead of ``body``.
            content_type: Content type of ``body``.
            timeout: Seconds to wait (default: the client's).
            ok: Extra statuses (besides 2xx) that are not errors.

        Raises:
            ApiError: The API answered with an error status.
            OperationalError: The socket is unreachable.
        """
        if json_body is not None:
            body = json.dumps(json_body).encode()
        conn, response = self._open(
            method,
            path,
            params=params,
            body=body,
            content_type=content_type,
            timeout=timeout,
        )
        try:
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise OperationalError(
                f"podman API {method} {path} failed: {exc}",
                reference="podman-unreachable",
            ) from exc
        finally:
            conn.close()
        status = response.status
        if 200 <= status < 300 or status in set(ok):
            return status, data
        raise ApiError(status, f"podman API {method} {path}: {_message(data)}")

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send one request and decode its JSON answer (``None`` when empty)."""
        _, data = self.request(method, path, **kwargs)
        return json.loads(data) if data.strip() else None

    def stream_lines(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Iterator[bytes]:
        """GET ``path`` and yield its body line by line as it arrives."""
        conn, response = self._open("GET", path, params=params, timeout=timeout)
        try:
            if response.status >= 300:
                raise ApiError(
                    response.status,
                    f"podman API GET {path}: {_message(response.read())}",
                )
            while True:
                try:
                    line = response.readline()
                except TimeoutError:
                    return
                if not line:
                    return
                if line.strip():
                    yield line
        finally:
            conn.close()


def quote_name(name: str) -> str:
    """Quote a name for use as one path segment."""
    return quote(name, safe="")


def _message(data: bytes) -> str:
    try:
        decoded = json.loads(data)
    except ValueError:
        return data.decode("utf-8", "replace").strip()[:500]
    if isinstance(decoded, dict):
        return str(decoded.get("message") or decoded.get("cause") or decoded)
    return str(decoded)
