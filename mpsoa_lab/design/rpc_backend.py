"""Celery's ``rpc://`` result backend, with two faults of a sync caller mended.

Notebook 07 measures both on a real broker (Celery 5.7, kombu 5.7):

* **A sync call made while the broker is down blocks until the broker is back.** Before
  publishing, the rpc backend declares the caller's reply queue with ``retry=True`` and no
  retry policy, and kombu then retries for ever (celery#6911, kombu#918; still open). Neither
  ``result.get(timeout=...)`` nor ``broker_transport_options`` bounds it: the caller never
  reaches ``get``. Here the declaration retries as ``result_backend_transport_options`` says
  (``max_retries``, ``interval_start``, ``interval_step``, ``interval_max``), by default
  twice within about half a second, and then raises ``OperationalError``.
* **A caller whose reply consumer lost its connection during an outage never gets a reply
  again.** Celery 5.7 reconnects the reply consumer after a broker restart (celery#6912), but
  when the reconnection itself fails (the broker is still down) it leaves the old, cancelled
  consumer in place: after the broker is back, every later ``get`` of the same app times out
  although the worker answers. Here a failed reconnection drops the consumer, so the next
  call starts a fresh one.

Use it on the sync app of an edge: ``app.conf.result_backend =
"mpsoa_lab.design.rpc_backend:RPCBackend"``. A worker may use it too (it sends results like ``rpc://``).

:class:`ReplyExchangeBackend` (``REPLY_EXCHANGE_BACKEND``) sends answers through a direct
exchange of their own, :data:`REPLY_EXCHANGE`, instead of RabbitMQ's default exchange: a worker
then needs *write* on that exchange only, which reaches the reply queues bound to it and no
other queue (notebook 13: *write* on ``amq.default`` reaches every queue of the vhost). The
deployment declares the exchange (:func:`declare_reply_exchange`); callers bind their reply
queues to it and never declare it (declaring takes *configure*, which is also the right to
delete). Caller and worker must both use it.
"""

from __future__ import annotations

import contextlib
from typing import Any

from celery._state import task_join_will_block
from celery.backends import rpc
from kombu.common import maybe_declare

__all__ = [
    "RPCBackend",
    "ResultConsumer",
    "DECLARE_RETRY_POLICY",
    "BACKEND",
    "ReplyExchangeBackend",
    "REPLY_EXCHANGE",
    "REPLY_EXCHANGE_BACKEND",
    "declare_reply_exchange",
]

#: What ``result_backend`` names to use this backend.
BACKEND = "mpsoa_lab.design.rpc_backend:RPCBackend"
#: The exchange :class:`ReplyExchangeBackend` sends answers through.
REPLY_EXCHANGE = "mpsoa.replies"
#: What ``result_backend`` names to use :class:`ReplyExchangeBackend`.
REPLY_EXCHANGE_BACKEND = "mpsoa_lab.design.rpc_backend:ReplyExchangeBackend"

#: How the reply queue's declaration retries when the broker cannot be reached, unless
#: ``result_backend_transport_options`` says otherwise: about half a second in all.
DECLARE_RETRY_POLICY: dict[str, float] = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.25,
    "interval_max": 0.5,
}


class ResultConsumer(rpc.ResultConsumer):
    """The reply consumer; a reconnection that fails leaves no stale consumer behind."""

    def _reconnect(self) -> None:
        try:
            super()._reconnect()
        except Exception:
            # Celery kept the cancelled consumer and a half-made connection; the next call
            # would drain a connection nobody consumes on. Start afresh next time instead.
            connection, self._consumer, self._connection = self._connection, None, None
            if connection is not None:
                with contextlib.suppress(Exception):
                    connection.collect()
            raise


class RPCBackend(rpc.RPCBackend):
    """``rpc://`` whose reply-queue declaration gives up, and whose consumer recovers."""

    ResultConsumer = ResultConsumer

    def declare_retry_policy(self) -> dict[str, Any]:
        options = self.app.conf.result_backend_transport_options or {}
        return {key: options.get(key, default) for key, default in DECLARE_RETRY_POLICY.items()}

    def on_task_call(self, producer: Any, task_id: str) -> None:
        # As Celery's, but bounded: Celery passes no retry policy, and kombu retries for ever.
        if not task_join_will_block():
            maybe_declare(self.binding(producer.channel), retry=True, **self.declare_retry_policy())


class ReplyExchangeBackend(RPCBackend):
    """Answers through :data:`REPLY_EXCHANGE` (direct), each reply queue bound to it by its
    own name; the exchange is the deployment's to declare (``no_declare``)."""

    def _create_exchange(self, name: Any, type: str = "direct", delivery_mode: int = 2) -> Any:
        return self.Exchange(REPLY_EXCHANGE, type="direct", durable=True, no_declare=True)


def declare_reply_exchange(connection: Any) -> None:
    """Declare :data:`REPLY_EXCHANGE` on ``connection``'s broker (idempotent)."""
    from kombu import Exchange

    Exchange(REPLY_EXCHANGE, type="direct", durable=True)(connection.default_channel).declare()
