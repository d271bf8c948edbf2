import { test } from "node:test";
import assert from "node:assert/strict";
import { Plugboard, PlugboardError, parseRetryAfter } from "@plugboard/client";
import { startStub, json, problem } from "./stub.mjs";

test("a problem document becomes a PlugboardError with every field", async (t) => {
  const stub = await startStub((req, body, res) =>
    json(res, 400, problem(400, "invalid_input", "input.title: missing property", { errors: [{ path: "/title", message: "missing property" }] }), {
      "X-Correlation-ID": "c_test",
    }),
  );
  t.after(stub.close);
  const pb = new Plugboard({ url: stub.url, token: "pbk_x" });
  const err = await pb.invoke("http", "request", { connection: "crm", input: {} }).catch((e) => e);
  assert.ok(err instanceof PlugboardError, String(err));
  assert.equal(err.status, 400);
  assert.equal(err.code, "invalid_input");
  assert.equal(err.title, "T");
  assert.equal(err.detail, "input.title: missing property");
  assert.equal(err.correlationId, "c_test");
  assert.equal(err.source, "plugboard");
  assert.deepEqual(err.errors, [{ path: "/title", message: "missing property" }]);
  assert.equal(err.problem.code, "invalid_input");
  assert.equal(err.retryAfter, undefined);
  assert.equal(err.method, "POST");
  assert.equal(err.message, "invalid_input (400): input.title: missing property [correlation c_test]");
  assert.equal(stub.requests.length, 1, "a 400 is not retried");
});

test("an HTML answer (a proxy's) still gives a PlugboardError with the status and an excerpt", async (t) => {
  const stub = await startStub((req, body, res) => {
    res.writeHead(502, { "Content-Type": "text/html" });
    res.end("<html><body><h1>502 Bad Gateway</h1>" + "x".repeat(500) + "</body></html>");
  });
  t.after(stub.close);
  const pb = new Plugboard({ url: stub.url, token: "pbk_x" });
  const err = await pb.connectors.list().catch((e) => e);
  assert.ok(err instanceof PlugboardError);
  assert.equal(err.status, 502);
  assert.equal(err.code, "http_502");
  assert.match(err.detail, /not a problem document: <html><body><h1>502 Bad Gateway/);
  assert.ok(err.detail.length < 320, "the excerpt is short");
  assert.equal(err.problem, undefined);
});

test("Retry-After is read as seconds or as an HTTP date", () => {
  const now = Date.parse("2026-12-03T10:00:00Z");
  assert.equal(parseRetryAfter("7", now), 7);
  assert.equal(parseRetryAfter("Thu, 03 Dec 2026 10:00:30 GMT", now), 30);
  assert.equal(parseRetryAfter("Thu, 03 Dec 2026 09:00:00 GMT", now), 0);
  assert.equal(parseRetryAfter(null, now), undefined);
  assert.equal(parseRetryAfter("soon", now), undefined);
});

test("a network failure is the platform's error, wrapped with the method and the URL", async () => {
  const stub = await startStub(() => {});
  const url = stub.url;
  await stub.close(); // nothing listens there now
  const pb = new Plugboard({ url, token: "pbk_x" });
  const err = await pb.connectors.get("http").catch((e) => e);
  assert.ok(err instanceof TypeError, String(err));
  assert.ok(err.message.startsWith(`GET ${url}/v1/connectors/http: `), err.message);
  assert.ok(err.cause, "the original error is the cause");
});

test("a request that outlives timeoutMs fails with a TimeoutError naming it", async (t) => {
  const stub = await startStub(() => {}); // never answers
  t.after(stub.close);
  const pb = new Plugboard({ url: stub.url, token: "pbk_x", timeoutMs: 200 });
  const err = await pb.keys.list().catch((e) => e);
  assert.equal(err.name, "TimeoutError");
  assert.match(err.message, /GET .*\/v1\/keys: no answer within 200 ms/);
});

test("the caller's abort rejects with the caller's reason", async (t) => {
  const stub = await startStub(() => {});
  t.after(stub.close);
  const pb = new Plugboard({ url: stub.url, token: "pbk_x" });
  const ac = new AbortController();
  setTimeout(() => ac.abort(new Error("stop")), 50);
  const err = await pb.keys.list({ signal: ac.signal }).catch((e) => e);
  assert.equal(err.message, "stop");
});
