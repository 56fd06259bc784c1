"""Bytes of a message on the wire: a raw kombu body, and a Celery task message as published."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["capture_celery_message", "size_of"]


def size_of(body: Any, headers: dict | None) -> dict[str, int]:
    """Bytes of a message as it goes on the wire: the JSON body and the AMQP headers table."""
    from amqp.serialization import dumps as amqp_dumps
    from kombu.serialization import dumps

    _, _, payload = dumps(body, serializer="json")
    return {
        "body_bytes": len(payload if isinstance(payload, bytes) else payload.encode()),
        "headers_bytes": len(amqp_dumps("F", [headers])) if headers else 0,
    }


def capture_celery_message(send: Callable[[], Any]) -> dict[str, int]:
    """Call ``send`` and return the :func:`size_of` the task message Celery published in it
    (seen through Celery's ``before_task_publish`` signal)."""
    from celery.signals import before_task_publish

    seen: dict[str, int] = {}

    def on_publish(body=None, headers=None, **_):
        seen.update(size_of(body, headers))

    before_task_publish.connect(on_publish, weak=False)
    try:
        send()
    finally:
        before_task_publish.disconnect(on_publish)
    return seen
