import { test } from "node:test";
import assert from "node:assert/strict";
import { Plugboard, PlugboardError, VERSION } from "@plugboard/client";
import { startStub, json, problem } from "./stub.mjs";

const invokeOK = { output: { status: 200 }, connector: "http", version: "1.0.0", correlation_id: "c_given" };

test("a 429 with Retry-After is retried after the wait, with the same correlation id each time", async (t) => {
  const stub = await startStub((req, body, res, n) => {
    if (n <= 2) return json(res, 429, problem(429, "rate_limited", "slow down"), { "Retry-After": "1" });
    json(res, 200, invokeOK, { "X-Correlation-ID": req.headers["x-correlation-id"] });
  });
  t.after(stub.close);
  const pb = new Plugboard({ url: stub.url, token: "pbk_secret", userAgent: "test-app/1" });
  const start = Date.now();
  const res = await pb.invoke("http", "request", { connection: "crm", input: { method: "GET", path: "/" }, correlationId: "c_given" });
  const took = Date.now() - start;
  assert.equal(stub.requests.length, 3, "two retries (the default) after the first attempt");
  assert.ok(took >= 1900, `waited Retry-After each time (took ${took} ms)`);
  for (const r of stub.requests) {
    assert.equal(r.headers["x-correlation-id"], "c_given");
    assert.equal(r.method, "POST");
    assert.deepEqual(JSON.parse(r.body), { connection: "crm", input: { method: "GET", path: "/" } }, "the same body each time");
    assert.equal(r.headers.authorization, "Bearer pbk_secret");
    assert.equal(r.headers["user-agent"], `plugboard-typescript/${VERSION} test-app/1`);
    assert.equal(r.headers["x-plugboard-sdk-timeout-ms"], undefined, "the SDK's own headers are not sent");
  }
  assert.equal(res.correlationId, "c_given");
  assert.deepEqual(res.output, { status: 200 });
});

test("retries give up after maxRetries and raise the last answer", async (t) => {
  const stub = await startStub((req, body, res) => json(res, 503, problem(503, "circuit_open", "upstream down"), { "Retry-After": "0" }));
  t.after(stub.close);
  const pb = new Plugboard({ url: stub.url, token: "pbk_x", maxRetries: 1 });
  const err = await pb.connections.list().catch((e) => e);
  assert.ok(err instanceof PlugboardError);
  assert.equal(err.code, "circuit_open");
  assert.equal(err.retryAfter, 0);
  assert.equal(stub.requests.length, 2);
});

test("without a correlation id, retries send the one the server gave the first attempt", async (t) => {
  const stub = await startStub((req, body, res, n) => {
    if (n === 1) return json(res, 429, problem(429, "rate_limited", "slow down"), { "Retry-After": "0", "X-Correlation-ID": "c_server" });
    json(res, 200, { connectors: [] });
  });
  t.after(stub.close);
  const pb = new Plugboard({ url: stub.url, token: "pbk_x" });
  assert.deepEqual(await pb.connectors.list(), []);
  assert.equal(stub.requests[0].headers["x-correlation-id"], undefined);
  assert.equal(stub.requests[1].headers["x-correlation-id"], "c_server");
});

test("a 429 without Retry-After backs off exponentially from 0.5 s", async (t) => {
  const stub = await startStub((req, body, res, n) => {
    if (n === 1) return json(res, 429, problem(429, "rate_limited", "slow down"));
    json(res, 200, { keys: [] });
  });
  t.after(stub.close);
  const pb = new Plugboard({ url: stub.url, token: "pbk_x" });
  const start = Date.now();
  await pb.keys.list();
  const took = Date.now() - start;
  assert.ok(took >= 240 && took < 2000, `backed off 0.25 to 0.75 s (took ${took} ms)`);
});

test("a Retry-After over 60 s is raised at once", async (t) => {
  const stub = await startStub((req, body, res) => json(res, 429, problem(429, "rate_limited", "come back later"), { "Retry-After": "120" }));
  t.after(stub.close);
  const pb = new Plugboard({ url: stub.url, token: "pbk_x" });
  const err = await pb.keys.list().catch((e) => e);
  assert.equal(err.code, "rate_limited");
  assert.equal(err.retryAfter, 120);
  assert.equal(stub.requests.length, 1);
});

test("nothing but 429 and 503 is retried", async (t) => {
  for (const status of [500, 502, 504, 409]) {
    const stub = await startStub((req, body, res) => json(res, status, problem(status, "x", "no")));
    const pb = new Plugboard({ url: stub.url, token: "pbk_x" });
    const err = await pb.connections.create({ id: "a", connectors: ["http"], auth: { type: "none" } }).catch((e) => e);
    assert.equal(err.status, status);
    assert.equal(stub.requests.length, 1, `${status} was retried`);
    await stub.close();
  }
});

test("maxRetries 0 turns retries off", async (t) => {
  const stub = await startStub((req, body, res) => json(res, 429, problem(429, "rate_limited", "x"), { "Retry-After": "0" }));
  t.after(stub.close);
  const pb = new Plugboard({ url: stub.url, token: "pbk_x", maxRetries: 0 });
  await assert.rejects(pb.keys.list(), PlugboardError);
  assert.equal(stub.requests.length, 1);
});
