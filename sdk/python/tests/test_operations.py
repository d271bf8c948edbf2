"""The requests the operation groups send, and how they read the answers, against a stub."""

from __future__ import annotations

import datetime
import unittest
import urllib.parse

from plugboard import Client, OAuth2Auth
from stub import Stub


class OperationsTest(unittest.TestCase):
    def call(self, answers, fn):
        with Stub(answers) as stub:
            with Client(stub.url, "pbk_test") as client:
                result = fn(client)
        return result, stub.received

    def test_audit_list_follows_next_up_to_limit(self) -> None:
        page = lambda n, nxt: (200, {}, {"entries": [{"time": f"t{n}-{i}"} for i in range(2)], "next": nxt})
        entries, got = self.call([page(1, "c1"), page(2, "c2"), page(3, None)], lambda c: c.audit.list(actor="key_1", page_size=2, limit=5))
        self.assertEqual(len(entries), 5)
        queries = [dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(r.path).query)) for r in got]
        self.assertEqual(queries[0], {"actor": "key_1", "limit": "2"})
        self.assertEqual(queries[1], {"actor": "key_1", "limit": "2", "cursor": "c1"})
        self.assertEqual(queries[2], {"actor": "key_1", "limit": "1", "cursor": "c2"})

    def test_audit_list_without_limit_reads_every_page(self) -> None:
        entries, got = self.call(
            [(200, {}, {"entries": [{"time": "a"}], "next": "x"}), (200, {}, {"entries": [{"time": "b"}], "next": None})],
            lambda c: c.audit.list(since=datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)),
        )
        self.assertEqual([e["time"] for e in entries], ["a", "b"])
        self.assertIn("since=2026-01-02T03%3A04%3A05Z", got[0].path)

    def test_subscription_create_body(self) -> None:
        _, got = self.call(
            [(201, {}, {"id": "sub_1"})],
            lambda c: c.subscriptions.create("trig", "items", connection="crm", delivery={"type": "queue"}, interval_s=5),
        )
        self.assertEqual((got[0].method, got[0].path), ("POST", "/v1/subscriptions"))
        self.assertEqual(got[0].json(), {"connector": "trig", "trigger": "items", "connection": "crm", "interval_s": 5, "delivery": {"type": "queue"}})

    def test_unset_and_none_differ(self) -> None:
        _, got = self.call(
            [(200, {}, {}), (200, {}, {}), (200, {}, {}), (200, {}, {})],
            lambda c: (
                c.mcp_servers.update("m", enabled=False),
                c.mcp_servers.update("m", tools=None),
                c.connections.update("crm", hosts=["http://a"]),
                c.connections.update("crm", rate_limit=None),
            ),
        )
        self.assertEqual([r.json() for r in got], [{"enabled": False}, {"tools": None}, {"hosts": ["http://a"]}, {"rate_limit": None}])
        self.assertEqual({r.method for r in got}, {"PATCH"})

    def test_upload_sends_the_wasm(self) -> None:
        _, got = self.call([(201, {}, {"name": "x"})], lambda c: c.connectors.upload(b"\0asm\1\0\0\0", activate=True, approve_capabilities=True))
        self.assertEqual(got[0].headers["content-type"], "application/wasm")
        self.assertEqual(got[0].body, b"\0asm\1\0\0\0")
        self.assertEqual(urllib.parse.urlsplit(got[0].path).query, "activate=true&approve=capabilities")

    def test_activate_with_a_canary(self) -> None:
        _, got = self.call([(200, {}, {})], lambda c: c.connectors.activate("gh", "1.3.0", canary={"version": "1.4.0", "percent": 10}))
        self.assertEqual((got[0].method, got[0].path), ("PUT", "/v1/connectors/gh/active"))
        self.assertEqual(got[0].json(), {"version": "1.3.0", "canary": {"version": "1.4.0", "percent": 10}})

    def test_results_that_are_counts_or_tokens(self) -> None:
        (n, token, acked), got = self.call(
            [(200, {}, {"replayed": 4}), (200, {}, {"token": "mcp_new"}), (200, {}, {"acked": 2})],
            lambda c: (
                c.subscriptions.replay("sub_1", since="2026-01-01T00:00:00Z"),
                c.mcp_servers.rotate_token("m"),
                c.events.ack("sub_1", ("evt_1", "evt_2")),
            ),
        )
        self.assertEqual((n, token, acked), (4, "mcp_new", 2))
        self.assertEqual(got[2].json(), {"ids": ["evt_1", "evt_2"]})

    def test_deletes_answer_none(self) -> None:
        results, got = self.call(
            [(204, {}, b"")] * 5,
            lambda c: [
                c.connections.delete("crm"),
                c.subscriptions.delete("sub_1"),
                c.mcp_servers.delete("m"),
                c.keys.revoke("key_1"),
                c.connectors.delete_version("gh", "1.0.0"),
            ],
        )
        self.assertEqual(results, [None] * 5)
        self.assertEqual(
            [r.path for r in got],
            ["/v1/connections/crm", "/v1/subscriptions/sub_1", "/v1/mcp-servers/m", "/v1/keys/key_1", "/v1/connectors/gh/versions/1.0.0"],
        )

    def test_keys_create_and_rotate_credentials(self) -> None:
        expires = datetime.datetime(2027, 1, 1, tzinfo=datetime.timezone.utc)
        _, got = self.call(
            [(201, {}, {}), (200, {}, {})],
            lambda c: (
                c.keys.create("app", role="invoker", scopes={"connections": ["crm"]}, expires_at=expires),
                c.connections.rotate_credentials("gh", OAuth2Auth("cid", "csecret", grant="client_credentials"), secrets={"signing_secret": "s"}),
            ),
        )
        self.assertEqual(got[0].json(), {"name": "app", "role": "invoker", "scopes": {"connections": ["crm"]}, "expires_at": "2027-01-01T00:00:00Z"})
        self.assertEqual(
            got[1].json(),
            {"auth": {"type": "oauth2", "grant": "client_credentials", "client_id": "cid", "client_secret": "csecret"}, "secrets": {"signing_secret": "s"}},
        )

    def test_a_naive_datetime_is_refused(self) -> None:
        with Client("http://127.0.0.1:1", "pbk_test") as client:
            with self.assertRaisesRegex(ValueError, "time zone"):
                client.subscriptions.replay("sub_1", since=datetime.datetime(2026, 1, 1))


if __name__ == "__main__":
    unittest.main()
