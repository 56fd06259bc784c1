"""Counted traffic for a split: one publisher per side and queue, every message by its id.

A :class:`CountingPublisher` publishes persistent messages at a steady rate through one node
(its *side*), with publisher confirms kept by delivery tag, not by waiting for each: a confirm
that comes late is still counted for the message it confirms, and a message is *confirmed*
only when the broker acked it. It never stops on its own when the broker misbehaves; it
records what it was told:

* ``closed``: the connection was closed or broke (the client was told);
* ``refused``: a new connection was refused, or timed out;
* ``nacked``: the broker answered a publish with a nack;
* messages still waiting for a confirm when the connection ended or the run stopped are
  *unconfirmed*: a client that only waits is not told anything.

:func:`drain` reads every message a queue holds after the run, by id, through one node.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import amqp

from ...plumbing.errors import LabError

__all__ = ["CountingPublisher", "Event", "QueueUnreadable", "drain", "connect"]


class QueueUnreadable(LabError):
    """A queue that did not answer a read within the time given (its process stuck or gone
    after a partition)."""


@dataclass(frozen=True)
class Event:
    """Something a client was told, at wall-clock time ``t``."""

    t: float
    kind: str  # closed, refused, nacked, reconnected
    detail: str = ""


def connect(url_host: str, port: int, vhost: str = "/", timeout: float = 2.0) -> amqp.Connection:
    """A py-amqp connection to one node (guest), with a short connect time-out and heartbeats
    off (the split is detected by what the broker does, not by the client's own heartbeat)."""
    conn = amqp.Connection(
        f"{url_host}:{port}",
        userid="guest",
        password="guest",
        virtual_host=vhost,
        connect_timeout=timeout,
        read_timeout=timeout,
        write_timeout=timeout,
        heartbeat=0,
    )
    conn.connect()
    return conn


@dataclass
class CountingPublisher:
    """Publishes ``<name>-<n>`` to ``queue`` through ``host:port`` at ``rate`` per second."""

    name: str
    host: str
    port: int
    queue: str
    rate: float = 25.0
    vhost: str = "/"
    sent: dict[str, float] = field(default_factory=dict)  # id -> when it was published
    confirmed: dict[str, float] = field(default_factory=dict)  # id -> when its ack came
    nacked: dict[str, float] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._pending: dict[int, str] = {}  # delivery tag -> id, on the current channel
        self._seq = 0

    # -- control -----------------------------------------------------------------------------
    def start(self) -> CountingPublisher:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    # -- what it saw -------------------------------------------------------------------------
    @property
    def unconfirmed(self) -> list[str]:
        """Ids published and neither acked nor nacked."""
        return [i for i in self.sent if i not in self.confirmed and i not in self.nacked]

    def told(self, since: float, until: float) -> list[Event]:
        """What the client was told between two wall-clock times."""
        return [e for e in self.events if since <= e.t <= until and e.kind != "reconnected"]

    def confirmed_between(self, since: float, until: float) -> list[str]:
        """Ids *published* in the window whose publish the broker confirmed (at any time)."""
        return [i for i, t in self.sent.items() if since <= t < until and i in self.confirmed]

    # -- the thread --------------------------------------------------------------------------
    def _on_ack(self, tag: int, multiple: bool, into: dict[str, float]) -> None:
        now = time.time()
        tags = [t for t in self._pending if t <= tag] if multiple else [tag]
        for t in tags:
            msg_id = self._pending.pop(t, None)
            if msg_id is not None:
                into[msg_id] = now

    def _channel(self) -> tuple[amqp.Connection, Any]:
        conn = connect(self.host, self.port, self.vhost)
        channel = conn.channel()
        channel.confirm_select()
        channel.events["basic_ack"].add(
            lambda tag, multiple: self._on_ack(tag, multiple, self.confirmed)
        )
        channel.events["basic_nack"].add(lambda tag, multiple: self._nack(tag, multiple))
        self._pending.clear()
        return conn, channel

    def _nack(self, tag: int, multiple: bool) -> None:
        self._on_ack(tag, multiple, self.nacked)
        self.events.append(Event(time.time(), "nacked", f"delivery tag {tag}"))

    def _run(self) -> None:
        conn = None
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            if conn is None:
                try:
                    conn, channel = self._channel()
                    if self.sent:
                        self.events.append(Event(time.time(), "reconnected"))
                    tag = 0
                except (OSError, amqp.exceptions.AMQPError) as exc:
                    self.events.append(Event(time.time(), "refused", _short(exc)))
                    self._stop.wait(0.5)
                    continue
            try:
                now = time.monotonic()
                if now >= next_at:
                    self._seq += 1
                    msg_id = f"{self.name}-{self._seq}"
                    tag += 1
                    self._pending[tag] = msg_id
                    self.sent[msg_id] = time.time()
                    channel.basic_publish(
                        amqp.Message(msg_id, delivery_mode=2, message_id=msg_id),
                        exchange="",
                        routing_key=self.queue,
                    )
                    next_at = max(next_at + interval, now - 1.0)
                try:
                    conn.drain_events(timeout=max(0.001, next_at - time.monotonic()))
                except TimeoutError:
                    pass
            except (OSError, amqp.exceptions.AMQPError) as exc:
                self.events.append(Event(time.time(), "closed", _short(exc)))
                _close(conn)
                conn = None
        if conn is not None:
            deadline = time.monotonic() + 1.0  # a last moment for confirms already on the way
            while self._pending and time.monotonic() < deadline:
                try:
                    conn.drain_events(timeout=0.1)
                except (TimeoutError, OSError, amqp.exceptions.AMQPError):
                    break
            _close(conn)


def _close(conn: amqp.Connection | None) -> None:
    if conn is None:
        return
    try:
        conn.collect()  # drop the socket without the closing handshake a dead peer never answers
    except Exception:  # noqa: BLE001 - already broken
        pass


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:120]}" if text else type(exc).__name__


def drain(host: str, port: int, queue: str, vhost: str = "/", timeout: float = 60.0) -> list[str]:
    """Every message id ``queue`` holds, read (and acked) through one node until it is empty.

    A node that does not serve yet (restarting after a partition) is tried again every second
    until ``timeout``; a read that breaks half-way starts again (what was read and acked is
    kept: it left the queue)."""
    ids: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = connect(host, port, vhost, timeout=5.0)
            try:
                channel = conn.channel()
                while (msg := channel.basic_get(queue, no_ack=False)) is not None:
                    ids.append(msg.body.decode() if isinstance(msg.body, bytes) else msg.body)
                    channel.basic_ack(msg.delivery_tag)
                return ids
            finally:
                _close(conn)
        except (OSError, amqp.exceptions.AMQPError) as exc:
            if time.monotonic() >= deadline:
                raise QueueUnreadable(
                    f"Queue {queue} could not be read through {host}:{port} within "
                    f"{timeout:.0f} s (last: {_short(exc)}); {len(ids)} messages read before."
                ) from None
            time.sleep(1.0)
