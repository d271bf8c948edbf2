import createClient, { type Client } from "openapi-fetch";
import { inspect } from "node:util";
import type { paths } from "./schema.js";
import { TIMEOUT_HEADER, WAIT_HEADER, Transport, unwrap, type FetchLike } from "./transport.js";
import { verifyWebhook, type HeadersLike, type RawBody, type VerifyOptions } from "./webhooks.js";
import { VERSION } from "./version.js";
import type {
  ActionInput,
  ActionOutput,
  ActivatedVersion,
  AuditEntry,
  AuthRequest,
  CanaryRequest,
  Action,
  Connection,
  ConnectionCreate,
  ConnectionUpdate,
  ConnectorActions,
  Connector,
  ConnectorSummary,
  ConnectorVersion,
  DeliveredEvent,
  InvokeOptions,
  InvokeResult,
  Invocation,
  Key,
  KeyCreate,
  McpServer,
  McpServerCreate,
  McpServerUpdate,
  RequestOptions,
  Subscription,
  SubscriptionCreate,
} from "./types.js";

/** The options of {@link Plugboard}. */
export interface PlugboardOptions {
  /** The server's base URL, for example "http://127.0.0.1:8080" (no /v1). */
  url: string;
  /** An API key (pbk_...) or the admin token; sent as a Bearer token, never shown. */
  token: string;
  /** How many times a 429 or 503 is retried (default 2; 0 turns retries off). */
  maxRetries?: number;
  /** Each request's timeout in ms (default 60000); a long poll adds its wait to it. */
  timeoutMs?: number;
  /** Appended to the User-Agent "plugboard-typescript/<version>". */
  userAgent?: string;
  /** The fetch to send with (default the global fetch), for tests and proxies. */
  fetch?: FetchLike;
}

/** The default of {@link PlugboardOptions.maxRetries}. */
export const DEFAULT_MAX_RETRIES = 2;
/** The default of {@link PlugboardOptions.timeoutMs}. */
export const DEFAULT_TIMEOUT_MS = 60_000;
/** The default long-poll wait of an events pull, in seconds. */
export const DEFAULT_WAIT_S = 20;

type Api = Client<paths, `${string}/${string}`>;

function init(o: RequestOptions | undefined): { headers: Record<string, string>; signal?: AbortSignal } {
  const headers: Record<string, string> = {};
  if (o?.correlationId) headers["X-Correlation-ID"] = o.correlationId;
  if (o?.timeoutMs) headers[TIMEOUT_HEADER] = String(o.timeoutMs);
  return { headers, signal: o?.signal };
}

/**
 * Plugboard is the client of a Plugboard server's HTTP API (docs/API.md). Each method is one
 * HTTP exchange (list methods follow `next` cursors where the API pages); an answer that is not
 * 2xx throws a {@link PlugboardError}; a 429 or 503 is retried (see {@link PlugboardOptions}).
 *
 * @example
 * import { Plugboard } from "@plugboard/client";
 * const pb = new Plugboard({ url: process.env.PLUGBOARD_URL!, token: process.env.PLUGBOARD_TOKEN! });
 * const res = await pb.invoke("http", "request", { connection: "crm", input: { method: "GET", path: "/records" } });
 * console.log(res.output, res.correlationId);
 */
export class Plugboard {
  /** The server's base URL. */
  readonly url: string;
  /** The User-Agent sent. */
  readonly userAgent: string;
  /** Connectors: list, get, actions, upload, activate, deleteVersion. */
  readonly connectors: Connectors;
  /** Connections: list, get, create, update, rotateCredentials, reauthorize, delete. */
  readonly connections: Connections;
  /** Subscriptions to triggers: create, list, get, update, delete, replay. */
  readonly subscriptions: Subscriptions;
  /** The events of queue subscriptions: pull (the iterator), list (one batch), ack. */
  readonly events: Events;
  /** Standard Webhooks verification of push deliveries. */
  readonly webhooks: Webhooks;
  /** MCP servers: create, list, get, update, rotateToken, delete. */
  readonly mcpServers: McpServers;
  /** API keys: create, list, get, revoke. */
  readonly keys: Keys;
  /** The audit log. */
  readonly audit: Audit;
  /** Invocation logs of action calls. */
  readonly invocations: Invocations;
  readonly #api: Api;

