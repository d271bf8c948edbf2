"""The operation groups of a Client: each method is one HTTP exchange of docs/API.md (list
methods follow ``next`` where the API pages)."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Union

from ._auth import Auth, auth_dict
from ._events import EventIterator, _ack, _pull
from ._models import (
    Action,
    ActivatedVersion,
    AuditEntry,
    Connection,
    Connector,
    ConnectorSummary,
    Delivery,
    Event,
    Invocation,
    Key,
    KeyScopes,
    MCPServer,
    RateLimit,
    Role,
    Subscription,
    Version,
)

if TYPE_CHECKING:
    from ._client import Client


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


#: The default of an argument whose None means something (remove a rate limit, serve every
#: tool): leaving it out changes nothing.
UNSET: Any = _Unset()

Timestamp = Union[str, datetime.datetime]


def _rfc3339(t: Timestamp) -> str:
    if isinstance(t, datetime.datetime):
        if t.tzinfo is None:
            raise ValueError("a datetime without a time zone is ambiguous: pass one with tzinfo (datetime.timezone.utc)")
        return t.astimezone(datetime.timezone.utc).isoformat().replace("+00:00", "Z")
    return t


def _drop_none(d: Mapping[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None and v is not UNSET}


class _Group:
    def __init__(self, client: "Client") -> None:
        self._client = client

    def _json(self, method: str, *path: str, body: Any = None, query: Optional[Mapping[str, Any]] = None) -> Any:
        return self._client._request(method, path, json_body=body, query=query).json()


class ConnectorsOperations(_Group):
    """Connectors and their versions (``client.connectors``)."""

    def list(self) -> List[ConnectorSummary]:
        """The connectors the caller may see (``GET /v1/connectors``)."""
        return self._json("GET", "connectors")["connectors"]

    def get(self, name: str) -> Connector:
        """A connector with its active manifest and its versions."""
        return self._json("GET", "connectors", name)

    def get_version(self, name: str, version: str) -> Version:
        """One stored version: manifest, digest, size, upload time."""
        return self._json("GET", "connectors", name, "versions", version)

    def actions(self, name: str, *, version: Optional[str] = None) -> List[Action]:
        """The actions of the active version (or ``version``), with their schemas."""
        return self._json("GET", "connectors", name, "actions", query={"version": version})["actions"]

    def openapi(self, name: str, *, version: Optional[str] = None) -> Dict[str, Any]:
        """The connector's actions as an OpenAPI 3.1 document (one typed operation each)."""
        return self._json("GET", "connectors", name, "openapi.json", query={"version": version})

    def upload(self, wasm: bytes, *, activate: bool = False, approve_capabilities: bool = False) -> Version:
        """Uploads a plugin (``POST /v1/connectors``, the ``.wasm`` bytes). The first version of
        a connector is always activated; later ones only with ``activate=True`` (the answer
        then comes once it serves). ``approve_capabilities`` accepts new origins, auth types or
        reveals the new version asks for (else 409 ``capabilities_changed``)."""
        query = {"activate": True if activate else None, "approve": "capabilities" if approve_capabilities else None}
        ans = self._client._request("POST", ("connectors",), body=bytes(wasm), content_type="application/wasm", query=query)
        return ans.json()

    def activate(
        self,
        name: str,
        version: str,
        *,
        approve_capabilities: bool = False,
        canary: Optional[Mapping[str, Any]] = None,
    ) -> ActivatedVersion:
        """Hot swap or roll back to ``version`` (``PUT /v1/connectors/{name}/active``), once it
        serves. ``canary`` (``{"version": "1.4.0", "percent": 10}``) routes a share of the calls
        to another version; ``approve_capabilities`` as for :meth:`upload`."""
        body: Dict[str, Any] = {"version": version}
        if canary is not None:
            body["canary"] = dict(canary)
        query = {"approve": "capabilities" if approve_capabilities else None}
        return self._json("PUT", "connectors", name, "active", body=body, query=query)

    def delete_version(self, name: str, version: str) -> None:
        """Removes an inactive version (409 ``version_active`` for the active one)."""
        self._client._request("DELETE", ("connectors", name, "versions", version))


