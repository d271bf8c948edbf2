import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Webhook } from "standardwebhooks";
import { Plugboard, WebhookVerificationError, verifyWebhook } from "@plugboard/client";

const secret = "whsec_" + randomBytes(24).toString("base64");
const event = { id: "evt_1", type: "trig.items", source_event_id: "1", timestamp: "2026-12-03T10:00:00Z", subscription: "sub_1", data: { name: "Ada" } };
const body = JSON.stringify(event);
const pb = new Plugboard({ url: "http://127.0.0.1:1", token: "pbk_x" });

/** signed is the headers the official library's signer makes for body at time t. */
function signed(payload, t = new Date(), id = "msg_1") {
  const sig = new Webhook(secret).sign(id, t, payload);
  return { "webhook-id": id, "webhook-timestamp": String(Math.floor(t.getTime() / 1000)), "webhook-signature": sig };
}

/** reasonOf is the reason of the WebhookVerificationError fn throws. */
function reasonOf(fn) {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof WebhookVerificationError, String(err));
    return err.reason;
  }
  assert.fail("verified");
}

test("a push signed by the official Standard Webhooks signer verifies and parses", () => {
  assert.deepEqual(pb.webhooks.verify(signed(body), body, secret), event);
  assert.deepEqual(verifyWebhook(new Headers(signed(body)), Buffer.from(body), secret), event, "a Headers object and a Buffer");
});

test("header names are matched case-insensitively", () => {
  const h = Object.fromEntries(Object.entries(signed(body)).map(([k, v]) => [k.toUpperCase(), v]));
  assert.equal(pb.webhooks.verify(h, body, secret).id, "evt_1");
});

test("any one matching signature of several is enough", () => {
  const h = signed(body);
  h["webhook-signature"] = `v1,${Buffer.alloc(32).toString("base64")} v2,abc ${h["webhook-signature"]}`;
  assert.equal(pb.webhooks.verify(h, body, secret).id, "evt_1");
});

test("a tampered body, another secret or a forged signature fail with no_matching_signature", () => {
  const h = signed(body);
  assert.equal(reasonOf(() => pb.webhooks.verify(h, body.replace("Ada", "Eve"), secret)), "no_matching_signature");
  assert.equal(reasonOf(() => pb.webhooks.verify(h, body, "whsec_" + randomBytes(24).toString("base64"))), "no_matching_signature");
  assert.equal(reasonOf(() => pb.webhooks.verify({ ...h, "webhook-signature": "v1,AAAA" }, body, secret)), "no_matching_signature");
  assert.equal(reasonOf(() => pb.webhooks.verify({ ...h, "webhook-id": "msg_2" }, body, secret)), "no_matching_signature");
});

test("a timestamp more than 5 minutes away, either way, is stale", () => {
  assert.equal(reasonOf(() => pb.webhooks.verify(signed(body, new Date(Date.now() - 6 * 60_000)), body, secret)), "stale_timestamp");
  assert.equal(reasonOf(() => pb.webhooks.verify(signed(body, new Date(Date.now() + 6 * 60_000)), body, secret)), "stale_timestamp");
  assert.equal(pb.webhooks.verify(signed(body, new Date(Date.now() - 4 * 60_000)), body, secret).id, "evt_1");
});

test("a missing header is named", () => {
  for (const name of ["webhook-id", "webhook-timestamp", "webhook-signature"]) {
    const h = signed(body);
    delete h[name];
    try {
      pb.webhooks.verify(h, body, secret);
      assert.fail("verified");
    } catch (err) {
      assert.equal(err.reason, "missing_header");
      assert.match(err.message, new RegExp(name));
    }
  }
});

test("what our verifier accepts, the official verifier accepts too", () => {
  const h = signed(body);
  assert.deepEqual(new Webhook(secret).verify(body, h), event);
});