  /** Makes a client; nothing is sent until a method is called. */
  constructor(options: PlugboardOptions) {
    if (!options?.url) throw new TypeError("new Plugboard({url, token}): url is required, for example http://127.0.0.1:8080");
    if (!options.token) throw new TypeError("new Plugboard({url, token}): token is required: an API key (pbk_...) or the admin token");
    this.url = options.url.replace(/\/+$/, "");
    this.userAgent = `plugboard-typescript/${VERSION}` + (options.userAgent ? ` ${options.userAgent}` : "");
    const transport = new Transport({
      maxRetries: options.maxRetries ?? DEFAULT_MAX_RETRIES,
      timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      fetch: options.fetch ?? ((r: Request) => globalThis.fetch(r)),
    });
    this.#api = createClient<paths>({
      baseUrl: this.url,
      fetch: transport.send,
      headers: { Authorization: `Bearer ${options.token}`, "User-Agent": this.userAgent, Accept: "application/json" },
    });
    this.connectors = new Connectors(this.#api);
    this.connections = new Connections(this.#api);
    this.subscriptions = new Subscriptions(this.#api);
    this.events = new Events(this.#api);
    this.webhooks = new Webhooks();
    this.mcpServers = new McpServers(this.#api);
    this.keys = new Keys(this.#api);
    this.audit = new Audit(this.#api);
    this.invocations = new Invocations(this.#api);
  }

  /**
   * invoke calls a connector's action with a connection and an input, and answers its output
   * with the connector, the version that ran and the correlation id. `Input` and `Output` type
   * the call (see {@link Plugboard.connector} to take them from a connector's document).
   *
   * @throws {PlugboardError} 400 invalid_input (with `errors`), 404 connection_not_found, ...
   */
  async invoke<Input = unknown, Output = unknown>(connector: string, action: string, options: InvokeOptions<Input>): Promise<InvokeResult<Output>> {
    const body: { connection?: string; input?: unknown; version?: string } = { input: options.input };
    if (options.connection !== undefined) body.connection = options.connection;
    if (options.version !== undefined) body.version = options.version;
    const { data, response } = await unwrap(
      "POST",
      this.#api.POST("/v1/connectors/{name}/actions/{action}", { params: { path: { name: connector, action } }, body, ...init(options) }),
    );
    return {
      output: data.output as Output,
      connector: data.connector,
      version: data.version,
      correlationId: data.correlation_id ?? response.headers.get("x-correlation-id") ?? "",
    };
  }

  /**
   * connector binds a connector's action types, generated with openapi-typescript from its
   * document (`GET /v1/connectors/{name}/openapi.json`), so `invoke` checks the input and
   * types the output by action name.
   *
   * @example
   * import type { paths as HttpPaths } from "./http.schema.js";
   * const http = pb.connector<HttpPaths>("http");
   * const res = await http.invoke("request", { connection: "crm", input: { method: "GET", path: "/records" } });
   * res.output.status; // number
   */
  connector<Paths>(name: string): TypedConnector<Paths> {
    return {
      name,
      invoke: (action, options) => this.invoke(name, action as string, options),
    };
  }

  /** Keeps the token out of console.log and util.inspect. */
  [inspect.custom](): string {
    return `Plugboard { url: ${JSON.stringify(this.url)}, token: [redacted] }`;
  }

  /** Keeps the token out of JSON.stringify. */
  toJSON(): { url: string } {
    return { url: this.url };
  }
}

/** A connector bound to the action types of its document (see {@link Plugboard.connector}). */
export interface TypedConnector<Paths> {
  /** The connector's name. */
  readonly name: string;
  /** Calls one of the connector's actions, typed by its document. */
  invoke<A extends keyof ConnectorActions<Paths> & string>(
    action: A,
    options: InvokeOptions<ActionInput<Paths, A>>,
  ): Promise<InvokeResult<ActionOutput<Paths, A>>>;
}

/** `pb.connectors`: the connectors and their versions. */
export class Connectors {
  readonly #api: Api;
  /** @internal */
  constructor(api: Api) {
    this.#api = api;
  }

  /** Lists the connectors the caller may see. */
  async list(o?: RequestOptions): Promise<ConnectorSummary[]> {
    return (await unwrap("GET", this.#api.GET("/v1/connectors", init(o)))).data.connectors;
  }

  /** Gets a connector: its active manifest and its versions. */
  async get(name: string, o?: RequestOptions): Promise<Connector> {
    return (await unwrap("GET", this.#api.GET("/v1/connectors/{name}", { params: { path: { name } }, ...init(o) }))).data;
  }

  /** Gets one stored version of a connector. */
  async version(name: string, version: string, o?: RequestOptions): Promise<ConnectorVersion> {
    return (await unwrap("GET", this.#api.GET("/v1/connectors/{name}/versions/{version}", { params: { path: { name, version } }, ...init(o) }))).data;
  }

  /** Lists a connector's actions with their input and output schemas. */
  async actions(name: string, o?: RequestOptions): Promise<Action[]> {
    return (await unwrap("GET", this.#api.GET("/v1/connectors/{name}/actions", { params: { path: { name } }, ...init(o) }))).data.actions;
  }

  /** Gets the connector's OpenAPI document: its actions as typed operations, for generators. */
  async openapi(name: string, o?: RequestOptions & { version?: string }): Promise<unknown> {
    const query = o?.version ? { version: o.version } : undefined;
    return (await unwrap("GET", this.#api.GET("/v1/connectors/{name}/openapi.json", { params: { path: { name }, query }, ...init(o) }))).data;
  }

  /**
   * Uploads a connector (the .wasm bytes). The first version of a connector is always
   * activated; later ones only with `activate: true` (`approveCapabilities` accepts the new
   * origins, auth types or reveals it asks for).
   */
  async upload(
    wasm: Uint8Array,
    o?: RequestOptions & { activate?: boolean; approveCapabilities?: boolean },
  ): Promise<ConnectorVersion> {
    const query: { activate?: boolean; approve?: "capabilities" } = {};
    if (o?.activate) query.activate = true;
    if (o?.approveCapabilities) query.approve = "capabilities";
    const i = init(o);
    const { data } = await unwrap(
      "POST",
      this.#api.POST("/v1/connectors", {
        params: { query },
        body: wasm as unknown as string,
        bodySerializer: (b: unknown) => b as string,
        headers: { ...i.headers, "Content-Type": "application/wasm" },
        signal: i.signal,
      }),
    );
    return data;
  }

  /**
   * Activates a stored version (hot swap or roll back), optionally with a canary; answers once
   * the version serves. Without `approveCapabilities` a version that asks for more than the
   * active one is refused with 409 capabilities_changed.
   */
  async activate(
    name: string,
    version: string,
    o?: RequestOptions & { approveCapabilities?: boolean; canary?: CanaryRequest },
  ): Promise<ActivatedVersion> {
    const body: { version: string; canary?: CanaryRequest } = { version };
    if (o?.canary) body.canary = o.canary;
    const query = o?.approveCapabilities ? { approve: "capabilities" as const } : undefined;
    return (await unwrap("PUT", this.#api.PUT("/v1/connectors/{name}/active", { params: { path: { name }, query }, body, ...init(o) }))).data;
  }

  /** Deletes an inactive version (409 version_active for the active one). */
  async deleteVersion(name: string, version: string, o?: RequestOptions): Promise<void> {
    await unwrap("DELETE", this.#api.DELETE("/v1/connectors/{name}/versions/{version}", { params: { path: { name, version } }, ...init(o) }));
  }
}

/** `pb.connections`: connections hold the credentials; secrets are write-only. */
export class Connections {
  readonly #api: Api;
  /** @internal */
  constructor(api: Api) {
    this.#api = api;
  }

  /** Lists the connections (never a secret). */
  async list(o?: RequestOptions): Promise<Connection[]> {
    return (await unwrap("GET", this.#api.GET("/v1/connections", init(o)))).data.connections;
  }

  /** Gets a connection. */
  async get(id: string, o?: RequestOptions): Promise<Connection> {
    return (await unwrap("GET", this.#api.GET("/v1/connections/{id}", { params: { path: { id } }, ...init(o) }))).data;
  }

  /** Creates a connection; an oauth2 one answers `pending_consent` with its `consent_url`. */
  async create(connection: ConnectionCreate, o?: RequestOptions): Promise<Connection> {
    return (await unwrap("POST", this.#api.POST("/v1/connections", { body: connection, ...init(o) }))).data;
  }

  /** Changes a connection's params, connectors or hosts (PATCH). */
  async update(id: string, patch: ConnectionUpdate, o?: RequestOptions): Promise<Connection> {
    return (await unwrap("PATCH", this.#api.PATCH("/v1/connections/{id}", { params: { path: { id } }, body: patch, ...init(o) }))).data;
  }

  /** Rotates a connection's credentials: calls after the answer use the new secret. */
  async rotateCredentials(id: string, auth: AuthRequest, o?: RequestOptions & { secrets?: Record<string, string> }): Promise<Connection> {
    const body = o?.secrets ? { auth, secrets: o.secrets } : auth;
    return (await unwrap("PUT", this.#api.PUT("/v1/connections/{id}/credentials", { params: { path: { id } }, body, ...init(o) }))).data;
  }

  /** OAuth2: a new `consent_url` (for needs_reauth or a scope change). */
  async reauthorize(id: string, o?: RequestOptions & { scopes?: string[] }): Promise<Connection> {
    const body = o?.scopes ? { scopes: o.scopes } : {};
    return (await unwrap("POST", this.#api.POST("/v1/connections/{id}/reauthorize", { params: { path: { id } }, body, ...init(o) }))).data;
  }

  /** Deletes a connection (409 while subscriptions or MCP servers use it). */
  async delete(id: string, o?: RequestOptions): Promise<void> {
    await unwrap("DELETE", this.#api.DELETE("/v1/connections/{id}", { params: { path: { id } }, ...init(o) }));
  }
}

/** `pb.subscriptions`: subscriptions to triggers, delivered by push or by queue. */
export class Subscriptions {
  readonly #api: Api;
  /** @internal */
  constructor(api: Api) {
    this.#api = api;
  }

  /**
   * Subscribes to a trigger. For webhook delivery the answer holds `signing_secret` (shown
   * only here): keep it to verify the pushes with `pb.webhooks.verify`.
   */
  async create(subscription: SubscriptionCreate, o?: RequestOptions): Promise<Subscription> {
    return (await unwrap("POST", this.#api.POST("/v1/subscriptions", { body: subscription, ...init(o) }))).data;
  }

  /** Lists the caller's subscriptions. */
  async list(o?: RequestOptions): Promise<Subscription[]> {
    return (await unwrap("GET", this.#api.GET("/v1/subscriptions", init(o)))).data.subscriptions;
  }

  /** Gets a subscription: status, last poll, lag, counts, source. */
  async get(id: string, o?: RequestOptions): Promise<Subscription> {
    return (await unwrap("GET", this.#api.GET("/v1/subscriptions/{id}", { params: { path: { id } }, ...init(o) }))).data;
  }

  /** Changes a poll subscription's interval (0: the trigger's default). */
  async update(id: string, patch: { interval_s: number }, o?: RequestOptions): Promise<Subscription> {
    return (await unwrap("PATCH", this.#api.PATCH("/v1/subscriptions/{id}", { params: { path: { id } }, body: patch, ...init(o) }))).data;
  }

  /** Stops a subscription. */
  async delete(id: string, o?: RequestOptions): Promise<void> {
    await unwrap("DELETE", this.#api.DELETE("/v1/subscriptions/{id}", { params: { path: { id } }, ...init(o) }));
  }

  /** Re-delivers the stored events since a time; answers how many were queued again. */
  async replay(id: string, since: Date | string, o?: RequestOptions): Promise<number> {
    const body = { since: since instanceof Date ? since.toISOString() : since };
    return (await unwrap("POST", this.#api.POST("/v1/subscriptions/{id}/replay", { params: { path: { id } }, body, ...init(o) }))).data.replayed;
  }
}

/** The options of an events pull. */
export interface PullOptions {
  /** The most events one pull leases (1 to 1000; the server's default is 100). */
  max?: number;
  /** How long one pull waits while no event is ready, in seconds (0 to 60, default 20). */
  waitS?: number;
  /** Stops the iterator (or cancels one list). */
  signal?: AbortSignal;
}

/** `pb.events`: the events of queue subscriptions. */
export class Events {
  readonly #api: Api;
  /** @internal */
  constructor(api: Api) {
    this.#api = api;
  }

  /**
   * list leases one batch of a queue subscription's events (up to `max`, waiting up to
   * `waitS` seconds while none is ready; `[]` when none came). Leased events come back after
   * 30 s unless acknowledged with {@link Events.ack}.
   */
  async list<Data = unknown>(subscriptionId: string, o?: PullOptions & RequestOptions): Promise<DeliveredEvent<Data>[]> {
    const query: { max?: number; wait_s?: number } = {};
    if (o?.max !== undefined) query.max = o.max;
    const waitS = o?.waitS ?? 0;
    if (waitS) query.wait_s = waitS;
    const i = init(o);
    if (waitS) i.headers[WAIT_HEADER] = String(waitS * 1000);
    const { data } = await unwrap("GET", this.#api.GET("/v1/subscriptions/{id}/events", { params: { path: { id: subscriptionId }, query }, ...i }));
    return data.events as DeliveredEvent<Data>[];
  }

  /** ack acknowledges events by their delivered `id`; answers how many were newly acknowledged. */
  async ack(subscriptionId: string, ids: string[], o?: RequestOptions): Promise<number> {
    if (ids.length === 0) return 0;
    return (await unwrap("POST", this.#api.POST("/v1/subscriptions/{id}/events/ack", { params: { path: { id: subscriptionId } }, body: { ids }, ...init(o) }))).data.acked;
  }

  /**
   * pull consumes a queue subscription: it long-polls for events (`waitS`, default 20 s),
   * yields them one by one, and acknowledges each event once the loop body has finished with
   * it and asked for the next (one ack per batch, sent before the next pull and when the loop
   * stops). It never stops on an empty batch: it stops when `signal` aborts (then it ends
   * quietly), on `break`, or on an exception.
   *
   * The event the loop stops on (break, an exception, cancellation) is NOT acknowledged: it
   * comes back after its 30 s lease. Delivery is at-least-once, so make handling idempotent
   * with `event.id`.
   *
   * @example
   * const stop = new AbortController();
   * for await (const event of pb.events.pull(sub.id, { signal: stop.signal })) {
   *   await handle(event.data); // throws? this event is not acked, and comes back in 30 s
   *   if (done()) break;        // this event is not acked either: ack by finishing with it
   * }
   */
  async *pull<Data = unknown>(subscriptionId: string, o?: PullOptions): AsyncGenerator<DeliveredEvent<Data>, void, undefined> {
    const signal = o?.signal;
    const waitS = o?.waitS ?? DEFAULT_WAIT_S;
    let done: string[] = [];
    const flush = async () => {
      if (done.length === 0) return;
      const ids = done;
      done = [];
      await this.ack(subscriptionId, ids);
    };
    try {
      while (!signal?.aborted) {
        await flush();
        let batch: DeliveredEvent<Data>[];
        try {
          batch = await this.list<Data>(subscriptionId, { max: o?.max, waitS, signal });
        } catch (err) {
          if (signal?.aborted) return;
          throw err;
        }
        for (const event of batch) {
          yield event;
          done.push(event.id); // reached only when the caller asked for the next one
        }
      }
    } finally {
      await flush();
    }
  }
}

/** `pb.webhooks`: verification of push deliveries. */
export class Webhooks {
  /**
   * verify checks a push as Standard Webhooks says (webhook-id, webhook-timestamp within 5
   * minutes, a matching v1 HMAC-SHA256 signature with the subscription's `signing_secret`)
   * and returns the delivered event. Pass the raw body as received (a string or the bytes).
   *
   * @throws {WebhookVerificationError} naming what was wrong.
   */
  verify<Data = unknown>(headers: HeadersLike, body: RawBody, secret: string, options?: VerifyOptions): DeliveredEvent<Data> {
    return verifyWebhook(headers, body, secret, options) as DeliveredEvent<Data>;
  }
}

/** `pb.mcpServers`: MCP servers expose a connector's actions as tools. */
export class McpServers {
  readonly #api: Api;
  /** @internal */
  constructor(api: Api) {
    this.#api = api;
  }

  /** Creates an MCP server; the answer holds its `token` (shown only here). */
  async create(server: McpServerCreate, o?: RequestOptions): Promise<McpServer> {
    return (await unwrap("POST", this.#api.POST("/v1/mcp-servers", { body: server, ...init(o) }))).data;
  }

  /** Lists the MCP servers. */
  async list(o?: RequestOptions): Promise<McpServer[]> {
    return (await unwrap("GET", this.#api.GET("/v1/mcp-servers", init(o)))).data.mcp_servers;
  }

  /** Gets an MCP server. */
  async get(name: string, o?: RequestOptions): Promise<McpServer> {
    return (await unwrap("GET", this.#api.GET("/v1/mcp-servers/{name}", { params: { path: { name } }, ...init(o) }))).data;
  }

  /** Changes `enabled` or `tools`. */
  async update(name: string, patch: McpServerUpdate, o?: RequestOptions): Promise<McpServer> {
    return (await unwrap("PATCH", this.#api.PATCH("/v1/mcp-servers/{name}", { params: { path: { name } }, body: patch, ...init(o) }))).data;
  }

  /** Makes a new token; the old one stops working at once. */
  async rotateToken(name: string, o?: RequestOptions): Promise<string> {
    return (await unwrap("POST", this.#api.POST("/v1/mcp-servers/{name}/rotate-token", { params: { path: { name } }, ...init(o) }))).data.token;
  }

  /** Removes an MCP server. */
  async delete(name: string, o?: RequestOptions): Promise<void> {
    await unwrap("DELETE", this.#api.DELETE("/v1/mcp-servers/{name}", { params: { path: { name } }, ...init(o) }));
  }
}

/** `pb.keys`: API keys, each with a role and optional scopes. */
export class Keys {
  readonly #api: Api;
  /** @internal */
  constructor(api: Api) {
    this.#api = api;
  }

  /** Creates a key; the answer holds its `secret` (the bearer token, shown only here). */
  async create(key: KeyCreate, o?: RequestOptions): Promise<Key> {
    return (await unwrap("POST", this.#api.POST("/v1/keys", { body: key, ...init(o) }))).data;
  }

  /** Lists the keys (never a secret). */
  async list(o?: RequestOptions): Promise<Key[]> {
    return (await unwrap("GET", this.#api.GET("/v1/keys", init(o)))).data.keys;
  }

  /** Gets a key. */
  async get(id: string, o?: RequestOptions): Promise<Key> {
    return (await unwrap("GET", this.#api.GET("/v1/keys/{id}", { params: { path: { id } }, ...init(o) }))).data;
  }

  /** Revokes a key, effective on the next request. */
  async revoke(id: string, o?: RequestOptions): Promise<void> {
    await unwrap("DELETE", this.#api.DELETE("/v1/keys/{id}", { params: { path: { id } }, ...init(o) }));
  }
}

/** The filters of `pb.audit.list`. */
export interface AuditQuery {
  /** Entries at or after this time. */
  since?: Date | string;
  /** A key id. */
  actor?: string;
  /** The target (for example a connection id). */
  target?: string;
  /** Entries per page (the server's bound applies). */
  limit?: number;
}

/** One page of the audit log. */
export interface AuditPage {
  /** The entries, newest first. */
  entries: AuditEntry[];
  /** The cursor of the next (older) page; null on the last. */
  next: string | null;
}

/** `pb.audit`: the audit log. */
export class Audit {
  readonly #api: Api;
  /** @internal */
  constructor(api: Api) {
    this.#api = api;
  }

  /** page reads one page of the audit log (pass the previous page's `next` as `cursor`). */
  async page(q?: AuditQuery & { cursor?: string }, o?: RequestOptions): Promise<AuditPage> {
    const query: { since?: string; actor?: string; target?: string; limit?: number; cursor?: string } = {};
    if (q?.since) query.since = q.since instanceof Date ? q.since.toISOString() : q.since;
    if (q?.actor) query.actor = q.actor;
    if (q?.target) query.target = q.target;
    if (q?.limit) query.limit = q.limit;
    if (q?.cursor) query.cursor = q.cursor;
    const { data } = await unwrap("GET", this.#api.GET("/v1/audit", { params: { query }, ...init(o) }));
    return { entries: data.entries, next: data.next ?? null };
  }

  /**
   * list yields the audit entries, newest first, following the `next` cursors page by page
   * (`limit` is the page size).
   *
   * @example
   * for await (const e of pb.audit.list({ actor: "key_..." })) console.log(e.time, e.action, e.outcome);
   */
  async *list(q?: AuditQuery, o?: RequestOptions): AsyncGenerator<AuditEntry, void, undefined> {
    let cursor: string | undefined;
    do {
      const page = await this.page({ ...q, cursor }, o);
      yield* page.entries;
      cursor = page.next ?? undefined;
    } while (cursor);
  }
}

/** `pb.invocations`: the logs of action calls. */
export class Invocations {
  readonly #api: Api;
  /** @internal */
  constructor(api: Api) {
    this.#api = api;
  }

  /** Gets the log of a call by its correlation id (an invoke result's `correlationId`). */
  async get(correlationId: string, o?: RequestOptions): Promise<Invocation> {
    return (await unwrap("GET", this.#api.GET("/v1/invocations/{correlation_id}", { params: { path: { correlation_id: correlationId } }, ...init(o) })))
      .data;
  }
}