class ConnectionsOperations(_Group):
    """Connections: credentials and params shared by the connectors bound to them
    (``client.connections``). Secrets are write-only: no answer shows them."""

    def list(self) -> List[Connection]:
        """The connections the caller may see."""
        return self._json("GET", "connections")["connections"]

    def get(self, id: str) -> Connection:
        """One connection."""
        return self._json("GET", "connections", id)

    def create(
        self,
        id: str,
        *,
        connectors: Sequence[str],
        auth: Auth,
        params: Optional[Mapping[str, Any]] = None,
        secrets: Optional[Mapping[str, str]] = None,
        reveal_approved: Optional[Sequence[str]] = None,
        rate_limit: Optional[RateLimit] = None,
    ) -> Connection:
        """Creates a connection for ``connectors`` (``POST /v1/connections``). ``auth`` is
        ``NoAuth()``, ``ApiKeyAuth(key)``, ``BasicAuth(user, password)``, ``OAuth2Auth(...)`` or
        the request's dict; ``params`` are checked against each connector's connection_params.
        An OAuth2 authorization-code connection answers ``pending_consent`` with a
        ``consent_url`` to open in a browser."""
        body = _drop_none(
            {
                "id": id,
                "connectors": list(connectors),
                "auth": auth_dict(auth),
                "params": dict(params) if params is not None else None,
                "secrets": dict(secrets) if secrets is not None else None,
                "reveal_approved": list(reveal_approved) if reveal_approved is not None else None,
                "rate_limit": rate_limit,
            }
        )
        return self._json("POST", "connections", body=body)

    def update(
        self,
        id: str,
        *,
        params: Optional[Mapping[str, Any]] = None,
        connectors: Optional[Sequence[str]] = None,
        hosts: Optional[Sequence[str]] = None,
        reveal_approved: Optional[Sequence[str]] = None,
        rate_limit: Optional[RateLimit] = UNSET,
    ) -> Connection:
        """Changes what is given (``PATCH /v1/connections/{id}``); ``rate_limit=None`` removes
        the limit."""
        body = _drop_none(
            {
                "params": dict(params) if params is not None else None,
                "connectors": list(connectors) if connectors is not None else None,
                "hosts": list(hosts) if hosts is not None else None,
                "reveal_approved": list(reveal_approved) if reveal_approved is not None else None,
            }
        )
        if rate_limit is not UNSET:
            body["rate_limit"] = rate_limit
        return self._json("PATCH", "connections", id, body=body)

    def rotate_credentials(self, id: str, auth: Auth, *, secrets: Optional[Mapping[str, str]] = None) -> Connection:
        """Replaces the credentials (``PUT /v1/connections/{id}/credentials``); calls after the
        answer use the new secret."""
        body: Dict[str, Any] = {"auth": auth_dict(auth)}
        if secrets is not None:
            body["secrets"] = dict(secrets)
        return self._json("PUT", "connections", id, "credentials", body=body)

    def reauthorize(self, id: str, *, scopes: Optional[Sequence[str]] = None) -> Connection:
        """OAuth2: a new ``consent_url`` (for ``needs_reauth`` or new ``scopes``)."""
        body = _drop_none({"scopes": list(scopes) if scopes is not None else None})
        return self._json("POST", "connections", id, "reauthorize", body=body)

    def delete(self, id: str) -> None:
        """Deletes a connection (409 while subscriptions or MCP servers use it)."""
        self._client._request("DELETE", ("connections", id))


