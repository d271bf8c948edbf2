"""End-to-end tests against a real server: run when PLUGBOARD_URL is set (the Go test
sdk/python_test.go starts one with sdkenv and sets PLUGBOARD_URL, PLUGBOARD_TOKEN (the app's
invoker key), PLUGBOARD_ADMIN_TOKEN, PLUGBOARD_CONNECTION and RECORDS_URL).

The scenario: an app with an invoker key reads and sends records through the operator's crm
connection with the http connector, and receives a trig.items event for every new record,
by pull and by push."""

from __future__ import annotations

import json
import os
import queue
import threading
import time
import unittest
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Tuple

from plugboard import Client, HttpRequest, HttpResponse, HttpTransport, NoAuth, PlugboardError, WebhookVerificationError, webhooks

URL = os.environ.get("PLUGBOARD_URL", "")
TOKEN = os.environ.get("PLUGBOARD_TOKEN", "")
ADMIN = os.environ.get("PLUGBOARD_ADMIN_TOKEN", "")
CONNECTION = os.environ.get("PLUGBOARD_CONNECTION", "crm")


def tag() -> str:
    return uuid.uuid4().hex[:8]


class Recording(HttpTransport):
    """The default transport, recording every exchange."""

    def __init__(self) -> None:
        super().__init__()
        self.log: List[Tuple[HttpRequest, HttpResponse]] = []

    def send(self, request: HttpRequest) -> HttpResponse:
        resp = super().send(request)
        self.log.append((request, resp))
        return resp


