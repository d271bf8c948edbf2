import { test } from "node:test";
import assert from "node:assert/strict";
import { inspect } from "node:util";
import { readFileSync } from "node:fs";
import { Plugboard, VERSION } from "@plugboard/client";
import { startStub, json } from "./stub.mjs";

test("VERSION is the package's version", () => {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url)));
  assert.equal(VERSION, pkg.version);
});

test("the token never shows in inspect, console.log or JSON", () => {
  const pb = new Plugboard({ url: "http://127.0.0.1:1/", token: "pbk_topsecret" });
  assert.doesNotMatch(inspect(pb, { depth: 5, showHidden: true }), /topsecret/);
  assert.doesNotMatch(JSON.stringify(pb), /topsecret/);
  assert.equal(pb.url, "http://127.0.0.1:1", "a trailing slash is dropped");
});

test("a client needs a url and a token, and says so", () => {
  assert.throws(() => new Plugboard({ token: "x" }), /url is required/);
  assert.throws(() => new Plugboard({ url: "http://x" }), /token is required/);
});

test("methods send the routes and bodies of docs/API.md", async (t) => {
  const stub = await startStub((req, body, res) => {
    if (req.method === "DELETE") {
      res.writeHead(204);
      return res.end();
    }
    if (req.url.startsWith("/v1/audit")) {
      const cursor = new URL(req.url, "http://x").searchParams.get("cursor");
      return json(res, 200, cursor ? { entries: [{ action: "b" }], next: null } : { entries: [{ action: "a" }], next: "c2" });
    }
    if (req.url === "/v1/mcp-servers/t/rotate-token") return json(res, 200, { token: "mcp_new" });
    if (req.url === "/v1/subscriptions/sub_1/replay") return json(res, 200, { replayed: 4 });
    if (req.url === "/v1/connectors?activate=true") return json(res, 201, { name: "x", version: "1.0.0" });
    json(res, 200, { ok: true });
  });
  t.after(stub.close);
  const pb = new Plugboard({ url: stub.url, token: "pbk_x" });
  await pb.connections.update("crm", { hosts: ["http://a"] });
  await pb.connections.delete("crm");
  await pb.connectors.activate("http", "1.1.0", { approveCapabilities: true, canary: { version: "1.2.0", percent: 10 } });
  await pb.connectors.upload(new Uint8Array([0, 97, 115, 109]), { activate: true });
  assert.equal(await pb.subscriptions.replay("sub_1", new Date("2026-12-01T00:00:00Z")), 4);
  assert.equal(await pb.mcpServers.rotateToken("t"), "mcp_new");
  const actions = [];
  for await (const e of pb.audit.list({ actor: "key_1", limit: 1 })) actions.push(e.action);
  assert.deepEqual(actions, ["a", "b"], "list follows next");
  const r = stub.requests;
  assert.deepEqual([r[0].method, r[0].url, JSON.parse(r[0].body)], ["PATCH", "/v1/connections/crm", { hosts: ["http://a"] }]);
  assert.deepEqual([r[1].method, r[1].url], ["DELETE", "/v1/connections/crm"]);
  assert.deepEqual([r[2].method, r[2].url, JSON.parse(r[2].body)], [
    "PUT",
    "/v1/connectors/http/active?approve=capabilities",
    { version: "1.1.0", canary: { version: "1.2.0", percent: 10 } },
  ]);
  assert.deepEqual([r[3].method, r[3].url, r[3].headers["content-type"]], ["POST", "/v1/connectors?activate=true", "application/wasm"]);
  assert.equal(r[3].body, "\0asm");
  assert.deepEqual(JSON.parse(r[4].body), { since: "2026-12-01T00:00:00.000Z" });
  assert.equal(r[6].url, "/v1/audit?actor=key_1&limit=1");
  assert.equal(r[7].url, "/v1/audit?actor=key_1&limit=1&cursor=c2");
});
