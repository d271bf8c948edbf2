"""The HTTP layer under the client: one request in, one response out.

A transport is any object with ``send(request) -> HttpResponse`` and ``close()``; the client
does retries, errors and JSON above it. The default, :class:`HttpTransport`, speaks HTTP/1.1
with ``http.client`` (standard library), keeps connections alive, never follows redirects
(a redirect would carry the bearer token elsewhere) and ignores proxy environment variables.
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import threading
import urllib.parse
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Protocol, Tuple


#: The JSON fields whose values a request's repr never shows.
SECRET_FIELDS = frozenset({"api_key", "password", "client_secret", "secret", "secrets", "token", "signing_secret"})
#: The headers whose values a request's repr never shows.
SECRET_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


class Abort:
    """Abort cancels an HTTP exchange in flight from another thread: the transport registers
    a callback that shuts the connection's socket, so a blocked read fails at once. The
    events iterator uses it so that ``close()`` ends a long poll without waiting for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: List[Callable[[], None]] = []
        self.fired = False

    def on_abort(self, fn: Callable[[], None]) -> Callable[[], None]:
        """Calls fn when the abort fires (at once if it has); returns a function that
        unregisters it."""
        with self._lock:
            if not self.fired:
                self._callbacks.append(fn)
                return lambda: self._remove(fn)
        fn()
        return lambda: None

    def _remove(self, fn: Callable[[], None]) -> None:
        with self._lock:
            if fn in self._callbacks:
                self._callbacks.remove(fn)

    def fire(self) -> None:
        """Aborts: runs every registered callback once."""
        with self._lock:
            self.fired = True
            callbacks, self._callbacks = self._callbacks, []
        for fn in callbacks:
            try:
                fn()
            except OSError:
                pass


@dataclass
class HttpRequest:
    """One HTTP request as the client hands it to a transport."""

    method: str
    """GET, POST, PUT, PATCH or DELETE."""
    url: str
    """The absolute URL, query included."""
    headers: Dict[str, str]
    """The request headers (Authorization included: never print them)."""
    body: Optional[bytes] = None
    """The body, or None."""
    timeout: float = 30.0
    """Seconds to wait for the connection and for each read."""
    abort: Optional[Abort] = field(default=None, compare=False)
    """When set, firing it cancels the exchange (the transport should fail it at once)."""

    def __repr__(self) -> str:
        headers = {k: ("***" if k.lower() in SECRET_HEADERS else v) for k, v in self.headers.items()}
        return f"HttpRequest(method={self.method!r}, url={self.url!r}, headers={headers!r}, body={redact_body(self.body)})"


@dataclass
class HttpResponse:
    """One HTTP response as a transport gives it back."""

    status: int
    """The status code."""
    headers: Dict[str, str]
    """The response headers, names in lower case (repeated headers joined with ", ")."""
    body: bytes
    """The whole body."""


class Transport(Protocol):
    """What the client needs of a transport (pass one as ``Client(..., transport=...)``)."""

    def send(self, request: HttpRequest) -> HttpResponse:
        """Sends the request and reads the whole response. Network failures raise OSError
        or http.client.HTTPException; a non-2xx status is a response, not an error."""
        ...

    def close(self) -> None:
        """Releases the transport's connections."""
        ...


def redact_body(body: Optional[bytes]) -> str:
    """A body for a repr: JSON with its secret fields replaced by "***", else its size."""
    if body is None:
        return "None"
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return f"<{len(body)} bytes>"
    return json.dumps(redact(doc))


def redact(doc: object) -> object:
    """A copy of a JSON value with the values of secret fields replaced by "***"."""
    if isinstance(doc, dict):
        return {k: ("***" if k in SECRET_FIELDS else redact(v)) for k, v in doc.items()}
    if isinstance(doc, list):
        return [redact(v) for v in doc]
    return doc


_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_Key = Tuple[str, str, int]


class HttpTransport:
    """HttpTransport is the default transport: HTTP/1.1 over ``http.client`` with kept-alive
    connections (at most ``max_idle`` idle ones per origin), TLS for https URLs (the system's
    trust store, or ``ssl_context``), no redirects, no proxies. Thread-safe."""

    def __init__(self, *, max_idle: int = 4, ssl_context: Optional[object] = None) -> None:
        self._max_idle = max_idle
        self._ssl_context = ssl_context
        self._lock = threading.Lock()
        self._idle: Dict[_Key, List[http.client.HTTPConnection]] = {}
        self._closed = False

    def send(self, request: HttpRequest) -> HttpResponse:
        """Sends one request (see :class:`Transport`)."""
        u = urllib.parse.urlsplit(request.url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"{request.url}: not an http(s) URL")
        port = u.port or (443 if u.scheme == "https" else 80)
        key: _Key = (u.scheme, u.hostname, port)
        target = (u.path or "/") + (f"?{u.query}" if u.query else "")
        conn, reused = self._take(key, request.timeout)
        try:
            return self._exchange(key, conn, target, request)
        except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
            # A kept-alive connection the server closed while idle: retried once on a new
            # connection when the method may be repeated.
            if not reused or request.method not in _IDEMPOTENT or (request.abort and request.abort.fired):
                raise
            return self._exchange(key, self._new(key, request.timeout), target, request)

    def _exchange(self, key: _Key, conn: http.client.HTTPConnection, target: str, request: HttpRequest) -> HttpResponse:
        unregister: Callable[[], None] = lambda: None
        if request.abort is not None:
            unregister = request.abort.on_abort(lambda: _shutdown(conn))
        try:
            conn.request(request.method, target, body=request.body, headers=request.headers)
            resp = conn.getresponse()
            body = resp.read()
        except BaseException:
            conn.close()
            raise
        finally:
            unregister()
        headers: Dict[str, str] = {}
        for name, value in resp.getheaders():
            name = name.lower()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        if resp.will_close or (request.abort is not None and request.abort.fired):
            conn.close()
        else:
            self._put(key, conn)
        return HttpResponse(resp.status, headers, body)

    def _new(self, key: _Key, timeout: float) -> http.client.HTTPConnection:
        scheme, host, port = key
        if scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=timeout, context=self._ssl_context)  # type: ignore[arg-type]
        return http.client.HTTPConnection(host, port, timeout=timeout)

    def _take(self, key: _Key, timeout: float) -> Tuple[http.client.HTTPConnection, bool]:
        while True:
            with self._lock:
                if self._closed:
                    raise RuntimeError("the client is closed: make a new Client")
                idle = self._idle.get(key)
                conn = idle.pop() if idle else None
            if conn is None:
                return self._new(key, timeout), False
            sock = conn.sock
            if sock is None or _readable(sock):
                conn.close()  # closed by the server while idle (or it sent bytes unasked)
                continue
            sock.settimeout(timeout)
            conn.timeout = timeout
            return conn, True

    def _put(self, key: _Key, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if self._closed or len(idle) >= self._max_idle:
                conn.close()
            else:
                idle.append(conn)

    def close(self) -> None:
        """Closes the idle connections; later sends fail."""
        with self._lock:
            self._closed = True
            conns = [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
        for c in conns:
            c.close()


def _readable(sock: object) -> bool:
    try:
        r, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(r)


def _shutdown(conn: http.client.HTTPConnection) -> None:
    sock = conn.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


__all__ = ["Abort", "HttpRequest", "HttpResponse", "HttpTransport", "Transport", "redact"]
