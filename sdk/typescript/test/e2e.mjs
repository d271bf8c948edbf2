// The end-to-end checks of the SDK against a real Plugboard server (sdk/typescript_test.go
// starts one with sdkenv and runs this file with PLUGBOARD_URL, PLUGBOARD_TOKEN (the app's
// invoker key), PLUGBOARD_ADMIN_TOKEN and PLUGBOARD_CONNECTION set).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { Plugboard, PlugboardError, WebhookVerificationError } from "@plugboard/client";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run this through sdk/typescript_test.go (go test ./sdk/ -run TestTypeScriptSDK)`);
  return v;
};
const url = env("PLUGBOARD_URL");
const connection = env("PLUGBOARD_CONNECTION");

// The app's client records the acks it sends and what the server answered to them.
const acks = [];
const app = new Plugboard({
  url,
  token: env("PLUGBOARD_TOKEN"),
  userAgent: "sdk-e2e",
  fetch: async (req) => {
    const body = req.url.endsWith("/events/ack") ? await req.clone().json() : undefined;
    const res = await fetch(req);
    if (body) acks.push({ ids: body.ids, acked: (await res.clone().json()).acked });
    return res;
  },
});
const admin = new Plugboard({ url, token: env("PLUGBOARD_ADMIN_TOKEN") });

/** send creates a record through the connection, as the app. */
async function send(fields, opts = {}) {
  return app.invoke("http", "request", { connection, input: { method: "POST", path: "/records", body: fields }, ...opts });
}

test("invoke sends a record and reads it back", async () => {
  const sent = await send({ name: "Grace" }, { correlationId: "c_e2e_send_1" });
  assert.equal(sent.output.status, 201);
  assert.equal(sent.connector, "http");
  assert.equal(sent.correlationId, "c_e2e_send_1", "the correlation id passed is the call's");
  assert.ok(sent.version);
  const id = sent.output.body.id;
  const read = await app.invoke("http", "request", { connection, input: { method: "GET", path: "/records" } });
  assert.ok(read.output.body.records.some((r) => r.id === id && r.name === "Grace"), JSON.stringify(read.output));
  const log = await app.invocations.get("c_e2e_send_1");
  assert.equal(log.action, "request");
  assert.equal(log.connection, connection);
});

test("typed errors: 404 connection_not_found, 400 invalid_input with errors, 403 forbidden", async () => {
  // The app key is scoped to its connection, so it is the admin that learns one does not exist.
  const notFound = await admin.invoke("http", "request", { connection: "no-such-connection", input: { method: "GET", path: "/records" } }).catch((e) => e);
  assert.ok(notFound instanceof PlugboardError, String(notFound));
  assert.equal(notFound.status, 404);
  assert.equal(notFound.code, "connection_not_found");
  assert.match(notFound.correlationId, /^c_/);
  assert.match(notFound.message, /^connection_not_found \(404\): .* \[correlation c_/);

  const invalid = await app.invoke("http", "request", { connection, input: { method: 42 } }).catch((e) => e);
  assert.ok(invalid instanceof PlugboardError, String(invalid));
  assert.equal(invalid.status, 400);
  assert.equal(invalid.code, "invalid_input");
  assert.equal(invalid.source, "plugboard");
  assert.ok(invalid.errors.length > 0 && invalid.errors.every((e) => typeof e.path === "string" && e.message), JSON.stringify(invalid.errors));

  const forbidden = await app.connections
    .create({ id: "app-made", connectors: ["http"], params: { base_url: "http://127.0.0.1:1" }, auth: { type: "api_key", api_key: "k_app" } })
    .catch((e) => e);
  assert.ok(forbidden instanceof PlugboardError, String(forbidden));
  assert.equal(forbidden.status, 403);
  assert.equal(forbidden.code, "forbidden");
});

test("a queue subscription: the iterator receives 3 new records, each acked exactly once", async () => {
  const sub = await app.subscriptions.create({ connector: "trig", trigger: "items", connection, delivery: { type: "queue" } });
  assert.match(sub.id, /^sub_/);
  assert.equal(sub.delivery.type, "queue");
  const names = ["pull-1", "pull-2", "pull-3"];
  for (const name of names) await send({ name });

  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(), 30_000);
  const got = [];
  acks.length = 0;
  for await (const event of app.events.pull(sub.id, { signal: stop.signal, waitS: 5 })) {
    assert.equal(event.type, "trig.items");
    assert.equal(event.subscription, sub.id);
    got.push(event);
    if (got.length === names.length) stop.abort();
  }
  clearTimeout(timer);
  assert.deepEqual(got.map((e) => e.data.name), names, "the 3 records, in order");
  const ackedIds = acks.flatMap((a) => a.ids);
  assert.deepEqual(ackedIds.sort(), got.map((e) => e.id).sort(), "each event acked once");
  assert.equal(acks.reduce((n, a) => n + a.acked, 0), 3, "the server counted 3 newly acked");

  assert.deepEqual(await app.events.list(sub.id, { waitS: 1 }), [], "a second pull finds nothing");
  const after = await app.subscriptions.get(sub.id);
  assert.equal(after.counts.pending, 0, JSON.stringify(after.counts));
  assert.equal(after.counts.delivered, 3, JSON.stringify(after.counts));
  assert.ok((await app.subscriptions.list()).some((s) => s.id === sub.id));
  await app.subscriptions.delete(sub.id);
  const gone = await app.subscriptions.get(sub.id).catch((e) => e);
  assert.equal(gone.status, 404);
});

