"""Decoding of error answers into PlugboardError, network errors, and secrets kept out of reprs."""

from __future__ import annotations

import ast
import email.utils
import os
import socket
import unittest

from plugboard import ApiKeyAuth, BasicAuth, Client, HttpRequest, OAuth2Auth, PlugboardError
from plugboard._errors import parse_retry_after
from stub import Stub, problem


class ErrorDecodingTest(unittest.TestCase):
    def test_problem_document_with_field_errors(self) -> None:
        doc = problem(
            400,
            "invalid_input",
            "input.title: missing property",
            correlation_id="c_abc",
            errors=[{"path": "/title", "message": "missing property"}],
        )
        with Stub([(400, {"X-Correlation-ID": "c_abc"}, doc)]) as stub:
            with Client(stub.url, "pbk_test") as client:
                with self.assertRaises(PlugboardError) as ctx:
                    client.invoke("github", "create_issue", connection="gh", input={})
        err = ctx.exception
        self.assertEqual(str(err), "invalid_input (400): input.title: missing property [correlation c_abc]")
        self.assertEqual(err.status, 400)
        self.assertEqual(err.code, "invalid_input")
        self.assertEqual(err.title, "Error")
        self.assertEqual(err.detail, "input.title: missing property")
        self.assertEqual(err.correlation_id, "c_abc")
        self.assertEqual(err.errors, [{"path": "/title", "message": "missing property"}])
        self.assertEqual(err.source, "plugboard")
        self.assertIsNone(err.retry_after)
        self.assertEqual(err.problem, doc)
        self.assertEqual(err.method, "POST")
        self.assertTrue(err.url.endswith("/v1/connectors/github/actions/create_issue"))

    def test_plugin_error_keeps_its_source_and_code(self) -> None:
        doc = problem(403, "host_not_allowed", "the origin is outside the connection's hosts")
        doc["source"] = "plugin"
        err = PlugboardError.from_response(403, {}, __import__("json").dumps(doc).encode())
        self.assertEqual((err.code, err.source), ("host_not_allowed", "plugin"))
        self.assertIsNone(err.correlation_id)

    def test_html_from_a_proxy_gives_an_excerpt(self) -> None:
        html = "<html><body><h1>502 Bad Gateway</h1>" + "x" * 500 + "</body></html>"
        with Stub([(502, {"Content-Type": "text/html", "X-Correlation-ID": "c_proxy"}, html)]) as stub:
            with Client(stub.url, "pbk_test") as client:
                with self.assertRaises(PlugboardError) as ctx:
                    client.connectors.list()
        err = ctx.exception
        self.assertEqual(err.status, 502)
        self.assertEqual(err.code, "http_502")
        self.assertIn("502 Bad Gateway", err.detail)
        self.assertIn("is not a problem document", err.detail)
        self.assertLess(len(err.detail), 320, "an excerpt, not the whole page")
        self.assertIsNone(err.problem)
        self.assertEqual(err.correlation_id, "c_proxy")
        self.assertTrue(str(err).startswith("http_502 (502): "))

    def test_empty_body(self) -> None:
        err = PlugboardError.from_response(404, {}, b"", method="GET", url="http://x/v1/y")
        self.assertEqual(err.code, "http_404")
        self.assertIn("no body", err.detail)

    def test_json_without_a_code_is_not_a_problem(self) -> None:
        err = PlugboardError.from_response(400, {}, b'{"error": "bad"}')
        self.assertEqual(err.code, "http_400")
        self.assertIn('{"error": "bad"}', err.detail)

    def test_retry_after_values(self) -> None:
        now = 1_700_000_000.0
        self.assertEqual(parse_retry_after("7", now), 7)
        self.assertEqual(parse_retry_after(" 0 ", now), 0)
        self.assertEqual(parse_retry_after(email.utils.formatdate(now + 30, usegmt=True), now), 30)
        self.assertEqual(parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now), 0, "a past date: no wait")
        self.assertIsNone(parse_retry_after(None, now))
        self.assertIsNone(parse_retry_after("soon", now))
        self.assertIsNone(parse_retry_after("-3", now))

    def test_retry_after_on_the_error(self) -> None:
        err = PlugboardError.from_response(429, {"retry-after": "3"}, b'{"code": "rate_limited", "status": 429}')
        self.assertEqual(err.retry_after, 3)


