"""receive_pull: subscribe to new records with queue delivery and consume them with the events
iterator, which acknowledges each event once the loop body is done with it.
Stops after EVENTS events (default 3) or TIMEOUT_S seconds (default 60).
"""

import os
import threading

from plugboard import Client

client = Client(os.environ["PLUGBOARD_URL"], os.environ["PLUGBOARD_TOKEN"])
connection = os.environ.get("PLUGBOARD_CONNECTION", "crm")
want = int(os.environ.get("EVENTS", "3"))

# Queue delivery: the server keeps the events until the app pulls and acknowledges them.
sub = client.subscriptions.create("trig", "items", connection=connection, delivery={"type": "queue"})
print(f"subscribed {sub['id']}", flush=True)

got = 0
with client.events.pull(sub["id"]) as events:
    # stop() from another thread ends the loop, cutting the long poll in progress.
    timer = threading.Timer(float(os.environ.get("TIMEOUT_S", "60")), events.stop)
    timer.start()
    for event in events:
        # event["id"] is the same on a redelivery: use it to make handling idempotent.
        print(f"event {event['id']} {event['type']}: {event['data']['id']} {event['data']['name']}", flush=True)
        got += 1
        if got == want:
            events.stop()  # ends the loop at its next turn, acking this event (a break would not)
    timer.cancel()

client.subscriptions.delete(sub["id"])
client.close()
print(f"received {got} events")
raise SystemExit(0 if got == want else 1)