class SubscriptionsOperations(_Group):
    """Subscriptions to triggers, delivered by signed push or by a pull queue
    (``client.subscriptions``)."""

    def create(
        self,
        connector: str,
        trigger: str,
        *,
        delivery: Delivery,
        connection: Optional[str] = None,
        params: Optional[Mapping[str, Any]] = None,
        interval_s: Optional[int] = None,
    ) -> Subscription:
        """Subscribes to a trigger (``POST /v1/subscriptions``). ``delivery`` is
        ``{"type": "queue"}`` (pull with ``client.events.pull``) or
        ``{"type": "webhook", "url": ...}`` (push, signed: keep the answer's
        ``signing_secret``, shown only here, for ``plugboard.webhooks.verify``). Every item
        created after the answer is delivered."""
        body = _drop_none(
            {
                "connector": connector,
                "trigger": trigger,
                "connection": connection,
                "params": dict(params) if params is not None else None,
                "interval_s": interval_s,
                "delivery": dict(delivery),
            }
        )
        return self._json("POST", "subscriptions", body=body)

    def list(self) -> List[Subscription]:
        """The subscriptions the caller may see."""
        return self._json("GET", "subscriptions")["subscriptions"]

    def get(self, id: str) -> Subscription:
        """One subscription, with its status, counts and source."""
        return self._json("GET", "subscriptions", id)

    def update(self, id: str, *, interval_s: int) -> Subscription:
        """Changes a poll subscription's interval (0: the trigger's default)."""
        return self._json("PATCH", "subscriptions", id, body={"interval_s": interval_s})

    def delete(self, id: str) -> None:
        """Stops a subscription."""
        self._client._request("DELETE", ("subscriptions", id))

    def replay(self, id: str, *, since: Timestamp) -> int:
        """Re-delivers the stored events since a time (RFC 3339 string or an aware datetime);
        returns how many were queued again."""
        return int(self._json("POST", "subscriptions", id, "replay", body={"since": _rfc3339(since)})["replayed"])


class EventsOperations(_Group):
    """Queue delivery of a subscription (``client.events``)."""

    def pull(self, subscription_id: str, *, max: int = 100, wait_s: int = 20) -> EventIterator:
        """An iterator over the subscription's events that acknowledges each one once the
        loop body finished with it (see :class:`EventIterator` for the rule: the event the
        loop stops on is not acknowledged and comes back after its 30 s lease)::

            with client.events.pull(sub["id"]) as events:
                for event in events:
                    print(event["data"])

        ``max`` events are leased per request; a request long-polls up to ``wait_s``
        seconds while none is ready."""
        return EventIterator(self._client, subscription_id, max=max, wait_s=wait_s)

    def list(self, subscription_id: str, *, max: int = 100, wait_s: int = 0) -> List[Event]:
        """Leases one batch of up to ``max`` events, long-polling up to ``wait_s`` seconds
        while none is ready (then an empty list). Leased events come back after 30 s unless
        acknowledged with :meth:`ack`."""
        return _pull(self._client, subscription_id, max, wait_s, None)

    def ack(self, subscription_id: str, ids: Sequence[str]) -> int:
        """Acknowledges leased events by id; returns how many were newly acknowledged."""
        return _ack(self._client, subscription_id, list(ids))


class MCPServersOperations(_Group):
    """MCP servers that serve a connector's actions as tools (``client.mcp_servers``)."""

    def create(
        self,
        name: str,
        *,
        connector: str,
        connection: Optional[str] = None,
        tools: Optional[Sequence[str]] = None,
        enabled: Optional[bool] = None,
    ) -> MCPServer:
        """Creates an MCP server at ``/mcp/{name}``; ``tools`` omitted serves every action.
        The answer's ``token`` is shown only here."""
        body = _drop_none(
            {
                "name": name,
                "connector": connector,
                "connection": connection,
                "tools": list(tools) if tools is not None else None,
                "enabled": enabled,
            }
        )
        return self._json("POST", "mcp-servers", body=body)

    def list(self) -> List[MCPServer]:
        """The MCP servers."""
        return self._json("GET", "mcp-servers")["mcp_servers"]

    def get(self, name: str) -> MCPServer:
        """One MCP server."""
        return self._json("GET", "mcp-servers", name)

    def update(self, name: str, *, enabled: Optional[bool] = None, tools: Optional[Sequence[str]] = UNSET) -> MCPServer:
        """Enables or disables the server, or changes its tools (``tools=None``: every action
        of the connector)."""
        body = _drop_none({"enabled": enabled})
        if tools is not UNSET:
            body["tools"] = list(tools) if tools is not None else None
        return self._json("PATCH", "mcp-servers", name, body=body)

    def rotate_token(self, name: str) -> str:
        """A new token for the server; the old one stops working at once."""
        return self._json("POST", "mcp-servers", name, "rotate-token")["token"]

    def delete(self, name: str) -> None:
        """Removes an MCP server."""
        self._client._request("DELETE", ("mcp-servers", name))


