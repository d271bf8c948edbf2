// client.mjs drives a Plugboard MCP server with the official MCP TypeScript SDK client over
// Streamable HTTP, for server/mcp_node_test.go. It is not an assertion script: it prints one
// JSON document with what the server answered, and the Go test checks it.
//
// Usage: node client.mjs URL TOKEN STEPS_JSON
//   STEPS_JSON is an array of {"op": "list"} or {"op": "call", "name": "...", "arguments": {...}}.
// Output: {"server": {...}, "capabilities": {...}, "steps": [{"ok": true, "result": ...} |
//          {"ok": false, "error": {"code": ..., "message": ...}}]}
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, token, stepsJSON] = process.argv.slice(2);
const steps = JSON.parse(stepsJSON ?? "[]");

const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${token}` } },
});
const client = new Client({ name: "plugboard-e2e", version: "1.0.0" });
const out = { steps: [] };
try {
  await client.connect(transport);
  out.server = client.getServerVersion();
  out.capabilities = client.getServerCapabilities();
  for (const step of steps) {
    try {
      if (step.op === "list") {
        out.steps.push({ ok: true, result: await client.listTools() });
      } else if (step.op === "call") {
        out.steps.push({ ok: true, result: await client.callTool({ name: step.name, arguments: step.arguments ?? {} }) });
      } else {
        throw new Error(`unknown op ${step.op}`);
      }
    } catch (e) {
      out.steps.push({ ok: false, error: { code: e.code ?? null, message: String(e.message ?? e) } });
    }
  }
  await client.close();
} catch (e) {
  out.connect_error = { code: e.code ?? null, message: String(e.message ?? e) };
}
process.stdout.write(JSON.stringify(out) + "\n");
