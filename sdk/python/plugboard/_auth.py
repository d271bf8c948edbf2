"""Credentials for connections.create and connections.rotate_credentials, whose repr never
shows a secret.

A plain dict in the shape of :class:`plugboard.models.AuthRequest` works too; these classes
only keep secrets out of logs and tracebacks::

    client.connections.create("crm", connectors=["http"], params={"base_url": url},
                              auth=ApiKeyAuth(os.environ["CRM_KEY"]))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union

from ._models import AuthRequest

_HIDDEN = "***"


@dataclass(frozen=True)
class NoAuth:
    """No credentials: the connection holds params only."""

    def to_dict(self) -> AuthRequest:
        """The request document."""
        return {"type": "none"}


@dataclass(frozen=True)
class ApiKeyAuth:
    """An API key, sent where the connector's manifest says (header or query)."""

    api_key: str = field(repr=False)
    """The key (write-only: the server never shows it again)."""

    def __repr__(self) -> str:
        return f"ApiKeyAuth(api_key={_HIDDEN!r})"

    def to_dict(self) -> AuthRequest:
        """The request document."""
        return {"type": "api_key", "api_key": self.api_key}


@dataclass(frozen=True)
class BasicAuth:
    """HTTP Basic credentials."""

    username: str
    """The user name."""
    password: str = field(repr=False)
    """The password (write-only)."""

    def __repr__(self) -> str:
        return f"BasicAuth(username={self.username!r}, password={_HIDDEN!r})"

    def to_dict(self) -> AuthRequest:
        """The request document."""
        return {"type": "basic", "username": self.username, "password": self.password}


@dataclass(frozen=True)
class OAuth2Auth:
    """OAuth2 credentials: ``grant`` is ``"authorization_code"`` (the connection answers
    ``pending_consent`` with a ``consent_url``) or ``"client_credentials"``. The endpoints
    come from the connector's manifest unless given."""

    client_id: str
    """The OAuth2 client id."""
    client_secret: str = field(repr=False)
    """The client secret (write-only)."""
    grant: str = "authorization_code"
    """authorization_code or client_credentials."""
    scopes: Optional[List[str]] = None
    """The scopes to ask for (default the connectors' manifests')."""
    authorization_url: Optional[str] = None
    """Overrides the manifest's authorization URL."""
    token_url: Optional[str] = None
    """Overrides the manifest's token URL."""

    def __repr__(self) -> str:
        return (
            f"OAuth2Auth(client_id={self.client_id!r}, client_secret={_HIDDEN!r}, grant={self.grant!r}, "
            f"scopes={self.scopes!r}, authorization_url={self.authorization_url!r}, token_url={self.token_url!r})"
        )

    def to_dict(self) -> AuthRequest:
        """The request document."""
        d: Dict[str, Any] = {"type": "oauth2", "grant": self.grant, "client_id": self.client_id, "client_secret": self.client_secret}
        for k in ("scopes", "authorization_url", "token_url"):
            if getattr(self, k) is not None:
                d[k] = getattr(self, k)
        return d  # type: ignore[return-value]


#: What an ``auth`` argument accepts.
Auth = Union[NoAuth, ApiKeyAuth, BasicAuth, OAuth2Auth, AuthRequest]


def auth_dict(auth: Auth) -> AuthRequest:
    """The request document of an auth argument."""
    if isinstance(auth, (NoAuth, ApiKeyAuth, BasicAuth, OAuth2Auth)):
        return auth.to_dict()
    if isinstance(auth, dict) and "type" in auth:
        return auth
    raise TypeError("auth must be NoAuth(), ApiKeyAuth(key), BasicAuth(user, password), OAuth2Auth(...) or a dict with a type")


__all__ = ["ApiKeyAuth", "Auth", "BasicAuth", "NoAuth", "OAuth2Auth"]
