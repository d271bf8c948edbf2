// read_and_send: the app reads the records of a service another app owns the connection to,
// and sends one. The app holds only its invoker key; the connection (PLUGBOARD_CONNECTION,
// made by the operator) holds the service's credentials, which the app never sees.
import { Plugboard } from "@plugboard/client";

const pb = new Plugboard({ url: process.env.PLUGBOARD_URL, token: process.env.PLUGBOARD_TOKEN });
const connection = process.env.PLUGBOARD_CONNECTION ?? "crm";

// Read: the http connector's request action calls the service with the connection's key.
const read = await pb.invoke("http", "request", {
  connection,
  input: { method: "GET", path: "/records" },
});
console.log(`read ${read.output.body.records.length} records (HTTP ${read.output.status})`);

// Send: POST a new record. Pass your own correlationId to find the call in the server's logs.
const record = { name: "Ada Lovelace", email: "ada@example.com" };
const sent = await pb.invoke("http", "request", {
  connection,
  input: { method: "POST", path: "/records", body: record },
});
console.log(`sent ${JSON.stringify(record)}: HTTP ${sent.output.status}, id ${sent.output.body.id}`);
console.log(`correlation id ${sent.correlationId}`);

// The call's log (connector, version, outbound requests) is there under that id.
const log = await pb.invocations.get(sent.correlationId);
console.log(`logged: ${log.connector} ${log.version} ${log.action}, ${log.outcome}, ${log.outbound.length} outbound call(s)`);
