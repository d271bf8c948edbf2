import { createHmac, timingSafeEqual } from "node:crypto";
import { WebhookVerificationError } from "./errors.js";
import type { DeliveredEvent } from "./types.js";

/** Headers as a Headers object, or a plain record (Node's IncomingHttpHeaders is one). */
export type HeadersLike = Headers | Record<string, string | string[] | undefined>;

/** The raw body as received: text, or bytes (a Buffer is a Uint8Array). */
export type RawBody = string | Uint8Array;

/** How far a webhook-timestamp may be from now, either way: 5 minutes. */
export const WEBHOOK_TOLERANCE_S = 5 * 60;

/** Options of {@link verifyWebhook}. */
export interface VerifyOptions {
  /** The time to check webhook-timestamp against, in ms since the epoch (default: now). */
  now?: number;
  /** The tolerance in seconds (default {@link WEBHOOK_TOLERANCE_S}). */
  toleranceS?: number;
}

function header(headers: HeadersLike, name: string): string | undefined {
  if (typeof (headers as Headers).get === "function") {
    return (headers as Headers).get(name) ?? undefined;
  }
  const rec = headers as Record<string, string | string[] | undefined>;
  for (const key of Object.keys(rec)) {
    if (key.toLowerCase() === name) {
      const v = rec[key];
      return Array.isArray(v) ? v.join(" ") : v;
    }
  }
  return undefined;
}

/**
 * verifyWebhook checks a push delivery as the Standard Webhooks specification says
 * (https://www.standardwebhooks.com) and returns the delivered event it carries:
 * `webhook-id`, `webhook-timestamp` (at most 5 minutes from now, either way) and
 * `webhook-signature` (space-separated `v1,<base64>` entries, any one matching) where the
 * signature is base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")) and the key is the
 * base64-decoded secret after its `whsec_` prefix (the subscription's `signing_secret`).
 *
 * Pass the body exactly as received: parsing and re-serializing JSON changes the bytes and
 * fails the check. Headers are matched case-insensitively.
 *
 * @throws {WebhookVerificationError} naming what was wrong: a missing header, a stale
 *   timestamp, no matching signature.
 */
export function verifyWebhook(
  headers: HeadersLike,
  body: RawBody,
  secret: string,
  options: VerifyOptions = {},
): DeliveredEvent {
  const id = header(headers, "webhook-id");
  const timestamp = header(headers, "webhook-timestamp");
  const signature = header(headers, "webhook-signature");
  for (const [name, v] of [["webhook-id", id], ["webhook-timestamp", timestamp], ["webhook-signature", signature]] as const) {
    if (!v) {
      throw new WebhookVerificationError("missing_header", `the request has no ${name} header: it is not a Standard Webhooks delivery`);
    }
  }
  if (!/^\d+$/.test(timestamp!)) {
    throw new WebhookVerificationError("invalid_timestamp", `webhook-timestamp ${JSON.stringify(timestamp)} is not whole seconds since the epoch`);
  }
  const now = Math.floor((options.now ?? Date.now()) / 1000);
  const tolerance = options.toleranceS ?? WEBHOOK_TOLERANCE_S;
  const skew = now - Number(timestamp);
  if (Math.abs(skew) > tolerance) {
    throw new WebhookVerificationError(
      "stale_timestamp",
      `webhook-timestamp is ${Math.abs(skew)} s ${skew > 0 ? "in the past" : "in the future"}, more than the ${tolerance} s allowed: a replayed delivery, or a clock to fix`,
    );
  }
  const key = decodeSecret(secret);
  const bytes = typeof body === "string" ? Buffer.from(body, "utf8") : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const mac = createHmac("sha256", key).update(`${id}.${timestamp}.`).update(bytes).digest();
  let matched = false;
  for (const entry of signature!.split(" ")) {
    const comma = entry.indexOf(",");
    if (comma < 0 || entry.slice(0, comma) !== "v1") continue;
    const given = Buffer.from(entry.slice(comma + 1), "base64");
    if (given.length === mac.length && timingSafeEqual(given, mac)) matched = true;
  }
  if (!matched) {
    throw new WebhookVerificationError(
      "no_matching_signature",
      "no v1 signature of webhook-signature matches the body: check the secret is this subscription's signing_secret and that the body is passed as received, unparsed",
    );
  }
  try {
    return JSON.parse(bytes.toString("utf8")) as DeliveredEvent;
  } catch {
    throw new WebhookVerificationError("invalid_body", "the signed body is not JSON: it is not a Plugboard delivered event");
  }
}

function decodeSecret(secret: string): Buffer {
  const b64 = secret.startsWith("whsec_") ? secret.slice("whsec_".length) : secret;
  const key = Buffer.from(b64, "base64");
  if (key.length === 0) {
    throw new WebhookVerificationError("invalid_secret", "the signing secret is empty: pass the subscription's signing_secret (whsec_...)");
  }
  return key;
}
