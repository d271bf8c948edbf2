"""Client: the entry point of the SDK."""

from __future__ import annotations

import base64
import http.client
import json
import os
import random
import socket
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Sequence

from ._errors import PlugboardError
from ._transport import Abort, HttpRequest, HttpResponse, HttpTransport, Transport
from ._version import VERSION

#: A wait longer than this (Retry-After) is not waited for: the error is raised at once.
MAX_RETRY_WAIT_S = 60.0
#: The first wait of the exponential backoff when the server gave no Retry-After.
BACKOFF_BASE_S = 0.5
#: The statuses the client retries: the server said "later".
RETRY_STATUSES = frozenset({429, 503})


def new_correlation_id() -> str:
    """A fresh correlation id in the server's own shape (``c_`` and 26 base32 letters)."""
    return "c_" + base64.b32encode(os.urandom(16)).decode("ascii").rstrip("=").lower()


@dataclass(frozen=True)
class InvokeResult:
    """The answer of an action call."""

    output: Any
    """The action's output (a dict for most actions, per the action's output_schema)."""
    connector: str
    """The connector that ran."""
    version: str
    """The connector version that ran."""
    correlation_id: str
    """The call's correlation id (``client.invocations.get(correlation_id)`` shows its log)."""


@dataclass
class _Answer:
    status: int
    headers: Dict[str, str]
    body: bytes

    def json(self) -> Any:
        if not self.body:
            return None
        return json.loads(self.body.decode("utf-8"))


