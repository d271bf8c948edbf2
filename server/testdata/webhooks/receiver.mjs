// A push subscriber written only against the Standard Webhooks spec: it verifies every
// delivery with the official library (npm standardwebhooks) and reports each one on stdout as
// a JSON line. POST /secret sets the signing secret (the whsec_ value Plugboard returned).
import http from "node:http";
import { Webhook } from "standardwebhooks";

let secret = null;
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks).toString("utf8");
    if (req.url === "/secret") {
      secret = body.trim();
      res.writeHead(204).end();
      return;
    }
    try {
      const payload = new Webhook(secret).verify(body, req.headers);
      console.log(JSON.stringify({ ok: true, id: req.headers["webhook-id"], payload }));
      res.writeHead(204).end();
    } catch (err) {
      console.log(JSON.stringify({ ok: false, id: req.headers["webhook-id"] ?? null, error: String(err && err.message || err) }));
      res.writeHead(400).end();
    }
  });
});
server.listen(0, "127.0.0.1", () => {
  console.log(JSON.stringify({ listening: `http://127.0.0.1:${server.address().port}` }));
});
