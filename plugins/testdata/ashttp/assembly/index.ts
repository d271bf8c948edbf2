// ashttp is a Plugboard test connector written in AssemblyScript with the Extism AssemblyScript
// PDK (@extism/as-pdk), against ABI.md alone: it proves a non-Go guest passes the upload checks
// and calls the host, and it is the connector of `make bench-http` (issue 13).
//
// One action, get: input {"path": "/..."} (optional, "/" when absent). It makes ONE
// plugboard_http GET to the connection's base_url + path and returns
// {"output": {"status": <status>, "body": <body text>}} (body_base64 instead of body when the
// upstream's body is not UTF-8). Host refusals become guest errors as ABI.md section 4 asks:
// timeout, network and deadline become unavailable (retryable), too_many_redirects and
// too_large upstream_error, every other refusal internal; the host's code is kept in
// details.host_code.
//
// Build: npm ci && npm run build -- --outFile ashttp.wasm (the Makefile builds it to
// bin/testplugins/ashttp.wasm).

import { Host, Memory } from "@extism/as-pdk";
import { error_set, length } from "@extism/as-pdk/lib/env";
import { member, raw, stringMember, quote } from "./json";

// plugboard_http is the host's capability-scoped HTTP client (ABI.md section 5): it takes the
// offset of a block holding the request JSON, frees that block, and returns the offset of a
// new block holding the reply, which belongs to the guest.
@external("extism:host/user", "plugboard_http")
declare function plugboard_http(request: u64): u64;

const MANIFEST =
  '{"abi":1,"name":"ashttp","version":"1.0.0","title":"AssemblyScript HTTP",' +
  '"description":"Test connector in AssemblyScript: one GET to the connection\'s base_url per call.",' +
  '"auth":{"types":["none"]},' +
  '"connection_params":{"type":"object","properties":{"base_url":{"type":"string","format":"uri",' +
  '"description":"Origin (and optional base path) of the upstream; request paths are appended to it."}},' +
  '"required":["base_url"],"additionalProperties":false},' +
  '"hosts":["{base_url}"],' +
  '"actions":[{"name":"get","title":"GET a path",' +
  '"description":"Sends one GET to base_url + path and returns the status and the body text.",' +
  '"input_schema":{"type":"object","properties":{"path":{"type":"string","pattern":"^/",' +
  '"description":"Path appended to base_url; / when absent."}},"additionalProperties":false},' +
  '"output_schema":{"type":"object","properties":{"status":{"type":"integer"},' +
  '"body":{"type":"string"},"body_base64":{"type":"string"}},"required":["status"]},' +
  '"annotations":{"read_only":true,"idempotent":true}}]}';

// ashttpAbort replaces AssemblyScript's default env.abort import (`--use abort=...` in
// asconfig.json), which the upload checks refuse. It records the message as the Extism error;
// the compiler emits a trap after it, so the host answers plugin_failed.
function ashttpAbort(message: string | null, fileName: string | null, line: u32, column: u32): void {
  const text =
    "abort: " + (message !== null ? message : "") + " at " + (fileName !== null ? fileName : "?") +
    ":" + line.toString() + ":" + column.toString();
  error_set(Memory.allocateString(text).offset);
}

// output writes s as the call's output. as-pdk's Host.outputString sizes the block by the
// string's UTF-16 length rather than its UTF-8 bytes, so it is not used.
function output(s: string): void {
  Host.output(Uint8Array.wrap(String.UTF8.encode(s)));
}

export function plugboard_describe(): i32 {
  output(MANIFEST);
  return 0;
}

export function plugboard_invoke(): i32 {
  output(invoke(Host.inputString()));
  return 0;
}

function guestError(code: string, message: string, retryable: bool, hostCode: string | null): string {
  let e = '{"error":{"code":' + quote(code) + ',"message":' + quote(message);
  if (retryable) e += ',"retryable":true';
  if (hostCode !== null) e += ',"details":{"host_code":' + quote(hostCode) + "}";
  return e + "}}";
}

// invoke runs one InvokeRequest and returns the InvokeResult document.
function invoke(req: string): string {
  const action = stringMember(req, 0, "action");
  if (action === null || action != "get") {
    return guestError("invalid_input", "unknown action " + (action !== null ? action : "(none)"), false, null);
  }
  let path = "/";
  const p = stringMember(req, member(req, 0, "input"), "path");
  if (p !== null && p.length > 0) path = p;
  const base = stringMember(req, member(req, member(req, 0, "connection"), "params"), "base_url");
  if (base === null || base.length == 0) {
    return guestError("invalid_input", "the connection has no params.base_url", false, null);
  }
  let url = base;
  while (url.endsWith("/")) url = url.substring(0, url.length - 1);
  url += path.startsWith("/") ? path : "/" + path;

  // The one host call of an action.
  const offset = plugboard_http(Memory.allocateString('{"method":"GET","url":' + quote(url) + "}").offset);
  const block = new Memory(offset, length(offset));
  const reply = block.toString();
  block.free();

  const err = member(reply, 0, "error");
  if (err >= 0 && reply.charCodeAt(err) == 0x7b) {
    const code = stringMember(reply, err, "code");
    const message = stringMember(reply, err, "message");
    const c = code !== null ? code : "";
    const m = message !== null && message.length > 0 ? message : c;
    if (c == "timeout" || c == "network" || c == "deadline") return guestError("unavailable", m, true, c);
    if (c == "too_many_redirects" || c == "too_large") return guestError("upstream_error", m, false, c);
    return guestError("internal", m, false, c);
  }
  const status = raw(reply, member(reply, 0, "status"));
  if (status === null || status.length == 0 || status.charCodeAt(0) < 0x30 || status.charCodeAt(0) > 0x39) {
    return guestError("internal", "plugboard_http answered no status: " + reply, false, null);
  }
  let out = '{"output":{"status":' + status;
  const body = raw(reply, member(reply, 0, "body"));
  if (body !== null) out += ',"body":' + body;
  const b64 = raw(reply, member(reply, 0, "body_base64"));
  if (b64 !== null) out += ',"body_base64":' + b64;
  return out + "}}";
}
