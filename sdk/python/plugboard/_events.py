"""The events iterator: the pull, lease and ack loop of a queue subscription."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Iterator, List, Optional

from ._models import Event
from ._transport import Abort

if TYPE_CHECKING:
    from ._client import Client

#: Seconds added to a long poll's wait_s for the request's timeout.
POLL_SLACK_S = 10.0


class _State:
    """What the iterator and its generator share. The generator holds this, not the
    iterator, so that dropping the iterator drops the generator at once (no reference cycle)
    and its ``finally`` acknowledges what the loop finished."""

    def __init__(self) -> None:
        self.closed = False
        self.abort: Optional[Abort] = None
        self.lock = threading.Lock()


def _run(client: "Client", subscription_id: str, max: int, wait_s: int, state: _State) -> Iterator[Event]:
    done: List[str] = []  # ids of events the caller's loop finished, not yet acknowledged
    try:
        while not state.closed:
            if done:  # the batch is finished: one ack before the next pull
                ids, done = done, []
                _ack(client, subscription_id, ids)
            abort = Abort()
            state.abort = abort
            if state.closed:
                return
            try:
                batch = _pull(client, subscription_id, max, wait_s, abort)
            except (ConnectionError, TimeoutError):
                if state.closed:  # close() cut the long poll
                    return
                raise
            finally:
                state.abort = None
            for event in batch:
                yield event
                # Reached only when the caller asks for the next event: this one is done.
                done.append(event["id"])
                if state.closed:
                    return
    finally:
        # The loop stopped (break, exception, close, end): acknowledge the events it finished;
        # the one it stopped on, and the rest of the batch, come back after their lease.
        if done:
            _ack(client, subscription_id, done)


def _pull(client: "Client", subscription_id: str, max: int, wait_s: int, abort: Optional[Abort]) -> List[Event]:
    ans = client._request(
        "GET",
        ("subscriptions", subscription_id, "events"),
        query={"max": max, "wait_s": wait_s},
        timeout=client._timeout + wait_s,
        abort=abort,
    )
    return list(ans.json().get("events") or [])


def _ack(client: "Client", subscription_id: str, ids: List[str]) -> int:
    ans = client._request("POST", ("subscriptions", subscription_id, "events", "ack"), json_body={"ids": list(ids)})
    return int(ans.json().get("acked", 0))


class EventIterator:
    """EventIterator yields the events of a queue subscription one by one, forever: it
    long-polls ``GET /v1/subscriptions/{id}/events`` (``wait_s`` seconds at a time; an empty
    batch just polls again) and acknowledges each event once your loop body has finished with
    it and asked for the next one. The acks of a batch go in one
    ``POST /v1/subscriptions/{id}/events/ack`` before the next pull, and when the loop stops.

    The event the loop stops on (``break``, an exception, :meth:`close`) is **not**
    acknowledged: it comes back after its 30 s lease, as do the events of its batch the loop
    did not reach. Delivery is at-least-once, so make the handling idempotent (the event's
    ``id`` is the same on every redelivery)::

        with client.events.pull(subscription["id"]) as events:
            for event in events:
                handle(event)            # raises? the event is not acked, it comes back
                if event["data"]["id"] == last:
                    break                # this event is not acked either: it comes back

    To stop after the event in hand, acknowledging it, call :meth:`stop` in the loop body
    (the loop ends at its next turn). :meth:`close` (also from another thread, or by leaving a
    ``with`` block) stops at once; both cut a long poll in progress, so a timer thread can
    end a loop that waits. An iterator dropped without ``close()`` acknowledges when it is
    garbage-collected (at once in CPython); prefer ``with``.
    """

    def __init__(self, client: "Client", subscription_id: str, *, max: int = 100, wait_s: int = 20) -> None:
        if not subscription_id:
            raise ValueError("events.pull: subscription_id is empty; pass the id of a queue subscription (sub_...)")
        if not 1 <= max <= 1000:
            raise ValueError("events.pull: max must be between 1 and 1000")
        if not 0 <= wait_s <= 60:
            raise ValueError("events.pull: wait_s must be between 0 and 60 seconds")
        self.subscription_id = subscription_id
        """The subscription pulled."""
        self._state = _State()
        self._gen = _run(client, subscription_id, max, wait_s, self._state)
        self._lock = threading.Lock()

    def __iter__(self) -> "EventIterator":
        return self

    def __next__(self) -> Event:
        with self._lock:
            return next(self._gen)

    def __enter__(self) -> "EventIterator":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def stop(self) -> None:
        """Ends the iteration at the loop's next turn: the event being handled is acknowledged
        with the others when the loop asks for the next one, and a long poll in progress is cut.
        Call it in the loop body to stop after this event (a ``break`` would leave it
        unacknowledged), or from another thread (a timer) to end a loop that waits."""
        self._state.closed = True
        abort = self._state.abort
        if abort is not None:
            abort.fire()

    def close(self) -> None:
        """Stops the iteration now: acknowledges the events the loop finished, **not** the one
        it is on (it comes back after its lease), and cuts a long poll in progress. Leaving a
        ``with`` block calls it. Safe to call from another thread and more than once."""
        self.stop()
        # When another thread is inside __next__ it sees `closed` and stops by itself;
        # otherwise close the generator here, which runs its finally (the acks).
        if self._lock.acquire(blocking=False):
            try:
                self._gen.close()
            finally:
                self._lock.release()


__all__ = ["EventIterator"]