test("a webhook subscription: the push passes verify with the signing secret; a tampered body does not", async (t) => {
  const pushes = [];
  let arrived;
  const got = new Promise((resolve) => (arrived = resolve));
  const receiver = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      pushes.push({ headers: req.headers, body: Buffer.concat(chunks) });
      res.writeHead(204).end();
      arrived();
    });
  });
  await new Promise((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  t.after(() => receiver.close());
  const sub = await app.subscriptions.create({
    connector: "trig", trigger: "items", connection,
    delivery: { type: "webhook", url: `http://127.0.0.1:${receiver.address().port}/hook` },
  });
  assert.match(sub.signing_secret, /^whsec_/);
  await send({ name: "push-1" });
  await Promise.race([got, new Promise((_, reject) => setTimeout(() => reject(new Error("no push within 20 s")), 20_000))]);

  const { headers, body } = pushes[0];
  const event = app.webhooks.verify(headers, body, sub.signing_secret);
  assert.equal(event.type, "trig.items");
  assert.equal(event.subscription, sub.id);
  assert.equal(event.data.name, "push-1");
  assert.equal(headers["webhook-id"], event.id);

  const tampered = Buffer.from(body.toString("utf8").replace("push-1", "push-X"));
  assert.throws(() => app.webhooks.verify(headers, tampered, sub.signing_secret), (err) => err instanceof WebhookVerificationError && err.reason === "no_matching_signature");
  assert.throws(() => app.webhooks.verify(headers, body, "whsec_" + Buffer.from("another secret").toString("base64")), WebhookVerificationError);
  await app.subscriptions.delete(sub.id);
});

test("MCP servers and keys, as the admin", async () => {
  const mcp = await admin.mcpServers.create({ name: "crm-tools", connector: "http", connection, tools: ["request"], enabled: true });
  assert.match(mcp.token, /^mcp_/);
  assert.equal(mcp.url, "/mcp/crm-tools");
  assert.ok((await admin.mcpServers.list()).some((s) => s.name === "crm-tools"));
  assert.equal((await admin.mcpServers.update("crm-tools", { enabled: false })).enabled, false);
  assert.equal((await admin.mcpServers.get("crm-tools")).enabled, false);
  const token = await admin.mcpServers.rotateToken("crm-tools");
  assert.match(token, /^mcp_/);
  assert.notEqual(token, mcp.token);
  await admin.mcpServers.delete("crm-tools");
  assert.equal((await admin.mcpServers.get("crm-tools").catch((e) => e)).status, 404);

  const key = await admin.keys.create({ name: "e2e-reader", role: "reader" });
  assert.match(key.secret, /^pbk_/);
  assert.equal((await admin.keys.get(key.id)).name, "e2e-reader");
  const listed = await admin.keys.list();
  assert.ok(listed.some((k) => k.id === key.id && k.secret === undefined), "a list never shows a secret");
  const reader = new Plugboard({ url, token: key.secret });
  assert.ok((await reader.connectors.list()).some((c) => c.name === "http"));
  await admin.keys.revoke(key.id);
  const after = await reader.connectors.list().catch((e) => e);
  assert.equal(after.code, "unauthenticated");
  assert.equal(after.status, 401);
});

test("connectors, connections and the audit log read as documented", async () => {
  const connectors = await admin.connectors.list();
  assert.deepEqual(connectors.map((c) => c.name).sort(), ["http", "trig"]);
  const http = await admin.connectors.get("http");
  assert.equal(http.manifest.name, "http");
  const actions = await admin.connectors.actions("http");
  assert.ok(actions.some((a) => a.name === "request" && a.input_schema));
  const version = await admin.connectors.version("http", http.active_version);
  assert.match(version.digest, /^sha256:/);
  const doc = await admin.connectors.openapi("http");
  assert.ok(doc.paths["/v1/connectors/http/actions/request"]);

  const crm = await admin.connections.get(connection);
  assert.equal(crm.auth.type, "api_key");
  assert.equal(crm.status, "ready");
  assert.ok((await admin.connections.list()).some((c) => c.id === connection));
  assert.doesNotMatch(JSON.stringify(crm), /rk_sdk/, "no secret in an answer");

  const entries = [];
  for await (const e of admin.audit.list({ limit: 2 })) {
    entries.push(e);
    if (entries.length === 5) break;
  }
  assert.equal(entries.length, 5, "the audit log pages on past 2 entries");
  assert.ok(entries.every((e) => e.action && e.outcome));
});
