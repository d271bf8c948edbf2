"""A scripted HTTP server on 127.0.0.1 for the unit tests: it answers each request with the
next scripted response (or a handler's), and records what it received."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional, Tuple, Union


@dataclass
class Received:
    """One request the stub received."""

    method: str
    path: str
    headers: Dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


# A response: (status, headers, body); body bytes, str, or a JSON value.
Response = Tuple[int, Dict[str, str], Any]
Handler = Callable[[Received], Response]


class Stub:
    """Stub serves scripted responses. Use as a context manager; ``url`` is its base URL."""

    def __init__(self, responses: Optional[List[Union[Response, Handler]]] = None, handler: Optional[Handler] = None) -> None:
        self.responses = list(responses or [])
        self.handler = handler
        self.received: List[Received] = []
        self.lock = threading.Lock()
        stub = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                r = Received(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with stub.lock:
                    stub.received.append(r)
                    if stub.responses:
                        nxt = stub.responses.pop(0)
                    elif stub.handler is not None:
                        nxt = stub.handler
                    else:
                        nxt = (500, {}, {"code": "internal", "status": 500, "title": "stub", "detail": "no scripted response left"})
                status, headers, payload = nxt(r) if callable(nxt) else nxt
                if isinstance(payload, bytes):
                    data = payload
                elif isinstance(payload, str):
                    data = payload.encode("utf-8")
                else:
                    data = json.dumps(payload).encode("utf-8")
                self.send_response(status)
                ctype = "application/problem+json" if status >= 400 else "application/json"
                hdrs = {"Content-Type": ctype, **headers}
                for k, v in hdrs.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def __enter__(self) -> "Stub":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def count(self) -> int:
        with self.lock:
            return len(self.received)


def problem(status: int, code: str, detail: str = "", **extra: Any) -> Dict[str, Any]:
    """A problem document."""
    return {"type": "about:blank", "title": "Error", "status": status, "code": code, "detail": detail, "source": "plugboard", **extra}


INVOKE_OK: Response = (200, {"X-Correlation-ID": "c_ok"}, {"output": {"status": 200}, "connector": "http", "version": "1.0.0", "correlation_id": "c_ok"})
