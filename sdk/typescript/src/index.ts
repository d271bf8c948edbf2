/**
 * @plugboard/client: the TypeScript client of Plugboard's HTTP API (docs/API.md).
 *
 * @example
 * import { Plugboard } from "@plugboard/client";
 * const pb = new Plugboard({ url: "http://127.0.0.1:8080", token: process.env.PLUGBOARD_TOKEN! });
 *
 * @packageDocumentation
 */
export {
  Plugboard,
  Connectors,
  Connections,
  Subscriptions,
  Events,
  Webhooks,
  McpServers,
  Keys,
  Audit,
  Invocations,
  DEFAULT_MAX_RETRIES,
  DEFAULT_TIMEOUT_MS,
  DEFAULT_WAIT_S,
} from "./client.js";
export type { PlugboardOptions, TypedConnector, PullOptions, AuditQuery, AuditPage } from "./client.js";
export { PlugboardError, WebhookVerificationError, parseRetryAfter, problemError } from "./errors.js";
export type { FieldError, ProblemDocument, PlugboardErrorInit, WebhookVerificationReason } from "./errors.js";
export { verifyWebhook, WEBHOOK_TOLERANCE_S } from "./webhooks.js";
export type { HeadersLike, RawBody, VerifyOptions } from "./webhooks.js";
export { MAX_RETRY_WAIT_S, BACKOFF_BASE_MS } from "./transport.js";
export type { FetchLike } from "./transport.js";
export { VERSION } from "./version.js";
export type * from "./types.js";
export type { paths, components, operations } from "./schema.js";