class Client:
    """Client talks to one Plugboard server with one token.

    ``url`` is the server's base URL (``http://127.0.0.1:8080``); ``token`` an API key
    (``pbk_...``) or the admin token. Options, keyword-only:

    - ``retry_total``: how many times a 429 or 503 answer is retried (default 2), waiting what
      ``Retry-After`` says (else an exponential backoff from 0.5 s with jitter); a wait over
      60 s is not waited for (the error is raised at once). Nothing else is retried.
    - ``timeout``: seconds for connecting and for each read of one request (default 30; an
      events long poll waits ``wait_s`` on top of it).
    - ``user_agent``: appended to ``plugboard-python/<version>`` in the User-Agent header.
    - ``transport``: the HTTP transport (default :class:`HttpTransport`); tests pass their own.

    Operation groups are attributes: ``connectors``, ``connections``, ``subscriptions``,
    ``events``, ``mcp_servers``, ``keys``, ``audit``, ``invocations``; actions are called with
    :meth:`invoke`. Use it as a context manager, or call :meth:`close`, to release its
    connections::

        with Client(os.environ["PLUGBOARD_URL"], os.environ["PLUGBOARD_TOKEN"]) as client:
            result = client.invoke("http", "request", connection="crm",
                                   input={"method": "GET", "path": "/records"})
            print(result.output["body"], result.correlation_id)

    A non-2xx answer raises :class:`PlugboardError`; a network failure raises
    ``ConnectionError`` (``TimeoutError`` for a timeout) naming the method and URL.
    A client is safe to share between threads.
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        retry_total: int = 2,
        timeout: float = 30.0,
        user_agent: Optional[str] = None,
        transport: Optional[Transport] = None,
    ) -> None:
        u = urllib.parse.urlsplit(url or "")
        if u.scheme not in ("http", "https") or not u.netloc:
            raise ValueError(f"Client: url {url!r} is not an http(s) URL; pass the server's base URL, such as http://127.0.0.1:8080")
        if not token:
            raise ValueError("Client: token is empty; pass an API key (pbk_...) or the admin token, for example from PLUGBOARD_TOKEN")
        if retry_total < 0:
            raise ValueError("Client: retry_total must be 0 or more")
        if timeout <= 0:
            raise ValueError("Client: timeout must be more than 0 seconds")
        self._url = url.rstrip("/")
        self._token = token
        self._retry_total = retry_total
        self._timeout = float(timeout)
        self._user_agent = f"plugboard-python/{VERSION}" + (f" {user_agent}" if user_agent else "")
        self._transport: Transport = transport if transport is not None else HttpTransport()
        self._sleep = time.sleep

        from ._operations import (
            AuditOperations,
            ConnectionsOperations,
            ConnectorsOperations,
            EventsOperations,
            InvocationsOperations,
            KeysOperations,
            MCPServersOperations,
            SubscriptionsOperations,
        )

        self.connectors = ConnectorsOperations(self)
        """Connectors and their versions: list, get, actions, upload, activate, delete_version."""
        self.connections = ConnectionsOperations(self)
        """Connections: list, get, create, update, rotate_credentials, reauthorize, delete."""
        self.subscriptions = SubscriptionsOperations(self)
        """Subscriptions to triggers: create, list, get, update, delete, replay."""
        self.events = EventsOperations(self)
        """Queue delivery: pull (the iterator), list (one batch), ack."""
        self.mcp_servers = MCPServersOperations(self)
        """MCP servers: create, list, get, update, rotate_token, delete."""
        self.keys = KeysOperations(self)
        """API keys: create, list, get, revoke."""
        self.audit = AuditOperations(self)
        """The audit log: list."""
        self.invocations = InvocationsOperations(self)
        """Invocation logs: get."""

    @property
    def url(self) -> str:
        """The server's base URL."""
        return self._url

    def __repr__(self) -> str:
        return f"Client({self._url!r})"  # never the token

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Releases the client's connections. The client cannot be used after."""
        self._transport.close()

    def invoke(
        self,
        connector: str,
        action: str,
        *,
        connection: Optional[str] = None,
        input: Any = None,
        version: Optional[str] = None,
        correlation_id: Optional[str] = None,
    ) -> InvokeResult:
        """Calls a connector's action (``POST /v1/connectors/{connector}/actions/{action}``).

        ``connection`` is required unless the connector's auth type is none; ``input`` is
        checked against the action's input_schema (400 ``invalid_input`` with ``errors``);
        ``version`` pins a stored version (default the active one); ``correlation_id`` is sent
        as ``X-Correlation-ID`` (one is made otherwise) and comes back on the result.
        """
        body: Dict[str, Any] = {"input": {} if input is None else input}
        if connection is not None:
            body["connection"] = connection
        if version is not None:
            body["version"] = version
        ans = self._request(
            "POST",
            ("connectors", connector, "actions", action),
            json_body=body,
            correlation_id=correlation_id,
        )
        doc = ans.json()
        return InvokeResult(
            output=doc.get("output"),
            connector=doc.get("connector", connector),
            version=doc.get("version", ""),
            correlation_id=doc.get("correlation_id") or ans.headers.get("x-correlation-id", ""),
        )

    # The one path every operation takes.

    def _request(
        self,
        method: str,
        path: Sequence[str],
        *,
        query: Optional[Mapping[str, Any]] = None,
        json_body: Any = None,
        body: Optional[bytes] = None,
        content_type: Optional[str] = None,
        correlation_id: Optional[str] = None,
        timeout: Optional[float] = None,
        abort: Optional[Abort] = None,
    ) -> _Answer:
        url = self._url + "/v1/" + "/".join(urllib.parse.quote(str(p), safe="") for p in path)
        if query:
            pairs = [(k, _query_value(v)) for k, v in query.items() if v is not None]
            if pairs:
                url += "?" + urllib.parse.urlencode(pairs)
        headers = {
            "Authorization": f"Bearer {self._token}",
            "Accept": "application/json",
            "User-Agent": self._user_agent,
            "X-Correlation-ID": correlation_id or new_correlation_id(),
        }
        if json_body is not None:
            body = json.dumps(json_body, separators=(",", ":")).encode("utf-8")
            content_type = "application/json"
        if body is not None:
            headers["Content-Type"] = content_type or "application/octet-stream"
        req = HttpRequest(method, url, headers, body, timeout or self._timeout, abort)
        attempt = 0
        while True:
            resp = self._send(req)
            if 200 <= resp.status < 300:
                return _Answer(resp.status, resp.headers, resp.body)
            err = PlugboardError.from_response(resp.status, resp.headers, resp.body, method=method, url=url)
            if resp.status not in RETRY_STATUSES or attempt >= self._retry_total:
                raise err
            wait = err.retry_after
            if wait is None:
                wait = BACKOFF_BASE_S * (2 ** attempt) * random.uniform(0.8, 1.2)
            if wait > MAX_RETRY_WAIT_S:
                raise err
            self._sleep(wait)
            attempt += 1

    def _send(self, req: HttpRequest) -> HttpResponse:
        try:
            return self._transport.send(req)
        except socket.timeout as err:  # TimeoutError on 3.10+
            raise TimeoutError(f"{req.method} {req.url}: no answer within {req.timeout:g} s ({err}); raise Client(timeout=...) for slow actions") from err
        except (OSError, http.client.HTTPException) as err:
            raise ConnectionError(f"{req.method} {req.url}: {err or type(err).__name__}; is the server running and the URL right?") from err


def _query_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


__all__ = ["Client", "InvokeResult", "new_correlation_id"]
