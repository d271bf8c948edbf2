"""receive_push: subscribe to new records with webhook delivery to a receiver this script
serves, verify each push with the subscription's signing secret, and print it.
Stops after EVENTS events (default 3) or TIMEOUT_S seconds (default 60).
"""

import os
import queue
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread

from plugboard import Client, WebhookVerificationError, webhooks

client = Client(os.environ["PLUGBOARD_URL"], os.environ["PLUGBOARD_TOKEN"])
want, pushed = int(os.environ.get("EVENTS", "3")), queue.Queue()


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))  # raw, as signed
        try:
            pushed.put(webhooks.verify(self.headers, body, sub["signing_secret"]))
            self.send_response(204)
        except WebhookVerificationError as err:  # not from this subscription: refuse it
            print(f"refused a push: {err}", flush=True)
            self.send_response(400)
        self.end_headers()


server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
Thread(target=server.serve_forever, daemon=True).start()
url = f"http://127.0.0.1:{server.server_address[1]}/hooks/records"
# The answer's signing_secret is shown only here: keep it with the receiver.
sub = client.subscriptions.create("trig", "items", connection=os.environ.get("PLUGBOARD_CONNECTION", "crm"),
                                  delivery={"type": "webhook", "url": url})
print(f"subscribed {sub['id']} -> {url}", flush=True)

seen = set()  # delivery is at-least-once: a retried push has the same id
deadline = time.monotonic() + float(os.environ.get("TIMEOUT_S", "60"))
try:
    while len(seen) < want:
        event = pushed.get(timeout=max(0.0, deadline - time.monotonic()))
        if event["id"] not in seen:
            seen.add(event["id"])
            print(f"event {event['id']} {event['type']}: {event['data']['id']} {event['data']['name']}", flush=True)
except queue.Empty:
    pass
client.subscriptions.delete(sub["id"])
print(f"received {len(seen)} events")
raise SystemExit(0 if len(seen) == want else 1)
