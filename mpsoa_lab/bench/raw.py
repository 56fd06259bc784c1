"""The raw side of the sync round trip: plain kombu, RabbitMQ's direct reply-to.

:func:`serve_raw_sync` is the responder; it runs in a process of its own, started by
:func:`start_responder` as ``python -m mpsoa_lab.bench --serve-raw-sync URL NAME``.
:class:`RawSyncClient` is the caller: it publishes a request to the service's topic exchange
with ``reply_to=amq.rabbitmq.reply-to`` and reads the reply on the same channel.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from .workload import (
    CONCURRENCY,
    DIRECT_REPLY_TO,
    PREFETCH_MULTIPLIER,
    RAW_PREFIX,
    RAW_QUEUE,
    SYNC_TASK,
)

if TYPE_CHECKING:
    from kombu import Queue

    from ..plumbing.component import Program
    from ..running.lab import Lab

__all__ = [
    "RawSyncClient",
    "raw_queue",
    "serve_raw_sync",
    "start_responder",
    "wait_responder_ready",
]


def raw_queue() -> Queue:
    """The responder's queue, bound to the ``mpledger`` topic exchange under :data:`RAW_PREFIX`."""
    from kombu import Queue

    from ..design.topology import service_exchange

    # Durable like the service's own queue; auto-deleted when the responder stops.
    return Queue(
        RAW_QUEUE,
        service_exchange("mpledger"),
        routing_key=RAW_PREFIX + "mpledger.sync.#",
        durable=True,
        auto_delete=True,
    )


def serve_raw_sync(url: str, name: str) -> int:
    """The raw responder: consume requests, do the task's work, reply to ``reply_to``.

    It does what the Celery worker does for ``mpledger.sync.entry_count``: ack on receipt
    (Celery's default early ack), run the same function, write the same execution log row,
    publish the reply as a transient message with the request's correlation id.
    """
    from kombu import Connection, Consumer, Producer

    from ..design.services import mpledger

    functions = {SYNC_TASK: mpledger.entry_count.run}
    storage, host = mpledger.service.storage, f"{name}@{socket.gethostname()}"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    with Connection(url) as conn:
        channel = conn.channel()
        producer = Producer(channel, serializer="json")

        def on_request(body: dict, message) -> None:
            message.ack()
            props, task = (
                message.properties,
                message.delivery_info["routing_key"][len(RAW_PREFIX) :],
            )
            started, ok = time.time(), False
            try:
                reply = {"status": "SUCCESS", "result": functions[task](**body)}
                ok = True
            except Exception as exc:  # noqa: BLE001 - the caller gets the error, as with Celery
                reply = {"status": "FAILURE", "error": repr(exc)}
            finally:
                storage.record_execution(
                    props.get("correlation_id"), task, host, os.getpid(), started, time.time(), ok
                )
            producer.publish(
                reply,
                exchange="",
                routing_key=props["reply_to"],
                correlation_id=props.get("correlation_id"),
                delivery_mode=1,
            )

        Consumer(
            channel,
            [raw_queue()],
            callbacks=[on_request],
            accept=["json"],
            prefetch_count=CONCURRENCY * PREFETCH_MULTIPLIER,
        ).consume()
        while True:
            with contextlib.suppress(socket.timeout):
                conn.drain_events(timeout=2)


class RawSyncClient:
    """Request and reply with plain kombu: publish with ``reply_to=amq.rabbitmq.reply-to``."""

    def __init__(self, url: str):
        from kombu import Connection, Consumer, Producer, Queue

        from ..design.topology import service_exchange

        self.conn = Connection(url)
        channel = self.conn.channel()  # direct reply-to: consume and publish on one channel
        self.replies: dict[str, dict] = {}
        Consumer(
            channel,
            [Queue(DIRECT_REPLY_TO, no_ack=True)],
            callbacks=[self._on_reply],
            no_ack=True,
            auto_declare=False,
            accept=["json"],
        ).consume()
        self.producer = Producer(channel, exchange=service_exchange("mpledger"), serializer="json")

    def _on_reply(self, body: dict, message) -> None:
        self.replies[message.properties.get("correlation_id")] = body

    def publish(self, task: str, kwargs: dict, correlation_id: str) -> None:
        """Publish a transient request for ``task`` (to the responder, not to Celery)."""
        self.producer.publish(
            kwargs,
            routing_key=RAW_PREFIX + task,
            reply_to=DIRECT_REPLY_TO,
            correlation_id=correlation_id,
            delivery_mode=1,
        )

    def wait(self, correlation_id: str, timeout: float) -> dict:
        """The reply to ``correlation_id``; TimeoutError if none came, RuntimeError on failure."""
        deadline = time.monotonic() + timeout
        while correlation_id not in self.replies:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no reply to {correlation_id} within {timeout} s")
            with contextlib.suppress(socket.timeout):
                self.conn.drain_events(timeout=remaining)
        reply = self.replies.pop(correlation_id)
        if reply.get("status") != "SUCCESS":
            raise RuntimeError(f"raw responder failed: {reply}")
        return reply

    def close(self) -> None:
        """Release the connection."""
        self.conn.release()


def start_responder(lab: Lab, name: str) -> tuple[Program, Path]:
    """Start :func:`serve_raw_sync` in a process of its own, on the lab's component life cycle
    (so a crash of the benchmark does not leave it behind); return it and its log file."""
    from ..plumbing.component import Program

    env = {"MPSOA_LAB_HOME": str(lab.home), "MPSOA_SPACE": lab.space}
    if lab.external:
        env["MPSOA_SYNC_BROKER_URL"], env["MPSOA_ASYNC_BROKER_URL"] = (lab.sync.url, lab.async_.url)
    responder = Program(
        f"raw-responder-{name}",
        lab.home / "logs" / name,
        [sys.executable, "-m", "mpsoa_lab.bench", "--serve-raw-sync", lab.sync.url, name],
        env=env,
        owner=os.getpid(),
        mark=str(lab.home),
    )
    responder.start(wait=False)
    lab.record(responder)
    return responder, responder.stdout_log


def wait_responder_ready(
    responder: Program, log_file: Path, client: RawSyncClient, prefix: str, timeout: float = 60
) -> None:
    """Ready means it answered a request (its queue only exists once it consumes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not responder.is_running():
            raise RuntimeError("the raw responder exited:\n" + log_file.read_text()[-2000:])
        cid = prefix + uuid.uuid4().hex
        client.publish(SYNC_TASK, {"account": "bench-ping"}, cid)
        with contextlib.suppress(TimeoutError):
            client.wait(cid, 0.5)
            return
    raise TimeoutError(f"the raw responder did not answer within {timeout} s")
