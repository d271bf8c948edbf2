/** A field error of a schema failure: where in the document, and what is wrong there. */
export interface FieldError {
  /** A JSON pointer into the request (for example "/title"). */
  path: string;
  /** What is wrong at that path. */
  message: string;
}

/**
 * The RFC 9457 problem document the server answers an error with, with Plugboard's
 * extensions. Fields the server adds later are kept as they came.
 */
export interface ProblemDocument {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  code?: string;
  correlation_id?: string;
  source?: "plugin" | "plugboard" | string;
  errors?: FieldError[];
  [extension: string]: unknown;
}

/** The fields of a {@link PlugboardError}, for building one (the SDK's tests do). */
export interface PlugboardErrorInit {
  status: number;
  code: string;
  title?: string;
  detail?: string;
  correlationId?: string;
  errors?: FieldError[];
  source?: string;
  retryAfter?: number;
  problem?: ProblemDocument;
  method?: string;
  url?: string;
}

/**
 * PlugboardError is thrown for every answer that is not 2xx. It carries the server's problem
 * document: `code` is the stable machine-readable string to branch on (for example
 * "connection_not_found", "invalid_input", "forbidden", "rate_limited"), `errors` lists the
 * field errors of a schema failure, `source` tells a plugin's error ("plugin") from
 * Plugboard's own ("plugboard"), and `correlationId` finds the call in the server's logs and in
 * `pb.invocations.get`.
 *
 * An answer that is not a problem document (an HTML page from a proxy) still gives a
 * PlugboardError, with `code` "http_<status>" and an excerpt of the body as `detail`.
 *
 * @example
 * try {
 *   await pb.invoke("http", "request", { connection: "crm", input });
 * } catch (err) {
 *   if (err instanceof PlugboardError && err.code === "invalid_input") {
 *     for (const e of err.errors) console.error(e.path, e.message);
 *   } else throw err;
 * }
 */
export class PlugboardError extends Error {
  /** The HTTP status of the answer. */
  readonly status: number;
  /** The problem's stable code ("http_<status>" when the body was not a problem document). */
  readonly code: string;
  /** The problem's title (the status text). */
  readonly title: string;
  /** What went wrong and, most often, what to change. */
  readonly detail: string;
  /** The correlation id of the call: the problem's, else the X-Correlation-ID answered. */
  readonly correlationId: string | undefined;
  /** The field errors of a schema failure (empty otherwise). */
  readonly errors: FieldError[];
  /** "plugin" for an error a connector reported, "plugboard" for the server's own. */
  readonly source: string | undefined;
  /** Seconds the server asked to wait (Retry-After), when it said. */
  readonly retryAfter: number | undefined;
  /** The problem document as answered (undefined when the body was not one). */
  readonly problem: ProblemDocument | undefined;
  /** The request's method. */
  readonly method: string | undefined;
  /** The request's URL. */
  readonly url: string | undefined;

  /** Builds an error from its fields; the SDK builds them from answers. */
  constructor(init: PlugboardErrorInit) {
    super(formatMessage(init));
    this.name = "PlugboardError";
    this.status = init.status;
    this.code = init.code;
    this.title = init.title ?? "";
    this.detail = init.detail ?? "";
    this.correlationId = init.correlationId;
    this.errors = init.errors ?? [];
    this.source = init.source;
    this.retryAfter = init.retryAfter;
    this.problem = init.problem;
    this.method = init.method;
    this.url = init.url;
  }
}

function formatMessage(init: PlugboardErrorInit): string {
  let msg = `${init.code} (${init.status})`;
  if (init.detail) msg += `: ${init.detail}`;
  if (init.correlationId) msg += ` [correlation ${init.correlationId}]`;
  return msg;
}

/** How much of a body that is not a problem document an error shows. */
const EXCERPT = 200;

/**
 * problemError builds the PlugboardError of a non-2xx answer from its status, headers and
 * body text (the SDK's transport calls it; exported for tests and for callers of raw fetch).
 */
export function problemError(
  status: number,
  headers: Headers,
  body: string,
  request?: { method?: string; url?: string },
): PlugboardError {
  const retryAfter = parseRetryAfter(headers.get("retry-after"));
  const headerCorrelation = headers.get("x-correlation-id") ?? undefined;
  let doc: unknown;
  try {
    doc = body ? JSON.parse(body) : undefined;
  } catch {
    doc = undefined;
  }
  if (isProblem(doc)) {
    return new PlugboardError({
      status,
      code: doc.code,
      title: doc.title,
      detail: doc.detail,
      correlationId: doc.correlation_id ?? headerCorrelation,
      errors: Array.isArray(doc.errors) ? doc.errors : [],
      source: doc.source,
      retryAfter,
      problem: doc,
      method: request?.method,
      url: request?.url,
    });
  }
  const text = body.replace(/\s+/g, " ").trim();
  return new PlugboardError({
    status,
    code: `http_${status}`,
    title: "",
    detail: text
      ? `the server answered ${status} with a body that is not a problem document: ${text.slice(0, EXCERPT)}${text.length > EXCERPT ? "..." : ""}`
      : `the server answered ${status} with an empty body`,
    correlationId: headerCorrelation,
    retryAfter,
    method: request?.method,
    url: request?.url,
  });
}

function isProblem(doc: unknown): doc is ProblemDocument & { code: string } {
  return typeof doc === "object" && doc !== null && typeof (doc as ProblemDocument).code === "string";
}

/**
 * parseRetryAfter reads a Retry-After header, seconds or an HTTP date, as seconds from now
 * (never negative); undefined when absent or unreadable.
 */
export function parseRetryAfter(value: string | null | undefined, now: number = Date.now()): number | undefined {
  if (value == null || value.trim() === "") return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v);
  const t = Date.parse(v);
  if (Number.isNaN(t)) return undefined;
  return Math.max(0, Math.ceil((t - now) / 1000));
}

/** Why a webhook failed verification. */
export type WebhookVerificationReason =
  | "missing_header"
  | "invalid_timestamp"
  | "stale_timestamp"
  | "invalid_secret"
  | "no_matching_signature"
  | "invalid_body";

/**
 * WebhookVerificationError is thrown by `pb.webhooks.verify` when a push does not pass the
 * Standard Webhooks check; `reason` says which part failed. Answer such a request with 400
 * (or 401) and do not act on its body.
 */
export class WebhookVerificationError extends Error {
  /** Which check failed. */
  readonly reason: WebhookVerificationReason;

  /** Builds the error; `message` says what was wrong and what to check. */
  constructor(reason: WebhookVerificationReason, message: string) {
    super(message);
    this.name = "WebhookVerificationError";
    this.reason = reason;
  }
}
