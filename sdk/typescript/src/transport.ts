import { PlugboardError, parseRetryAfter, problemError } from "./errors.js";

/** The longest Retry-After the client waits for; a longer one is raised at once. */
export const MAX_RETRY_WAIT_S = 60;
/** The first backoff when a 429 or 503 gave no Retry-After; doubled on each retry, with jitter. */
export const BACKOFF_BASE_MS = 500;

/** The fetch function the client sends with (the global fetch by default). */
export type FetchLike = (input: Request) => Promise<Response>;

/** What the transport needs from the client's options. */
export interface TransportConfig {
  maxRetries: number;
  timeoutMs: number;
  fetch: FetchLike;
  /** Waits ms or rejects when signal aborts; tests shorten it. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/** A request's own timeout, set by `RequestOptions.timeoutMs` through this header (not sent). */
export const TIMEOUT_HEADER = "x-plugboard-sdk-timeout-ms";
/** Time added to the timeout of a long poll (its wait), through this header (not sent). */
export const WAIT_HEADER = "x-plugboard-sdk-wait-ms";

/**
 * Transport sends one API request for openapi-fetch: it applies the timeout, retries a 429 or a
 * 503 up to maxRetries times (waiting what Retry-After says, or an exponential backoff from
 * 0.5 s with jitter; a wait over 60 s is not waited for), sends the same X-Correlation-ID on
 * each retry (the caller's, else the one the server gave the first attempt), and wraps network
 * failures with the method and URL.
 */
export class Transport {
  readonly #cfg: TransportConfig;

  constructor(cfg: TransportConfig) {
    this.#cfg = cfg;
  }

  /** Sends request, with the retries above; the answer is the last attempt's. */
  readonly send = async (request: Request): Promise<Response> => {
    const headers = new Headers(request.headers);
    const timeoutMs = (Number(headers.get(TIMEOUT_HEADER)) || this.#cfg.timeoutMs) + (Number(headers.get(WAIT_HEADER)) || 0);
    headers.delete(TIMEOUT_HEADER);
    headers.delete(WAIT_HEADER);
    const body = request.body ? await request.arrayBuffer() : undefined;
    const caller = request.signal;
    for (let attempt = 0; ; attempt++) {
      const signal = AbortSignal.any([caller, AbortSignal.timeout(timeoutMs)]);
      let response: Response;
      try {
        response = await this.#cfg.fetch(new Request(request.url, { method: request.method, headers, body, signal, redirect: "error" }));
      } catch (err) {
        throw wrapNetworkError(err, request.method, request.url, caller, timeoutMs);
      }
      if (!headers.has("x-correlation-id")) {
        const echoed = response.headers.get("x-correlation-id");
        if (echoed) headers.set("x-correlation-id", echoed);
      }
      if ((response.status !== 429 && response.status !== 503) || attempt >= this.#cfg.maxRetries) {
        return response;
      }
      const after = parseRetryAfter(response.headers.get("retry-after"));
      if (after !== undefined && after > MAX_RETRY_WAIT_S) return response;
      const waitMs = after !== undefined ? after * 1000 : backoff(attempt);
      await response.body?.cancel();
      await (this.#cfg.sleep ?? sleep)(waitMs, caller);
    }
  };
}

function backoff(attempt: number): number {
  const base = BACKOFF_BASE_MS * 2 ** attempt;
  return base / 2 + Math.random() * base; // 0.5x to 1.5x
}

/** sleep waits ms, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function wrapNetworkError(err: unknown, method: string, url: string, caller: AbortSignal, timeoutMs: number): unknown {
  if (caller.aborted) return caller.reason ?? err; // the caller cancelled: theirs to see as is
  const e = err as Error;
  if (e?.name === "TimeoutError") {
    return new DOMException(`${method} ${url}: no answer within ${timeoutMs} ms (raise timeoutMs if the call is slow)`, "TimeoutError");
  }
  const cause = (e?.cause as Error | undefined)?.message;
  const wrapped = new TypeError(`${method} ${url}: ${e?.message ?? String(err)}${cause ? ` (${cause})` : ""}: is the Plugboard server running at that URL?`, {
    cause: err,
  });
  return wrapped;
}

/**
 * unwrap turns an openapi-fetch result into its data, or throws the PlugboardError of a
 * non-2xx answer.
 */
export async function unwrap<T>(
  method: string,
  p: Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<{ data: T; response: Response }> {
  const { data, error, response } = await p;
  if (!response.ok) {
    const body = error === undefined ? "" : typeof error === "string" ? error : JSON.stringify(error);
    throw problemError(response.status, response.headers, body, { method, url: response.url });
  }
  return { data: data as T, response };
}

export { PlugboardError };
