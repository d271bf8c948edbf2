import { test } from "node:test";
import assert from "node:assert/strict";
import { Plugboard } from "@plugboard/client";
import { startStub, json } from "./stub.mjs";

const ev = (n) => ({ id: `evt_${n}`, type: "trig.items", source_event_id: String(n), timestamp: "2026-12-03T10:00:00Z", subscription: "sub_1", data: { n } });

/**
 * queue is a stub of pull and ack: batches are answered in order (then empty batches, after a
 * short wait, as a long poll would), and log records "pull" and "ack:<ids>" in order.
 */
async function queue(t, batches) {
  const log = [];
  const acked = [];
  const stub = await startStub(async (req, body, res) => {
    const url = new URL(req.url, "http://x");
    if (req.method === "GET" && url.pathname === "/v1/subscriptions/sub_1/events") {
      log.push("pull");
      assert.equal(url.searchParams.get("wait_s"), "20", "the default wait is 20 s");
      const batch = batches.shift();
      if (!batch) await new Promise((r) => setTimeout(r, 30));
      return json(res, 200, { events: batch ?? [] });
    }
    if (req.method === "POST" && url.pathname === "/v1/subscriptions/sub_1/events/ack") {
      const { ids } = JSON.parse(body);
      log.push(`ack:${ids.join(",")}`);
      acked.push(...ids);
      return json(res, 200, { acked: ids.length });
    }
    json(res, 404, { code: "not_found", status: 404, title: "Not Found", type: "about:blank", source: "plugboard" });
  });
  t.after(stub.close);
  return { pb: new Plugboard({ url: stub.url, token: "pbk_x" }), log, acked };
}

test("each event is acked once, per batch, before the next pull; empty batches do not stop it", async (t) => {
  const { pb, log, acked } = await queue(t, [[ev(1), ev(2)], [], [ev(3)]]);
  const seen = [];
  const ac = new AbortController();
  for await (const e of pb.events.pull("sub_1", { signal: ac.signal })) {
    seen.push(e.id);
    if (seen.length === 3) ac.abort(); // stop after the third, which was handled
  }
  assert.deepEqual(seen, ["evt_1", "evt_2", "evt_3"]);
  assert.deepEqual(acked, ["evt_1", "evt_2", "evt_3"], "each acked exactly once");
  assert.deepEqual(log, ["pull", "ack:evt_1,evt_2", "pull", "pull", "ack:evt_3"]);
});

test("the event the loop breaks on is not acked; the ones before it are", async (t) => {
  const { pb, acked } = await queue(t, [[ev(1), ev(2), ev(3)]]);
  for await (const e of pb.events.pull("sub_1")) {
    if (e.id === "evt_2") break;
  }
  assert.deepEqual(acked, ["evt_1"]);
});

test("the event the loop throws on is not acked, and the error reaches the caller", async (t) => {
  const { pb, acked } = await queue(t, [[ev(1), ev(2)]]);
  await assert.rejects(async () => {
    for await (const e of pb.events.pull("sub_1")) {
      if (e.id === "evt_2") throw new Error("handler failed");
    }
  }, /handler failed/);
  assert.deepEqual(acked, ["evt_1"]);
});

test("an abort during the long poll ends the loop quietly", async (t) => {
  const { pb, log } = await queue(t, []);
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 100);
  let n = 0;
  for await (const _ of pb.events.pull("sub_1", { signal: ac.signal })) n++;
  assert.equal(n, 0);
  assert.ok(log.length >= 1 && log.every((l) => l === "pull"), log.join(" "));
});

test("list leases one batch and ack sends the ids", async (t) => {
  const { pb, log } = await queue(t, [[ev(1)]]);
  const batch = await pb.events.list("sub_1", { waitS: 20 });
  assert.deepEqual(batch.map((e) => e.id), ["evt_1"]);
  assert.equal(await pb.events.ack("sub_1", ["evt_1"]), 1);
  assert.equal(await pb.events.ack("sub_1", []), 0, "an empty ack sends nothing");
  assert.deepEqual(log, ["pull", "ack:evt_1"]);
});