class NetworkErrorTest(unittest.TestCase):
    def test_connection_refused_names_method_and_url(self) -> None:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # nothing listens there now
        with Client(f"http://127.0.0.1:{port}", "pbk_test") as client:
            with self.assertRaises(ConnectionError) as ctx:
                client.connections.list()
        self.assertIn(f"GET http://127.0.0.1:{port}/v1/connections", str(ctx.exception))
        self.assertIsInstance(ctx.exception.__cause__, OSError)

    def test_timeout_is_a_timeout_error(self) -> None:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # accepts the connection, never answers
        try:
            with Client(f"http://127.0.0.1:{listener.getsockname()[1]}", "pbk_test", timeout=0.3) as client:
                with self.assertRaises(TimeoutError) as ctx:
                    client.keys.list()
            self.assertIn("GET http://127.0.0.1:", str(ctx.exception))
            self.assertIn("0.3 s", str(ctx.exception))
        finally:
            listener.close()

    def test_bad_arguments(self) -> None:
        with self.assertRaisesRegex(ValueError, "not an http"):
            Client("127.0.0.1:8080", "pbk_x")
        with self.assertRaisesRegex(ValueError, "token is empty"):
            Client("http://127.0.0.1:8080", "")


class SecretsTest(unittest.TestCase):
    def test_reprs_do_not_show_secrets(self) -> None:
        req = HttpRequest(
            "POST",
            "http://x/v1/connections",
            {"Authorization": "Bearer pbk_topsecret", "Content-Type": "application/json"},
            b'{"id": "c", "auth": {"type": "basic", "username": "u", "password": "hunter2"}, "secrets": {"signing_secret": "s3"}}',
        )
        text = repr(req)
        for secret in ("pbk_topsecret", "hunter2", "s3"):
            self.assertNotIn(secret, text)
        self.assertIn('"username": "u"', text)
        self.assertNotIn("pbk_topsecret", repr(Client("http://x", "pbk_topsecret")))
        self.assertNotIn("k3y", repr(ApiKeyAuth("k3y")))
        self.assertNotIn("pw", repr(BasicAuth("user", "pw")))
        self.assertNotIn("cs", repr(OAuth2Auth("cid", "cs")))
        self.assertEqual(ApiKeyAuth("k3y").to_dict(), {"type": "api_key", "api_key": "k3y"})

    def test_connection_create_sends_the_secret(self) -> None:
        with Stub([(201, {}, {"id": "c"})]) as stub:
            with Client(stub.url, "pbk_test") as client:
                client.connections.create("c", connectors=["http"], params={"base_url": "http://r"}, auth=ApiKeyAuth("k3y"))
        self.assertEqual(
            stub.received[0].json(),
            {"id": "c", "connectors": ["http"], "params": {"base_url": "http://r"}, "auth": {"type": "api_key", "api_key": "k3y"}},
        )


class PackageTest(unittest.TestCase):
    def test_sources_are_python_3_9_syntax(self) -> None:
        root = os.path.join(os.path.dirname(__file__), "..")
        dirs = ["plugboard", "tools", "examples", "tests"]
        n = 0
        for d in dirs:
            for name in sorted(os.listdir(os.path.join(root, d))):
                if name.endswith(".py"):
                    path = os.path.join(root, d, name)
                    with open(path, encoding="utf-8") as f:
                        ast.parse(f.read(), path, feature_version=(3, 9))
                    n += 1
        self.assertGreater(n, 10)

    def test_public_names(self) -> None:
        import plugboard
        from plugboard import models

        for name in plugboard.__all__:
            self.assertTrue(hasattr(plugboard, name), name)
            obj = getattr(plugboard, name)
            if callable(obj) and not isinstance(obj, type(plugboard)):
                self.assertTrue(obj.__doc__, f"{name} has a docstring")
        self.assertIn("connection_not_found", models.ProblemCode.__args__)
        self.assertTrue(os.path.exists(os.path.join(os.path.dirname(plugboard.__file__), "py.typed")))


if __name__ == "__main__":
    unittest.main()
