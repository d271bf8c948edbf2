// receive_push: subscribe to new records with webhook delivery to a receiver this program
// serves, verify each push with the subscription's signing secret, and print it.
// Stops after EVENTS events (default 3) or TIMEOUT_S seconds (default 60).
import { createServer } from "node:http";
import { Plugboard } from "@plugboard/client";

const pb = new Plugboard({ url: process.env.PLUGBOARD_URL, token: process.env.PLUGBOARD_TOKEN });
const connection = process.env.PLUGBOARD_CONNECTION ?? "crm";
const want = Number(process.env.EVENTS ?? 3);
const seen = new Set(); // delivery is at-least-once: a retried push has the same event id
let sub;

const receiver = createServer(async (req, res) => {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  try {
    // Verify the raw bytes as received (not re-serialized JSON) before trusting anything.
    const event = pb.webhooks.verify(req.headers, Buffer.concat(chunks), sub.signing_secret);
    res.writeHead(204).end(); // 2xx: delivered; anything else is retried later
    if (seen.has(event.id)) return;
    seen.add(event.id);
    console.log(`event ${event.id} ${event.type}: ${event.data.id} ${event.data.name}`);
    if (seen.size === want) receiver.close(() => pb.subscriptions.delete(sub.id).then(() => process.exit(0)));
  } catch (err) {
    console.log(`refused a push: ${err.message}`);
    res.writeHead(400).end();
  }
});
await new Promise((resolve) => receiver.listen(0, "127.0.0.1", resolve));

// The signing secret is shown only in this answer: keep it.
sub = await pb.subscriptions.create({
  connector: "trig", trigger: "items", connection,
  delivery: { type: "webhook", url: `http://127.0.0.1:${receiver.address().port}/hooks/records` },
});
console.log(`subscribed ${sub.id}`);
setTimeout(() => { console.log(`timed out after ${seen.size} events`); process.exit(1); }, Number(process.env.TIMEOUT_S ?? 60) * 1000).unref();