class KeysOperations(_Group):
    """API keys (``client.keys``; admin)."""

    def create(
        self,
        name: str,
        *,
        role: Role,
        scopes: Optional[KeyScopes] = None,
        expires_at: Optional[Timestamp] = None,
    ) -> Key:
        """Creates a key; the answer's ``secret`` (``pbk_...``, the bearer token) is shown
        only here. ``scopes`` (``{"connectors": [...], "connections": [...]}``) narrows it."""
        body = _drop_none(
            {
                "name": name,
                "role": role,
                "scopes": dict(scopes) if scopes is not None else None,
                "expires_at": _rfc3339(expires_at) if expires_at is not None else None,
            }
        )
        return self._json("POST", "keys", body=body)

    def list(self) -> List[Key]:
        """The keys (never their secrets)."""
        return self._json("GET", "keys")["keys"]

    def get(self, id: str) -> Key:
        """One key (never its secret)."""
        return self._json("GET", "keys", id)

    def revoke(self, id: str) -> None:
        """Revokes a key, effective on the next request."""
        self._client._request("DELETE", ("keys", id))


class AuditOperations(_Group):
    """The audit log (``client.audit``)."""

    def list(
        self,
        *,
        since: Optional[Timestamp] = None,
        actor: Optional[str] = None,
        target: Optional[str] = None,
        limit: Optional[int] = None,
        page_size: Optional[int] = None,
    ) -> List[AuditEntry]:
        """Audit entries, newest first, following the ``next`` cursors; ``limit`` caps how many
        in all (by default every entry that matches), ``page_size`` how many one request asks
        for (1 to 1000; default the server's). ``actor`` is a key id."""
        if limit is not None and limit < 1:
            raise ValueError("audit.list: limit must be 1 or more")
        if page_size is not None and not 1 <= page_size <= 1000:
            raise ValueError("audit.list: page_size must be between 1 and 1000")
        entries: List[AuditEntry] = []
        cursor: Optional[str] = None
        while True:
            size = page_size
            if limit is not None:
                size = min(size or 1000, limit - len(entries))
            query = {
                "since": _rfc3339(since) if since is not None else None,
                "actor": actor,
                "target": target,
                "limit": size,
                "cursor": cursor,
            }
            page = self._json("GET", "audit", query=query)
            entries += page.get("entries") or []
            cursor = page.get("next")
            if not cursor or (limit is not None and len(entries) >= limit):
                return entries[:limit] if limit is not None else entries


class InvocationsOperations(_Group):
    """Invocation logs (``client.invocations``)."""

    def get(self, correlation_id: str) -> Invocation:
        """The log of one action call: timings, outbound requests, the plugin's logs
        (404 for a caller not allowed to see that connector and connection)."""
        return self._json("GET", "invocations", correlation_id)


__all__ = [
    "AuditOperations",
    "ConnectionsOperations",
    "ConnectorsOperations",
    "EventsOperations",
    "InvocationsOperations",
    "KeysOperations",
    "MCPServersOperations",
    "SubscriptionsOperations",
    "UNSET",
]