@unittest.skipUnless(URL, "end-to-end: set PLUGBOARD_URL (go test ./sdk/ -run TestPythonSDK sets it)")
class EndToEndTest(unittest.TestCase):
    def setUp(self) -> None:
        self.app = Client(URL, TOKEN, user_agent="sdk-e2e")
        self.admin = Client(URL, ADMIN)
        self.addCleanup(self.app.close)
        self.addCleanup(self.admin.close)

    def send_record(self, name: str, client: Any = None) -> Dict[str, Any]:
        r = (client or self.app).invoke("http", "request", connection=CONNECTION, input={"method": "POST", "path": "/records", "body": {"name": name}})
        self.assertEqual(r.output["status"], 201, r.output)
        return r.output["body"]

    def subscribe(self, delivery: Dict[str, Any]) -> Dict[str, Any]:
        sub = self.app.subscriptions.create("trig", "items", connection=CONNECTION, delivery=delivery)
        self.addCleanup(self.unsubscribe, sub["id"])
        return sub

    def unsubscribe(self, sub_id: str) -> None:
        try:
            self.app.subscriptions.delete(sub_id)
        except PlugboardError as err:
            if err.code != "subscription_not_found":
                raise

    def test_invoke_sends_a_record_and_reads_it_back(self) -> None:
        name = "Ada " + tag()
        result = self.app.invoke(
            "http", "request", connection=CONNECTION, input={"method": "POST", "path": "/records", "body": {"name": name}}, correlation_id="c_py_" + tag()
        )
        self.assertEqual(result.connector, "http")
        self.assertTrue(result.version)
        self.assertTrue(result.correlation_id.startswith("c_py_"), "the correlation id sent comes back")
        self.assertEqual(result.output["status"], 201)
        created = result.output["body"]
        self.assertEqual(created["name"], name)

        read = self.app.invoke("http", "request", connection=CONNECTION, input={"method": "GET", "path": "/records"})
        self.assertIn(created["id"], [r["id"] for r in read.output["body"]["records"]])

        inv = self.app.invocations.get(result.correlation_id)
        self.assertEqual((inv["connector"], inv["action"], inv["connection"]), ("http", "request", CONNECTION))
        self.assertEqual(inv["outcome"], "ok")

    def test_typed_errors(self) -> None:
        with self.assertRaises(PlugboardError) as ctx:
            self.admin.invoke("http", "request", connection="no-such-connection", input={"method": "GET", "path": "/records"})
        e = ctx.exception
        self.assertEqual((e.status, e.code, e.source), (404, "connection_not_found", "plugboard"))
        self.assertTrue(e.correlation_id)
        self.assertIn(e.correlation_id, str(e))

        with self.assertRaises(PlugboardError) as ctx:
            self.app.invoke("http", "request", connection=CONNECTION, input={"method": "FETCH", "path": "/records"})
        e = ctx.exception
        self.assertEqual((e.status, e.code), (400, "invalid_input"))
        self.assertTrue(e.errors, "the schema failure lists its field errors")
        self.assertTrue(any("method" in f["path"] for f in e.errors), e.errors)
        self.assertTrue(str(e).startswith("invalid_input (400): "), str(e))

        with self.assertRaises(PlugboardError) as ctx:
            self.app.connections.create("not-mine-" + tag(), connectors=["http"], params={"base_url": "http://127.0.0.1:1"}, auth=NoAuth())
        self.assertEqual((ctx.exception.status, ctx.exception.code), (403, "forbidden"))

        with self.assertRaises(PlugboardError) as ctx, Client(URL, "pbk_not_a_key") as stranger:
            stranger.connectors.list()
        self.assertEqual((ctx.exception.status, ctx.exception.code), (401, "unauthenticated"))

    def test_queue_subscription_with_the_events_iterator(self) -> None:
        rec = Recording()
        app = Client(URL, TOKEN, transport=rec)
        self.addCleanup(app.close)
        sub = app.subscriptions.create("trig", "items", connection=CONNECTION, delivery={"type": "queue"})
        self.addCleanup(self.unsubscribe, sub["id"])
        self.assertEqual(sub["delivery"]["type"], "queue")
        self.assertNotIn("signing_secret", sub)

        names = [f"pull-{i}-{tag()}" for i in range(3)]
        for n in names:
            self.send_record(n)

        got: List[Dict[str, Any]] = []
        events = app.events.pull(sub["id"], wait_s=5)
        deadline = threading.Timer(30, events.close)  # the test's timeout: close() stops the loop
        deadline.start()
        try:
            with events:
                for event in events:
                    got.append(event)
                    if len(got) == 3:
                        app.events.ack(sub["id"], [event["id"]])  # the one we stop on: ack it ourselves
                        break
        finally:
            deadline.cancel()
        self.assertEqual([e["data"]["name"] for e in got], names, "the 3 new records, in order")
        for e in got:
            self.assertEqual(e["type"], "trig.items")
            self.assertEqual(e["subscription"], sub["id"])
            self.assertTrue(e["id"].startswith("evt_"))

        acked_ids: List[str] = []
        newly = 0
        for req, resp in rec.log:
            if req.method == "POST" and req.url.endswith("/events/ack"):
                acked_ids += json.loads(req.body.decode())["ids"]
                newly += json.loads(resp.body.decode())["acked"]
        self.assertEqual(sorted(acked_ids), sorted(e["id"] for e in got), "each event acked exactly once")
        self.assertEqual(newly, 3, "every ack was a new one")

        self.assertEqual(app.events.list(sub["id"], wait_s=1), [], "a second pull finds nothing")
        counts = app.subscriptions.get(sub["id"])["counts"]
        self.assertEqual((counts["pending"], counts["delivered"]), (0, 3), counts)

    def test_webhook_push_verified_with_the_signing_secret(self) -> None:
        pushes: "queue.Queue[Tuple[Dict[str, str], bytes]]" = queue.Queue()
        secret: List[str] = []

        class Receiver(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    webhooks.verify(self.headers, body, secret[0])
                    status = 204
                except (WebhookVerificationError, IndexError):
                    status = 400
                pushes.put(({k: v for k, v in self.headers.items()}, body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)

        sub = self.subscribe({"type": "webhook", "url": f"http://127.0.0.1:{server.server_address[1]}/hooks/records"})
        self.assertTrue(sub["signing_secret"].startswith("whsec_"))
        secret.append(sub["signing_secret"])
        name = "push-" + tag()
        self.send_record(name)

        headers, body = pushes.get(timeout=30)
        event = webhooks.verify(headers, body, sub["signing_secret"])
        self.assertEqual(event["type"], "trig.items")
        self.assertEqual(event["subscription"], sub["id"])
        self.assertEqual(event["data"]["name"], name)
        self.assertEqual(headers.get("webhook-id") or headers.get("Webhook-Id"), event["id"])

        with self.assertRaises(WebhookVerificationError) as ctx:
            webhooks.verify(headers, body.replace(name.encode(), b"tampered"), sub["signing_secret"])
        self.assertEqual(ctx.exception.reason, "no_matching_signature")
        other = self.subscribe({"type": "webhook", "url": f"http://127.0.0.1:{server.server_address[1]}/other"})
        with self.assertRaises(WebhookVerificationError):
            webhooks.verify(headers, body, other["signing_secret"])

    def test_subscriptions_operations(self) -> None:
        sub = self.subscribe({"type": "queue"})
        self.assertIn(sub["id"], [s["id"] for s in self.app.subscriptions.list()])
        got = self.app.subscriptions.get(sub["id"])
        self.assertEqual((got["connector"], got["trigger"]), ("trig", "items"))
        updated = self.app.subscriptions.update(sub["id"], interval_s=5)
        self.assertEqual(updated["interval_s"], 5)
        self.assertGreaterEqual(self.app.subscriptions.replay(sub["id"], since="2020-01-01T00:00:00Z"), 0)
        self.app.subscriptions.delete(sub["id"])
        with self.assertRaises(PlugboardError) as ctx:
            self.app.subscriptions.get(sub["id"])
        self.assertEqual(ctx.exception.code, "subscription_not_found")

    def test_connectors_and_connections(self) -> None:
        names = [c["name"] for c in self.app.connectors.list()]
        self.assertIn("http", names)
        self.assertIn("trig", names)
        http = self.app.connectors.get("http")
        self.assertEqual(http["manifest"]["name"], "http")
        self.assertIn("request", [a["name"] for a in self.app.connectors.actions("http")])
        v = self.app.connectors.get_version("http", http["active_version"])
        self.assertTrue(v["digest"].startswith("sha256:"))

        crm = self.admin.connections.get(CONNECTION)
        self.assertEqual(crm["auth"]["type"], "api_key")
        self.assertNotIn("api_key", crm["auth"], "secrets are write-only")
        cid = "py-" + tag()
        made = self.admin.connections.create(cid, connectors=["http"], params={"base_url": "http://127.0.0.1:9"}, auth=NoAuth())
        self.assertEqual(made["status"], "ready")
        self.assertIn(cid, [c["id"] for c in self.admin.connections.list()])
        patched = self.admin.connections.update(cid, params={"base_url": "http://127.0.0.1:10"})
        self.assertEqual(patched["params"]["base_url"], "http://127.0.0.1:10")
        self.admin.connections.delete(cid)
        with self.assertRaises(PlugboardError) as ctx:
            self.admin.connections.get(cid)
        self.assertEqual(ctx.exception.code, "connection_not_found")

    def test_mcp_servers_and_keys(self) -> None:
        name = "py-tools-" + tag()
        srv = self.admin.mcp_servers.create(name, connector="http", connection=CONNECTION, tools=["request"])
        self.assertTrue(srv["token"].startswith("mcp_"))
        self.assertEqual(srv["url"], f"/mcp/{name}")
        self.assertIn(name, [s["name"] for s in self.admin.mcp_servers.list()])
        self.assertNotIn("token", self.admin.mcp_servers.get(name), "the token is shown once")
        self.assertFalse(self.admin.mcp_servers.update(name, enabled=False)["enabled"])
        self.assertTrue(self.admin.mcp_servers.update(name, enabled=True, tools=None)["all_tools"])
        token = self.admin.mcp_servers.rotate_token(name)
        self.assertTrue(token.startswith("mcp_"))
        self.assertNotEqual(token, srv["token"])
        self.admin.mcp_servers.delete(name)
        with self.assertRaises(PlugboardError) as ctx:
            self.admin.mcp_servers.get(name)
        self.assertEqual(ctx.exception.code, "mcp_server_not_found")

        key = self.admin.keys.create("py-reader-" + tag(), role="reader", scopes={"connectors": ["http"]})
        self.assertTrue(key["secret"].startswith("pbk_"))
        self.assertIn(key["id"], [k["id"] for k in self.admin.keys.list()])
        self.assertNotIn("secret", self.admin.keys.get(key["id"]))
        with Client(URL, key["secret"]) as reader:
            self.assertEqual([c["name"] for c in reader.connectors.list()], ["http"], "the scope narrows what it sees")
            with self.assertRaises(PlugboardError) as ctx:
                reader.invoke("http", "request", connection=CONNECTION, input={})
            self.assertEqual(ctx.exception.code, "forbidden")
            self.admin.keys.revoke(key["id"])
            with self.assertRaises(PlugboardError) as ctx:
                reader.connectors.list()
            self.assertEqual(ctx.exception.code, "unauthenticated")

    def test_audit_follows_pages(self) -> None:
        for _ in range(3):  # mutating calls and denials are audited, reads are not
            key = self.admin.keys.create("py-audit-" + tag(), role="reader")
            self.admin.keys.revoke(key["id"])
        rec = Recording()
        with Client(URL, ADMIN, transport=rec) as admin:
            entries = admin.audit.list(limit=5, page_size=2)
        self.assertEqual(len(entries), 5)
        self.assertEqual(len([1 for req, _ in rec.log if "/v1/audit" in req.url]), 3, "pages of 2, 2 and 1")
        self.assertIn("cursor=", rec.log[1][0].url)
        times = [e["time"] for e in entries]
        self.assertEqual(times, sorted(times, reverse=True), "newest first")


if __name__ == "__main__":
    unittest.main()
