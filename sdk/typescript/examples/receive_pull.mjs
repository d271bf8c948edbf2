// receive_pull: subscribe to new records with queue delivery and consume them with the events
// iterator, which acknowledges each event once the loop body is done with it.
// Stops after EVENTS events (default 3) or TIMEOUT_S seconds (default 60).
import { Plugboard } from "@plugboard/client";

const pb = new Plugboard({ url: process.env.PLUGBOARD_URL, token: process.env.PLUGBOARD_TOKEN });
const connection = process.env.PLUGBOARD_CONNECTION ?? "crm";
const want = Number(process.env.EVENTS ?? 3);

// Queue delivery: the server keeps the events until the app pulls and acknowledges them.
const sub = await pb.subscriptions.create({
  connector: "trig", trigger: "items", connection, delivery: { type: "queue" },
});
console.log(`subscribed ${sub.id}`);

// Aborting ends the loop at its next turn; the event being handled is acked first.
const stop = new AbortController();
const timer = setTimeout(() => stop.abort(), Number(process.env.TIMEOUT_S ?? 60) * 1000);

let got = 0;
for await (const event of pb.events.pull(sub.id, { signal: stop.signal })) {
  // event.id is the same on a redelivery: use it to make handling idempotent.
  console.log(`event ${event.id} ${event.type}: ${event.data.id} ${event.data.name}`);
  if (++got === want) stop.abort(); // a `break` here would leave this event unacknowledged
}
clearTimeout(timer);

await pb.subscriptions.delete(sub.id);
console.log(`received ${got} events`);
process.exitCode = got === want ? 0 : 1;
