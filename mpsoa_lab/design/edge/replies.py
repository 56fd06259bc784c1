"""One reply queue and one consumer for every sync call an edge makes, awaited without a thread.

Celery's ``rpc://`` backend gives each *thread* of a caller its own reply queue and its own
consumer (``app.thread_oid``), and ``result.get()`` blocks that thread until the reply is
drained. In a web server that means one thread held per request in flight. Here instead:

* the edge declares **one** exclusive, auto-deleted queue (``edge.replies.<uuid>``) and consumes
  it from one background thread;
* a sync call is published with ``reply_to`` set to that queue and its task id as
  ``correlation_id`` (what a worker's ``rpc://`` backend replies to), after an
  :class:`asyncio.Future` was registered under that id;
* the consumer thread hands each reply to the event loop (``call_soon_threadsafe``), which
  resolves the future; the request coroutine awaits it with a timeout, holding no thread.

A reply whose request already gave up (timed out) finds no future: it is counted in
:attr:`SharedReplies.late` and dropped, so it can never answer another request. While the
consumer is not connected (the broker is down, or reconnecting), :attr:`SharedReplies.ready` is
false and the edge answers 503 instead of publishing calls whose replies nobody would take.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from typing import Any

from celery import states

__all__ = ["SharedReplies", "REPLY_QUEUE_PREFIX"]

logger = logging.getLogger(__name__)

#: Name prefix of an edge's shared reply queue.
REPLY_QUEUE_PREFIX = "edge.replies."


class SharedReplies:
    """The edge's reply queue on ``url``, consumed by one thread, replies resolved on ``loop``."""

    def __init__(self, url: str, connect_timeout: float = 2.0):
        self.url = url
        self.connect_timeout = connect_timeout
        self.queue_name = f"{REPLY_QUEUE_PREFIX}{uuid.uuid4()}"
        self.late = 0  #: replies that came after their request gave up
        self._futures: dict[str, asyncio.Future] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def ready(self) -> bool:
        """True while the reply queue exists and is consumed."""
        return self._ready.is_set()

    def start(self, loop: asyncio.AbstractEventLoop, wait: float = 0.0) -> None:
        """Start the consumer thread (once); wait up to ``wait`` seconds for it to be ready."""
        self._loop = loop
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="edge-replies", daemon=True)
            self._thread.start()
        self._ready.wait(wait)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def expect(self, task_id: str) -> asyncio.Future:
        """A future for ``task_id``'s reply (call on the event loop, before publishing)."""
        assert self._loop is not None, "start() the consumer first"
        future = self._loop.create_future()
        self._futures[task_id] = future
        return future

    def forget(self, task_id: str) -> None:
        """The request is done (answered or gave up): a reply from now on is late."""
        self._futures.pop(task_id, None)

    def in_flight(self) -> int:
        return len(self._futures)

    # -- the consumer thread ---------------------------------------------------------------

    def _run(self) -> None:
        from kombu import Connection, Consumer, Queue

        queue = Queue(self.queue_name, exclusive=True, auto_delete=True, durable=False)
        while not self._stop.is_set():
            try:
                with Connection(self.url, connect_timeout=self.connect_timeout) as conn:
                    conn.ensure_connection(max_retries=1, timeout=self.connect_timeout)
                    consumer = Consumer(
                        conn, [queue], callbacks=[self._on_reply], no_ack=True, accept=["json"]
                    )
                    with consumer:
                        self._ready.set()
                        while not self._stop.is_set():
                            try:
                                conn.drain_events(timeout=0.5)
                            except TimeoutError:
                                conn.heartbeat_check()
            except Exception as exc:  # noqa: BLE001 - the broker went away: try again
                logger.warning("edge reply consumer lost its broker (%s); reconnecting", exc)
            finally:
                self._ready.clear()
            self._stop.wait(0.5)

    def _on_reply(self, body: dict[str, Any], message: Any) -> None:
        task_id = message.properties.get("correlation_id") or body.get("task_id")
        if body.get("status") in states.READY_STATES and self._loop is not None:
            self._loop.call_soon_threadsafe(self._resolve, task_id, body)

    def _resolve(self, task_id: str, meta: dict[str, Any]) -> None:
        future = self._futures.pop(task_id, None)
        if future is None or future.done():
            self.late += 1
            return
        future.set_result(meta)
