"""What the broker counted for one space: its own events, not the node's totals.

The management API's ``churn_rates`` (``/api/overview``) count connections, channels and queue
declarations for the whole node, refreshed every few seconds: a figure that includes whatever
another notebook did on the same node at the same time. RabbitMQ's event exchange plugin
(``rabbitmq_event_exchange``, shipped with the server since 3.6 and enabled on the lab's nodes)
publishes each of those events, as it happens, to the topic exchange ``amq.rabbitmq.event`` of
the node's default vhost, with the event's vhost in the message headers. A :class:`SpaceEvents`
binds a queue of its own there and counts only the events of one vhost::

    with SpaceEvents(lab.sync) as events:
        ...open connections, declare queues...
    events.counts()   # {"connection.created": 3, "channel.created": 3, "queue.created": 1}

:meth:`SpaceEvents.counts` first creates and deletes a marker queue in the vhost and waits for
its own ``queue.created`` event: every event the space caused before it has then arrived.

The plugin counts what it names: a *new* connection, channel or queue. A ``queue.declare`` of a
queue that exists already creates nothing and is not an event. Asked for :data:`DECLARED`, a
:class:`SpaceEvents` also counts, on the caller's side, the ``queue.declare-ok`` answers the
broker sent to this process's connections to the space: one round trip per declaration, a new
queue or not (every thread of this process, while the ``with`` block runs).
Events are a node's own: on a cluster each node publishes what happened on it.
"""

from __future__ import annotations

import contextlib
import uuid
from collections import Counter
from collections.abc import Iterable
from typing import Any

from ..plumbing.errors import EventExchangeMissing

__all__ = ["EVENT_EXCHANGE", "COUNTED_EVENTS", "DECLARED", "SpaceEvents"]

EVENT_EXCHANGE = "amq.rabbitmq.event"
#: The events a :class:`SpaceEvents` counts unless told otherwise.
COUNTED_EVENTS = ("connection.created", "channel.created", "queue.created")
#: Not an event: the ``queue.declare`` methods the broker answered on this process's channels
#: to the space, counted on the caller's side when asked for among the events.
DECLARED = "queue.declare-ok"


MARKER = "mpsoa.events.marker."


class SpaceEvents:
    """Count the broker's events of one vhost while the ``with`` block runs."""

    def __init__(
        self, broker: Any, events: Iterable[str] = COUNTED_EVENTS, *, timeout: float = 10.0
    ):
        self.vhost = getattr(broker, "vhost", None) or "/"
        self.url = broker.url
        # The event exchange lives in the node's default vhost; a broker given by URL is read
        # where its URL points (its own vhost is then the space, shared with whoever uses it).
        self.events_url = getattr(broker, "node_url", None)
        self.keys = tuple(events)
        self.timeout = timeout
        self._counts: Counter[str] = Counter()
        self._markers: set[str] = set()
        self._readings = 0  # each reading's own connection and channel, taken off the counts
        self._conn: Any = None
        self._unpatch: Any = None

    def __enter__(self) -> SpaceEvents:
        from kombu import Connection

        if DECLARED in self.keys:
            self._unpatch = self._count_declarations()

        if self.events_url:
            self._conn = Connection(self.events_url, connect_timeout=5)
        else:
            self._conn = Connection(self.url, connect_timeout=5).clone(virtual_host="/")
        try:
            channel = self._conn.channel()
            try:
                channel.exchange_declare(EVENT_EXCHANGE, "topic", passive=True)
            except Exception as exc:  # noqa: BLE001 - any refusal means: no events to read
                raise EventExchangeMissing(
                    f"the broker at {self._conn.as_uri()} has no exchange {EVENT_EXCHANGE!r} in "
                    f"its default vhost ({type(exc).__name__}: {exc}). Enable RabbitMQ's event "
                    "exchange plugin there: rabbitmq-plugins enable rabbitmq_event_exchange "
                    "(the lab's own nodes and docker-compose.yml's brokers have it on)."
                ) from exc
            channel = self._conn.channel()  # a refused passive declare closed the first one
            name = f"mpsoa.events.{uuid.uuid4().hex[:12]}"
            channel.queue_declare(name, exclusive=True, auto_delete=True)
            for key in {*self.keys, "queue.created"} - {DECLARED}:
                channel.queue_bind(name, EVENT_EXCHANGE, key)
            channel.basic_consume(name, callback=self._on_event, no_ack=True)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _count_declarations(self) -> Any:
        """Count the space's answered ``queue.declare`` methods; return what undoes it."""
        import inspect

        import amqp

        original = amqp.Channel.queue_declare
        signature = inspect.signature(original)

        def counting(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            call = signature.bind(*args, **kwargs)
            call.apply_defaults()
            channel, queue = call.arguments["self"], call.arguments["queue"]
            if (
                not call.arguments["nowait"]
                and getattr(channel.connection, "virtual_host", None) == self.vhost
                and not str(queue).startswith(MARKER)
            ):
                self._counts[DECLARED] += 1
            return result

        amqp.Channel.queue_declare = counting

        def undo() -> None:
            amqp.Channel.queue_declare = original

        return undo

    def _on_event(self, message: Any) -> None:
        headers = message.headers or {}
        if _text(headers.get("vhost")) != self.vhost:
            return
        key = message.delivery_info["routing_key"]
        if key == "queue.created" and _text(headers.get("name")) in self._markers:
            self._markers.discard(_text(headers.get("name")))
        elif key in self.keys:
            self._counts[key] += 1

    def _drain_until(self, done: Any) -> None:
        import socket
        import time

        # Events arrive only while the connection is drained: they wait in the queue meanwhile.
        deadline = time.monotonic() + self.timeout
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the broker's events for vhost {self.vhost!r} did not arrive within "
                    f"{self.timeout:.0f} s"
                )
            with contextlib.suppress(socket.timeout, TimeoutError):
                self._conn.drain_events(timeout=0.25)

    def counts(self) -> dict[str, int]:
        """Every counted event of the vhost so far, once the broker has published them all."""
        from kombu import Connection

        marker = f"{MARKER}{uuid.uuid4().hex[:12]}"
        self._markers.add(marker)
        with Connection(self.url, connect_timeout=5) as conn:
            channel = conn.channel()
            # exclusive: py-amqp declares a queue neither durable nor exclusive by default,
            # which RabbitMQ 4.3 refuses (and the lab's own 4.x nodes, as 4.3 does)
            channel.queue_declare(marker, exclusive=True, auto_delete=False)
            channel.queue_delete(marker)
        self._readings += 1  # the marker's connection and channel are the space's events too
        self._drain_until(lambda: marker not in self._markers)
        own = {"connection.created": self._readings, "channel.created": self._readings}
        return {key: self._counts[key] - own.get(key, 0) for key in self.keys}

    def __exit__(self, *exc: object) -> None:
        if self._unpatch is not None:
            self._unpatch()
            self._unpatch = None
        with contextlib.suppress(Exception):
            self._conn.release()


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
