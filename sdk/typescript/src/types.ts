import type { components, paths } from "./schema.js";

type Schemas = components["schemas"];

/** A connector as listed by `pb.connectors.list()`. */
export type ConnectorSummary = Schemas["ConnectorSummary"];
/** A connector with its active manifest and its versions (`pb.connectors.get`). */
export type Connector = Schemas["Connector"];
/** A stored version of a connector. */
export type ConnectorVersion = Schemas["Version"];
/** The active version after a swap (`pb.connectors.activate`). */
export type ActivatedVersion = Schemas["ActivatedVersion"];
/** A connector's manifest (docs/ABI.md section 3). */
export type Manifest = Schemas["Manifest"];
/** An action of a manifest, with its input and output JSON Schemas. */
export type Action = Schemas["Action"];
/** A canary of an activation: `{version, percent}`. */
export type CanaryRequest = NonNullable<Schemas["ActivateRequest"]["canary"]>;
/** The body of `POST /v1/connections`. Its `auth` and `secrets` are write-only. */
export type ConnectionCreate = Schemas["ConnectionRequest"];
/** The body of `PATCH /v1/connections/{id}`. */
export type ConnectionUpdate = Schemas["ConnectionPatch"];
/** A connection as the server shows it (never a secret). */
export type Connection = Schemas["Connection"];
/** Credentials, write-only; which fields apply depends on `type`. */
export type AuthRequest = Schemas["AuthRequest"];
/** The body of `POST /v1/subscriptions`. */
export type SubscriptionCreate = Schemas["SubscriptionRequest"];
/** A subscription; `signing_secret` is there only in the answer to its creation. */
export type Subscription = Schemas["Subscription"];
/** A subscription's delivery: `{type: "queue"}` (pull) or `{type: "webhook", url}` (push). */
export type Delivery = Schemas["Delivery"];
/** The body of `POST /v1/mcp-servers`. */
export type McpServerCreate = Schemas["MCPServerRequest"];
/** An MCP server; `token` is there only in the answers that made it. */
export type McpServer = Schemas["MCPServer"];
/** The body of `PATCH /v1/mcp-servers/{name}`. */
export type McpServerUpdate = NonNullable<paths["/v1/mcp-servers/{name}"]["patch"]["requestBody"]>["content"]["application/json"];
/** The body of `POST /v1/keys`. */
export type KeyCreate = Schemas["KeyRequest"];
/** An API key; `secret` is there only in the answer to its creation. */
export type Key = Schemas["Key"];
/** A key's role. */
export type Role = Schemas["Role"];
/** An entry of the audit log. */
export type AuditEntry = Schemas["AuditEntry"];
/** The log of one action call (`pb.invocations.get`). */
export type Invocation = Schemas["Invocation"];
/** A stable problem code of Plugboard's own errors (plugins may answer others). */
export type ProblemCode = Schemas["ProblemCode"];

/**
 * A delivered event (docs/ABI.md "Delivered events"): an item of a pull, the body of a push.
 * `id` is the same on every retry and replay: use it as the idempotency key. `Data` is the
 * type of the trigger's payload (unknown unless you say).
 */
export type DeliveredEvent<Data = unknown> = Omit<Schemas["Event"], "data"> & { data: Data };

/** Options every call takes. */
export interface RequestOptions {
  /** Sent as X-Correlation-ID (kept on every retry); the server makes one when absent. */
  correlationId?: string;
  /** Cancels the call. */
  signal?: AbortSignal;
  /** This call's timeout in ms, instead of the client's. */
  timeoutMs?: number;
}

/** The options of `pb.invoke`. */
export interface InvokeOptions<Input = unknown> extends RequestOptions {
  /** The connection to call with (required unless the connector's auth type is none). */
  connection?: string;
  /** The action's input, checked by the server against its input_schema. */
  input: Input;
  /** Pins a stored version of the connector; default the active one. */
  version?: string;
}

/** The result of `pb.invoke`. */
export interface InvokeResult<Output = unknown> {
  /** The action's output, per its output_schema. */
  output: Output;
  /** The connector that ran. */
  connector: string;
  /** The version that ran (a canary may answer with another than the active one). */
  version: string;
  /** The call's correlation id: `pb.invocations.get(correlationId)` shows its log. */
  correlationId: string;
}

/** The actions of a per-connector OpenAPI document's `paths`, by action name. */
export type ConnectorActions<Paths> = {
  [K in keyof Paths as K extends `/v1/connectors/${string}/actions/${infer A}` ? A : never]: Paths[K];
};

type PostOf<Item> = Item extends { post: infer Op } ? Op : never;
type RequestJson<Op> = Op extends { requestBody: { content: { "application/json": infer B } } }
  ? B
  : Op extends { requestBody?: { content: { "application/json": infer B } } }
    ? B
    : never;
type ResponseJson<Op> = Op extends { responses: { 200: { content: { "application/json": infer R } } } } ? R : never;

/**
 * The input type of an action of a per-connector document generated with openapi-typescript
 * from `GET /v1/connectors/{name}/openapi.json`.
 *
 * @example
 * import type { paths } from "./http-connector.js"; // npx openapi-typescript URL -o ...
 * type RequestInput = ActionInput<paths, "request">;
 */
export type ActionInput<Paths, A extends keyof ConnectorActions<Paths>> = RequestJson<PostOf<ConnectorActions<Paths>[A]>> extends {
  input: infer I;
}
  ? I
  : unknown;

/** The output type of an action of a per-connector document (see {@link ActionInput}). */
export type ActionOutput<Paths, A extends keyof ConnectorActions<Paths>> = ResponseJson<PostOf<ConnectorActions<Paths>[A]>> extends {
  output: infer O;
}
  ? O
  : unknown;
