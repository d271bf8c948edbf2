"""Verification of pushed events (Standard Webhooks, https://www.standardwebhooks.com).

A webhook subscription's events are POSTed to your URL, signed with the subscription's
``signing_secret`` (``whsec_...``, shown once when the subscription is created). Verify each
push with the raw body exactly as received, before parsing it::

    from plugboard import webhooks, WebhookVerificationError

    def handle(headers, body: bytes):          # in your HTTP handler
        try:
            event = webhooks.verify(headers, body, secret)
        except WebhookVerificationError as err:
            return 400, str(err)               # the server retries it later
        process(event)                         # at-least-once: dedupe on event["id"]
        return 204, ""
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from typing import Any, Mapping, Optional, Union

from ._errors import WebhookVerificationError
from ._models import Event

#: How far (seconds) a push's webhook-timestamp may be from now, either way.
DEFAULT_TOLERANCE_S = 5 * 60

_SECRET_PREFIX = "whsec_"

Body = Union[bytes, bytearray, memoryview, str]


def verify(
    headers: Mapping[str, Any],
    body: Body,
    secret: str,
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: Optional[float] = None,
) -> Event:
    """Checks a push and returns the delivered event it carries.

    ``headers`` is any mapping of the request's headers (a dict, ``http.server``'s
    ``self.headers``, a WSGI framework's headers); names are matched case-insensitively.
    ``body`` is the raw body as received (bytes; a str is encoded as UTF-8). ``secret`` is the
    subscription's ``signing_secret``.

    Checks, in order: ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` are
    present; the timestamp is within ``tolerance_s`` (5 minutes) of ``now`` (default the
    clock), either way; one of the space-separated ``v1,<base64>`` signatures equals
    base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")), compared in constant time, the key
    being the base64-decoded secret after its ``whsec_`` prefix; the body is a JSON object.
    A failure raises :class:`WebhookVerificationError` whose ``reason`` names the check.
    A secret that is not base64 raises ValueError (a configuration mistake, not a bad push).
    """
    key = _key(secret)
    h = {str(k).lower(): v for k, v in headers.items()}
    missing = [n for n in ("webhook-id", "webhook-timestamp", "webhook-signature") if not _header(h, n)]
    if missing:
        raise WebhookVerificationError("missing_header", f"the push has no {', '.join(missing)} header: it is not a signed Plugboard push")
    msg_id = _header(h, "webhook-id")
    stamp = _header(h, "webhook-timestamp")
    signatures = _header(h, "webhook-signature")
    if not stamp.isdigit():
        raise WebhookVerificationError("invalid_timestamp", f"webhook-timestamp {stamp[:40]!r} is not whole seconds since the epoch")
    now = time.time() if now is None else now
    skew = now - int(stamp)
    if abs(skew) > tolerance_s:
        side = "old" if skew > 0 else "in the future"
        raise WebhookVerificationError(
            "stale_timestamp",
            f"webhook-timestamp is {abs(skew):.0f} s {side} (more than {tolerance_s:.0f} s): a replayed push, or this machine's clock is off",
        )
    raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    signed = msg_id.encode("utf-8") + b"." + stamp.encode("ascii") + b"." + raw
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
    matched = False
    for entry in signatures.split(" "):
        version, _, sig = entry.partition(",")
        if version == "v1" and sig:
            # compare_digest on every entry (no early exit) so timing says nothing
            matched = hmac.compare_digest(expected, sig.encode("ascii", errors="replace")) or matched
    if not matched:
        raise WebhookVerificationError(
            "no_matching_signature",
            "no v1 signature of the push matches its body: the body was changed, or the secret is not this subscription's signing_secret",
        )
    try:
        event = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise WebhookVerificationError("invalid_body", f"the signed body is not JSON: {err}") from None
    if not isinstance(event, dict):
        raise WebhookVerificationError("invalid_body", "the signed body is not a JSON object (a delivered event)")
    return event  # type: ignore[return-value]


def sign(msg_id: str, timestamp: int, body: Body, secret: str) -> str:
    """The ``webhook-signature`` value (``v1,<base64>``) of a body, as the server computes it:
    for tests of your own receiver."""
    raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode("utf-8") + raw, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode("ascii")


def _key(secret: str) -> bytes:
    if not secret:
        raise ValueError("webhooks.verify: the secret is empty; pass the subscription's signing_secret (whsec_...)")
    s = secret[len(_SECRET_PREFIX):] if secret.startswith(_SECRET_PREFIX) else secret
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("webhooks.verify: the secret is not base64 after whsec_; pass the subscription's signing_secret as created") from None


def _header(h: Mapping[str, Any], name: str) -> str:
    v = h.get(name)
    if isinstance(v, (list, tuple)):
        v = " ".join(str(x) for x in v)
    return "" if v is None else str(v).strip()


__all__ = ["DEFAULT_TOLERANCE_S", "sign", "verify"]
