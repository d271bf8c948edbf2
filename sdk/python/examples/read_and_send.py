"""read_and_send: the app reads the records and sends one through the operator's crm
connection, holding only an invoker key: the records service's API key stays in Plugboard.

Run: PLUGBOARD_URL=http://127.0.0.1:8080 PLUGBOARD_TOKEN=pbk_... python3 examples/read_and_send.py
"""

import os
import sys

from plugboard import Client, PlugboardError

connection = os.environ.get("PLUGBOARD_CONNECTION", "crm")

with Client(os.environ["PLUGBOARD_URL"], os.environ["PLUGBOARD_TOKEN"]) as client:
    try:
        # The http connector's request action sends a request to the connection's base URL,
        # with the connection's credentials added by Plugboard.
        read = client.invoke("http", "request", connection=connection, input={"method": "GET", "path": "/records"})
        print(f"read {len(read.output['body']['records'])} records")

        record = {"name": "Grace Hopper", "team": "compilers"}
        sent = client.invoke("http", "request", connection=connection, input={"method": "POST", "path": "/records", "body": record})
    except PlugboardError as err:
        # err.code is the stable string to branch on; str(err) has the detail and correlation id.
        sys.exit(f"plugboard: {err}")

    # The action's output is the upstream's answer: its status, headers and parsed body.
    print(f"sent {record} -> {sent.output['status']} {sent.output['body']['id']}")
    # The correlation id finds this call in the server's logs and its invocation log.
    print(f"correlation id {sent.correlation_id}")
