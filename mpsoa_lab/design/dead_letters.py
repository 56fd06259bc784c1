"""Where a message a worker cannot use goes: a dead-letter exchange beside the design's topology.

Celery 5, by default, drops every message its worker cannot use, each with one log line:

* a body it cannot decode (garbage bytes, a content type it does not accept, pickle included)
  is *acknowledged* (``Consumer.on_decode_error``): gone, even from a dead-letter exchange;
* a message without Celery's headers, with broken ones, or naming a task the worker does not
  have (an unknown name, another service's task) is *rejected* without requeue: gone, unless
  its queue has a dead-letter exchange.

The lab keeps every one of them where a person can look:

* :data:`DEAD_LETTER_EXCHANGE`, a topic exchange ``mpsoa.dead``, and per service a queue
  ``<service>.dead`` bound to it with ``<service>.#``: a message rejected from
  ``mpledger.sync`` keeps its routing key (``mpledger.sync.<task>``) and lands in
  ``mpledger.dead``, with RabbitMQ's ``x-death`` header naming the queue it came from and why;
* a *policy* (:func:`dead_letter_policy`), not a queue argument, gives the design's queues that
  exchange. Queue arguments are fixed at declaration: redeclaring an existing ``mpledger.sync``
  with an ``x-dead-letter-exchange`` argument it was not created with fails with
  ``PRECONDITION_FAILED``, on a running platform too. A policy applies to queues that already
  exist, at once, and is removed as easily: that is how an existing deployment migrates;
* :class:`KeepingConsumer` (Celery's ``worker_consumer`` setting) rejects an undecodable message
  instead of acknowledging it, so that it is dead-lettered like the others, and rejects a
  message whose handling raises an error Celery does not expect instead of dying of it.

Nothing changes for a message that is fine: a policy's dead-letter exchange only acts on a
message that is rejected without requeue or expires, which Celery never does to a task it runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from celery.utils.log import get_logger
from celery.worker.consumer import Consumer
from kombu import Exchange, Queue

from .naming import KINDS, SERVICES, queue_name

__all__ = [
    "DEAD_LETTER_EXCHANGE",
    "DEAD_LETTER_POLICY",
    "KEEPING_CONSUMER",
    "KeepingConsumer",
    "dead_letter_queue",
    "dead_letter_queues",
    "dead_letter_policy",
    "design_queue_pattern",
]

logger = get_logger(__name__)

#: The exchange every design queue dead-letters to (by policy): topic, durable.
DEAD_LETTER_EXCHANGE = "mpsoa.dead"
#: The name of the policy that gives the design's queues that exchange.
DEAD_LETTER_POLICY = "mpsoa-dead-letters"
#: The ``worker_consumer`` setting of a worker that keeps undecodable messages.
KEEPING_CONSUMER = "mpsoa_lab.design.dead_letters:KeepingConsumer"


def dead_letter_queue(service: str) -> Queue:
    """``<service>.dead``: every message rejected from one of the service's queues."""
    exchange = Exchange(DEAD_LETTER_EXCHANGE, type="topic", durable=True)
    return Queue(f"{service}.dead", exchange, routing_key=f"{service}.#", durable=True)


def dead_letter_queues(services: Iterable[str] = SERVICES) -> list[Queue]:
    """One dead-letter queue per service."""
    return [dead_letter_queue(service) for service in services]


def design_queue_pattern(services: Iterable[str] = SERVICES) -> str:
    """The regular expression of the design's queue names, and of nothing else (a policy's
    pattern): ``^(mplogin\\.sync|mplogin\\.async|...)$``."""
    names = [queue_name(s, k).replace(".", r"\.") for s in services for k in KINDS]
    return "^(" + "|".join(names) + ")$"


def dead_letter_policy(services: Iterable[str] = SERVICES) -> dict[str, Any]:
    """The policy (name, pattern, definition, apply-to) that dead-letters the design's queues
    to :data:`DEAD_LETTER_EXCHANGE`, as the management API takes it."""
    return {
        "name": DEAD_LETTER_POLICY,
        "pattern": design_queue_pattern(services),
        "definition": {"dead-letter-exchange": DEAD_LETTER_EXCHANGE},
        "apply_to": "queues",
    }


class KeepingConsumer(Consumer):
    """Celery's consumer, except that it keeps what it cannot use instead of losing it or dying
    of it: a message it cannot decode is rejected without requeue (dead-lettered, where its
    queue has a dead-letter exchange) instead of acknowledged, and so is a message whose
    handling raises an error Celery does not expect (Celery 5.7's worker stops for good on a
    task message without an ``id`` header: ``Unrecoverable error: KeyError('id')``, and the
    message, never acknowledged, goes back to the queue for the next worker to die of)."""

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        logger.error(
            "Rejected a message that cannot be decoded (%s: %s), content type %r: "
            "dead-lettered where its queue has a dead-letter exchange",
            type(exc).__name__,
            exc,
            message.content_type,
        )
        message.reject_log_error(logger, self.connection_errors, requeue=False)

    def create_task_handler(self, *args: Any, **kwargs: Any) -> Any:
        handle = super().create_task_handler(*args, **kwargs)
        # the broker's own errors go on to Celery, which recovers from them as it always does
        passed_on = tuple(self.connection_errors) + tuple(self.channel_errors)

        def on_task_received(message: Any) -> Any:
            try:
                return handle(message)
            except passed_on:
                raise
            except Exception as exc:  # noqa: BLE001 - kept instead of stopping the worker
                logger.error(
                    "Rejected a message the worker cannot handle (%s: %s), headers %r: "
                    "dead-lettered where its queue has a dead-letter exchange",
                    type(exc).__name__,
                    exc,
                    message.headers,
                )
                if not message.acknowledged:
                    message.reject_log_error(logger, self.connection_errors, requeue=False)
                return None

        return on_task_received
