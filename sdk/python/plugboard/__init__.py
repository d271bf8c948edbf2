"""Plugboard's Python SDK: a client for the HTTP API of a Plugboard server.

Quick start::

    import os
    from plugboard import Client, PlugboardError

    with Client(os.environ["PLUGBOARD_URL"], os.environ["PLUGBOARD_TOKEN"]) as client:
        result = client.invoke("http", "request", connection="crm",
                               input={"method": "GET", "path": "/records"})
        print(result.output, result.correlation_id)

- :class:`Client`: ``invoke`` and the operation groups ``connectors``, ``connections``,
  ``subscriptions``, ``events`` (``events.pull`` is the pull/lease/ack iterator),
  ``mcp_servers``, ``keys``, ``audit``, ``invocations``.
- :func:`plugboard.webhooks.verify`: checks a pushed event's Standard Webhooks signature.
- :class:`PlugboardError`: every non-2xx answer, with the problem document's ``code``.
- :mod:`plugboard.models`: the API's documents as TypedDicts, generated from its OpenAPI
  document.

Standard library only; Python 3.9 or later.
"""

from . import models, webhooks
from ._auth import ApiKeyAuth, BasicAuth, NoAuth, OAuth2Auth
from ._client import Client, InvokeResult
from ._errors import PlugboardError, WebhookVerificationError
from ._events import EventIterator
from ._operations import UNSET
from ._transport import Abort, HttpRequest, HttpResponse, HttpTransport, Transport
from ._version import VERSION

__version__ = VERSION

__all__ = [
    "Abort",
    "ApiKeyAuth",
    "BasicAuth",
    "Client",
    "EventIterator",
    "HttpRequest",
    "HttpResponse",
    "HttpTransport",
    "InvokeResult",
    "NoAuth",
    "OAuth2Auth",
    "PlugboardError",
    "Transport",
    "UNSET",
    "VERSION",
    "WebhookVerificationError",
    "models",
    "webhooks",
]
