"""The design's topology as kombu entities: a topic exchange per service and two queues on it.

=====================  ==============  ====================
Exchange (topic)       Queue           Binding key
=====================  ==============  ====================
``mplogin``            ``mplogin.sync``   ``mplogin.sync.#``
``mplogin``            ``mplogin.async``  ``mplogin.async.#``
=====================  ==============  ====================

and the same for ``mpwallet`` and ``mpledger``. Exchanges and queues are durable, so the
topology itself survives a broker restart; whether the *messages* in them do is decided by
each message's delivery mode (see :mod:`mpsoa_lab.design.apps`).
"""

from __future__ import annotations

from collections.abc import Iterable

from kombu import Exchange, Queue

from .naming import KINDS, SERVICES, queue_name

__all__ = ["service_exchange", "service_queues", "platform_queues", "binding_key", "declare"]


def binding_key(service: str, kind: str) -> str:
    """``mplogin``, ``sync`` -> ``mplogin.sync.#``: every task of that kind of that service."""
    return f"{queue_name(service, kind)}.#"


def service_exchange(service: str) -> Exchange:
    """The service's own topic exchange, named after the service."""
    return Exchange(service, type="topic", durable=True)


def service_queues(service: str, kinds: Iterable[str] = KINDS) -> list[Queue]:
    """The service's queues, each bound to the service exchange with its binding key."""
    exchange = service_exchange(service)
    return [
        Queue(
            queue_name(service, kind),
            exchange,
            routing_key=binding_key(service, kind),
            durable=True,
        )
        for kind in kinds
    ]


def platform_queues(
    kinds: Iterable[str] = KINDS, services: Iterable[str] = SERVICES
) -> list[Queue]:
    """Every queue of the platform, or only those of the given kinds."""
    kinds = tuple(kinds)
    return [queue for service in services for queue in service_queues(service, kinds)]


def declare(connection, queues: Iterable[Queue]) -> list[str]:
    """Declare ``queues`` (and their exchanges and bindings) on ``connection``; return their names."""
    names = []
    with connection.channel() as channel:
        for queue in queues:
            queue(channel).declare()
            names.append(queue.name)
    return names
