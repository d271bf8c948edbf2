"""The events iterator's ack rule, against a local stub serving batches."""

from __future__ import annotations

import threading
import time
import unittest
import urllib.parse
from typing import Any, List, Optional

from plugboard import Client
from stub import Received, Stub


def ev(n: int) -> dict:
    return {"id": f"evt_{n}", "type": "trig.items", "source_event_id": str(n), "timestamp": "2026-12-03T00:00:00Z", "subscription": "sub_1", "data": {"n": n}}


class Queue:
    """A fake subscription queue: scripted batches, then empty long polls."""

    def __init__(self, batches: List[List[dict]], empty_wait: float = 0.05) -> None:
        self.batches = list(batches)
        self.empty_wait = empty_wait
        self.log: List[Any] = []  # ("pull", query) and ("ack", ids), in order
        self.lock = threading.Lock()

    def __call__(self, r: Received):
        u = urllib.parse.urlsplit(r.path)
        if r.method == "GET" and u.path == "/v1/subscriptions/sub_1/events":
            with self.lock:
                self.log.append(("pull", dict(urllib.parse.parse_qsl(u.query))))
                batch: Optional[List[dict]] = self.batches.pop(0) if self.batches else None
            if batch is None:
                time.sleep(self.empty_wait)
                batch = []
            return 200, {}, {"events": batch}
        if r.method == "POST" and u.path == "/v1/subscriptions/sub_1/events/ack":
            ids = r.json()["ids"]
            with self.lock:
                self.log.append(("ack", ids))
            return 200, {}, {"acked": len(ids)}
        return 404, {}, {"code": "not_found", "status": 404}

    def acks(self) -> List[List[str]]:
        with self.lock:
            return [x[1] for x in self.log if x[0] == "ack"]

    def kinds(self) -> List[str]:
        with self.lock:
            return [x[0] for x in self.log]


class EventIteratorTest(unittest.TestCase):
    def run_loop(self, q: Queue, body) -> List[str]:
        seen: List[str] = []
        with Stub(handler=q) as stub:
            with Client(stub.url, "pbk_test") as client:
                try:
                    with client.events.pull("sub_1", max=3, wait_s=1) as events:
                        for e in events:
                            seen.append(e["id"])
                            if body(e) == "break":
                                break
                except RuntimeError:
                    pass
        return seen

    def test_acks_per_batch_and_not_the_event_stopped_on(self) -> None:
        q = Queue([[ev(1), ev(2), ev(3)], [ev(4), ev(5)]])
        seen = self.run_loop(q, lambda e: "break" if e["id"] == "evt_5" else None)
        self.assertEqual(seen, ["evt_1", "evt_2", "evt_3", "evt_4", "evt_5"])
        self.assertEqual(q.acks(), [["evt_1", "evt_2", "evt_3"], ["evt_4"]], "evt_5, the one the loop stopped on, is not acked")
        self.assertEqual(q.kinds(), ["pull", "ack", "pull", "ack"], "one ack per batch, before the next pull")
        self.assertEqual(q.log[0][1], {"max": "3", "wait_s": "1"})

    def test_an_exception_in_the_loop_body_does_not_ack_that_event(self) -> None:
        q = Queue([[ev(1), ev(2), ev(3)]])

        def body(e: dict) -> None:
            if e["id"] == "evt_2":
                raise RuntimeError("handler failed")

        seen = self.run_loop(q, body)
        self.assertEqual(seen, ["evt_1", "evt_2"])
        self.assertEqual(q.acks(), [["evt_1"]])

    def test_break_on_the_first_event_acks_nothing(self) -> None:
        q = Queue([[ev(1), ev(2)]])
        self.run_loop(q, lambda e: "break")
        self.assertEqual(q.acks(), [])

    def test_empty_batches_do_not_stop_the_iterator(self) -> None:
        q = Queue([[], [], [ev(7)]])
        seen = self.run_loop(q, lambda e: "break")
        self.assertEqual(seen, ["evt_7"])
        self.assertEqual(q.kinds(), ["pull", "pull", "pull"])

    def test_a_dropped_iterator_acks_at_once(self) -> None:
        q = Queue([[ev(1), ev(2), ev(3)]])
        with Stub(handler=q) as stub:
            with Client(stub.url, "pbk_test") as client:
                for e in client.events.pull("sub_1"):  # no with: the iterator is dropped at break
                    if e["id"] == "evt_3":
                        break
                self.assertEqual(q.acks(), [["evt_1", "evt_2"]])

    def test_close_from_another_thread_cuts_the_long_poll(self) -> None:
        q = Queue([[ev(1)]], empty_wait=10)
        with Stub(handler=q) as stub:
            with Client(stub.url, "pbk_test") as client:
                events = client.events.pull("sub_1", wait_s=20)
                got = []
                done = threading.Event()

                def consume() -> None:
                    for e in events:
                        got.append(e["id"])
                    done.set()

                t = threading.Thread(target=consume)
                t.start()
                deadline = time.monotonic() + 5
                while q.kinds().count("pull") < 2 and time.monotonic() < deadline:
                    time.sleep(0.02)  # evt_1 handled, acked, and the second long poll started
                start = time.monotonic()
                events.close()
                self.assertTrue(done.wait(3), "the iterator stopped")
                self.assertLess(time.monotonic() - start, 3, "close() did not wait for the 10 s poll")
                t.join(1)
        self.assertEqual(got, ["evt_1"])
        self.assertEqual(q.acks(), [["evt_1"]])

    def test_close_while_the_caller_handles_an_event(self) -> None:
        q = Queue([[ev(1), ev(2), ev(3)]])
        with Stub(handler=q) as stub:
            with Client(stub.url, "pbk_test") as client:
                events = client.events.pull("sub_1")
                self.assertEqual(next(events)["id"], "evt_1")
                self.assertEqual(next(events)["id"], "evt_2")
                events.close()  # evt_2 is the one it stops on
                self.assertEqual(list(events), [])
                events.close()  # twice is fine
        self.assertEqual(q.acks(), [["evt_1"]])

    def test_stop_in_the_loop_body_acks_the_event_in_hand(self) -> None:
        q = Queue([[ev(1), ev(2), ev(3)]])
        seen = []
        with Stub(handler=q) as stub:
            with Client(stub.url, "pbk_test") as client:
                with client.events.pull("sub_1") as events:
                    for e in events:
                        seen.append(e["id"])
                        if e["id"] == "evt_2":
                            events.stop()
        self.assertEqual(seen, ["evt_1", "evt_2"], "the loop ends at its next turn")
        self.assertEqual(q.acks(), [["evt_1", "evt_2"]], "evt_2 was finished: acked; evt_3 was never handed out")

    def test_list_and_ack_one_batch(self) -> None:
        q = Queue([[ev(1), ev(2)]])
        with Stub(handler=q) as stub:
            with Client(stub.url, "pbk_test") as client:
                batch = client.events.list("sub_1", max=2)
                self.assertEqual([e["id"] for e in batch], ["evt_1", "evt_2"])
                self.assertEqual(client.events.ack("sub_1", [e["id"] for e in batch]), 2)
        self.assertEqual(q.log[0][1], {"max": "2", "wait_s": "0"})

    def test_arguments_are_checked(self) -> None:
        client = Client("http://127.0.0.1:1", "pbk_test")
        for kwargs in ({"max": 0}, {"max": 1001}, {"wait_s": 61}, {"wait_s": -1}):
            with self.subTest(**kwargs), self.assertRaises(ValueError):
                client.events.pull("sub_1", **kwargs)


if __name__ == "__main__":
    unittest.main()
