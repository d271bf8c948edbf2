"""Retries of 429 and 503 against a local stub: attempts, waits, correlation ids."""

from __future__ import annotations

import email.utils
import time
import unittest

from plugboard import Client, PlugboardError
from stub import INVOKE_OK, Stub, problem


class RetryTest(unittest.TestCase):
    def test_429_with_retry_after_is_retried_with_the_same_correlation_id(self) -> None:
        with Stub([(429, {"Retry-After": "1"}, problem(429, "rate_limited", "slow down")), INVOKE_OK]) as stub:
            with Client(stub.url, "pbk_test") as client:
                start = time.monotonic()
                result = client.invoke("http", "request", connection="crm", input={"method": "GET", "path": "/"})
                elapsed = time.monotonic() - start
        self.assertEqual(result.output, {"status": 200})
        self.assertEqual(stub.count(), 2, "one 429, then the retry")
        cids = [r.headers.get("x-correlation-id") for r in stub.received]
        self.assertTrue(cids[0], "the SDK sends a correlation id")
        self.assertEqual(cids[0], cids[1], "the retry sends the same X-Correlation-ID")
        self.assertGreaterEqual(elapsed, 0.95, "the client waited what Retry-After said")
        self.assertLess(elapsed, 5)
        self.assertEqual(stub.received[0].body, stub.received[1].body, "the retry sends the same body")

    def test_503_with_an_http_date_is_retried(self) -> None:
        when = email.utils.formatdate(time.time() + 1, usegmt=True)
        with Stub([(503, {"Retry-After": when}, problem(503, "unavailable")), INVOKE_OK]) as stub:
            with Client(stub.url, "pbk_test") as client:
                client.invoke("http", "request", connection="crm", correlation_id="c_mine")
        self.assertEqual(stub.count(), 2)
        self.assertEqual([r.headers["x-correlation-id"] for r in stub.received], ["c_mine", "c_mine"])

    def test_gives_up_after_retry_total(self) -> None:
        busy = (429, {"Retry-After": "0"}, problem(429, "rate_limited", "slow down"))
        with Stub([busy, busy, busy, INVOKE_OK]) as stub:
            with Client(stub.url, "pbk_test", retry_total=2) as client:
                with self.assertRaises(PlugboardError) as ctx:
                    client.invoke("http", "request", connection="crm")
        self.assertEqual(stub.count(), 3, "the first try and 2 retries")
        self.assertEqual(ctx.exception.code, "rate_limited")
        self.assertEqual(ctx.exception.status, 429)
        self.assertEqual(ctx.exception.retry_after, 0)

    def test_retry_total_zero_does_not_retry(self) -> None:
        with Stub([(503, {"Retry-After": "0"}, problem(503, "unavailable")), INVOKE_OK]) as stub:
            with Client(stub.url, "pbk_test", retry_total=0) as client:
                with self.assertRaises(PlugboardError):
                    client.invoke("http", "request", connection="crm")
        self.assertEqual(stub.count(), 1)

    def test_a_wait_over_60_s_raises_at_once(self) -> None:
        with Stub([(429, {"Retry-After": "120"}, problem(429, "rate_limited")), INVOKE_OK]) as stub:
            with Client(stub.url, "pbk_test") as client:
                start = time.monotonic()
                with self.assertRaises(PlugboardError) as ctx:
                    client.invoke("http", "request", connection="crm")
        self.assertLess(time.monotonic() - start, 2)
        self.assertEqual(stub.count(), 1)
        self.assertEqual(ctx.exception.retry_after, 120)

    def test_other_errors_are_not_retried(self) -> None:
        for status, code in [(500, "internal"), (502, "plugin_failed"), (504, "timeout"), (409, "conflict")]:
            with self.subTest(status=status):
                with Stub([(status, {"Retry-After": "0"}, problem(status, code)), INVOKE_OK]) as stub:
                    with Client(stub.url, "pbk_test") as client:
                        with self.assertRaises(PlugboardError) as ctx:
                            client.invoke("http", "request", connection="crm")
                self.assertEqual(stub.count(), 1, f"a {status} is not retried")
                self.assertEqual(ctx.exception.code, code)

    def test_without_retry_after_the_backoff_is_exponential_from_half_a_second(self) -> None:
        busy = (503, {}, problem(503, "unavailable"))
        with Stub([busy, busy, INVOKE_OK]) as stub:
            with Client(stub.url, "pbk_test") as client:
                waits = []
                client._sleep = waits.append  # record the waits instead of sleeping
                client.invoke("http", "request", connection="crm")
        self.assertEqual(stub.count(), 3)
        self.assertEqual(len(waits), 2)
        self.assertTrue(0.4 <= waits[0] <= 0.6, waits)
        self.assertTrue(0.8 <= waits[1] <= 1.2, waits)

    def test_headers_sent(self) -> None:
        with Stub([INVOKE_OK, INVOKE_OK]) as stub:
            with Client(stub.url, "pbk_secret", user_agent="crm-sync/2") as client:
                client.invoke("http", "request", connection="crm", input={"a": 1}, version="1.0.0")
                client.invoke("http", "request", connection="crm")
        r = stub.received[0]
        self.assertEqual(r.method, "POST")
        self.assertEqual(r.path, "/v1/connectors/http/actions/request")
        self.assertEqual(r.headers["authorization"], "Bearer pbk_secret")
        self.assertRegex(r.headers["user-agent"], r"^plugboard-python/\d+\.\d+\.\d+ crm-sync/2$")
        self.assertEqual(r.headers["content-type"], "application/json")
        self.assertRegex(r.headers["x-correlation-id"], r"^c_[a-z2-7]{26}$")
        self.assertEqual(r.json(), {"connection": "crm", "input": {"a": 1}, "version": "1.0.0"})
        self.assertNotEqual(r.headers["x-correlation-id"], stub.received[1].headers["x-correlation-id"], "each call has its own id")

    def test_path_segments_are_escaped(self) -> None:
        with Stub([(200, {}, {"id": "a/b"})]) as stub:
            with Client(stub.url + "/", "pbk_test") as client:
                client.connections.get("a/b c")
        self.assertEqual(stub.received[0].path, "/v1/connections/a%2Fb%20c")


if __name__ == "__main__":
    unittest.main()
