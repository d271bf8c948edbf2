// A local HTTP stub for the unit tests: each test gives a handler and reads what was received.
import { createServer } from "node:http";

/**
 * startStub serves handler(req, body, res) on 127.0.0.1 and records every request as
 * {method, url, headers, body}. Call close() when done.
 */
export async function startStub(handler) {
  const requests = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      requests.push({ method: req.method, url: req.url, headers: req.headers, body });
      Promise.resolve(handler(req, body, res, requests.length)).catch((err) => {
        res.statusCode = 500;
        res.end(String(err));
      });
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }),
  };
}

/** json answers a JSON document with a status and extra headers. */
export function json(res, status, doc, headers = {}) {
  res.writeHead(status, { "Content-Type": status >= 400 ? "application/problem+json" : "application/json", ...headers });
  res.end(JSON.stringify(doc));
}

/** problem is a problem document as the server writes one. */
export function problem(status, code, detail, extra = {}) {
  return { type: "about:blank", title: "T", status, code, detail, source: "plugboard", correlation_id: "c_test", ...extra };
}
