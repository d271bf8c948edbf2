"""The SDK's errors: PlugboardError for answers that are not 2xx, WebhookVerificationError for
pushes that fail verification."""

from __future__ import annotations

import email.utils
import json
import time
from typing import Any, List, Mapping, Optional

from ._models import FieldError, Problem

#: How much of a body that is not a problem document an error shows.
EXCERPT = 200


class PlugboardError(Exception):
    """PlugboardError is raised for every answer that is not 2xx.

    It carries the server's problem document (RFC 9457): ``code`` is the stable string to
    branch on (``"connection_not_found"``, ``"invalid_input"``, ``"forbidden"``,
    ``"rate_limited"``, or a code a plugin chose), ``errors`` lists the field errors of a
    schema failure, ``source`` tells a plugin's error (``"plugin"``) from Plugboard's own
    (``"plugboard"``), and ``correlation_id`` finds the call in the server's logs and with
    ``client.invocations.get``.

    An answer that is not a problem document (an HTML page from a proxy) still raises a
    PlugboardError, with ``code`` ``"http_<status>"`` and an excerpt of the body as ``detail``.

    Example::

        try:
            client.invoke("http", "request", connection="crm", input=request)
        except PlugboardError as err:
            if err.code != "invalid_input":
                raise
            for e in err.errors:
                print(e["path"], e["message"])

    str(err) reads ``invalid_input (400): input.title: missing property [correlation c_...]``.
    """

    status: int
    """The HTTP status of the answer."""
    code: str
    """The problem's stable code (``"http_<status>"`` when the body was not a problem)."""
    title: str
    """The problem's title (the status text)."""
    detail: str
    """What went wrong and, most often, what to change."""
    correlation_id: Optional[str]
    """The call's correlation id: the problem's, else the ``X-Correlation-ID`` answered."""
    errors: List[FieldError]
    """The field errors of a schema failure (empty otherwise)."""
    source: Optional[str]
    """``"plugin"`` for an error a connector reported, ``"plugboard"`` for the server's own."""
    retry_after: Optional[float]
    """Seconds the server asked to wait (``Retry-After``), when it said."""
    problem: Optional[Problem]
    """The problem document as answered (None when the body was not one)."""
    method: Optional[str]
    """The request's method."""
    url: Optional[str]
    """The request's URL."""

    def __init__(
        self,
        status: int,
        code: str,
        *,
        title: str = "",
        detail: str = "",
        correlation_id: Optional[str] = None,
        errors: Optional[List[FieldError]] = None,
        source: Optional[str] = None,
        retry_after: Optional[float] = None,
        problem: Optional[Problem] = None,
        method: Optional[str] = None,
        url: Optional[str] = None,
    ) -> None:
        msg = f"{code} ({status})"
        if detail:
            msg += f": {detail}"
        if correlation_id:
            msg += f" [correlation {correlation_id}]"
        super().__init__(msg)
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.correlation_id = correlation_id
        self.errors = list(errors or [])
        self.source = source
        self.retry_after = retry_after
        self.problem = problem
        self.method = method
        self.url = url

    def __repr__(self) -> str:
        return f"PlugboardError({self.status}, {self.code!r}, detail={self.detail!r}, correlation_id={self.correlation_id!r})"

    @classmethod
    def from_response(
        cls,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        *,
        method: Optional[str] = None,
        url: Optional[str] = None,
        now: Optional[float] = None,
    ) -> "PlugboardError":
        """Builds the error of a non-2xx answer from its status, headers (lower-case names)
        and body; the client calls it, and tests and callers of raw HTTP may too."""
        retry_after = parse_retry_after(headers.get("retry-after"), now)
        header_cid = headers.get("x-correlation-id") or None
        doc: Any = None
        try:
            doc = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("code"), str) and doc.get("code"):
            errors = [e for e in doc.get("errors") or [] if isinstance(e, dict)]
            return cls(
                status,
                doc["code"],
                title=str(doc.get("title") or ""),
                detail=str(doc.get("detail") or ""),
                correlation_id=doc.get("correlation_id") or header_cid,
                errors=errors,  # type: ignore[arg-type]
                source=doc.get("source"),
                retry_after=retry_after,
                problem=doc,  # type: ignore[arg-type]
                method=method,
                url=url,
            )
        text = body.decode("utf-8", errors="replace").strip()
        excerpt = " ".join(text.split())
        if len(excerpt) > EXCERPT:
            excerpt = excerpt[:EXCERPT] + "..."
        where = f" from {method} {url}" if method and url else ""
        detail = f"the answer{where} is not a problem document: {excerpt}" if excerpt else f"the answer{where} has no body"
        return cls(
            status,
            f"http_{status}",
            detail=detail,
            correlation_id=header_cid,
            retry_after=retry_after,
            method=method,
            url=url,
        )


def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Seconds to wait from a Retry-After value: delay-seconds or an HTTP date (RFC 9110).
    None when absent or unreadable; never negative."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


class WebhookVerificationError(Exception):
    """WebhookVerificationError is raised by ``plugboard.webhooks.verify`` for a push that
    must not be trusted. ``reason`` names what was wrong, one of:

    - ``"missing_header"``: webhook-id, webhook-timestamp or webhook-signature is absent;
    - ``"invalid_timestamp"``: webhook-timestamp is not whole seconds since the epoch;
    - ``"stale_timestamp"``: the timestamp is more than the tolerance (5 minutes) from now,
      either way (a replay, or a clock that is off);
    - ``"no_matching_signature"``: no ``v1,`` signature matches the body with this secret
      (a tampered body, or the wrong subscription's secret);
    - ``"invalid_body"``: the signed body is not a JSON event.

    Answer such a push with a 4xx (400 or 401): the server retries it later.
    """

    reason: str
    """What was wrong (see the class doc)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


__all__ = ["PlugboardError", "WebhookVerificationError", "parse_retry_after"]
