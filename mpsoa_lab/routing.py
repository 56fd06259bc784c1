"""The design's router, written as a Celery 5 router function.

Celery calls :func:`route_task` for every task it sends. A platform task (its name starts with
``mp``) goes to ``<service>.<kind>`` with its own name as routing key; a platform name that does
not fit the scheme, or that names a service the platform does not have, raises
:class:`~mpsoa_lab.errors.RoutingError` at publish time, so it never lands in a default queue
where no worker listens. Other tasks (Celery's own, ``celery.*``) are left to Celery's defaults.
"""
from __future__ import annotations

from typing import Any

from .naming import SERVICES, is_platform_name, parse_task_name

__all__ = ["route_task", "make_router"]


def make_router(services: tuple[str, ...] = SERVICES):
    """A router function for a platform with the given services."""

    def route_task(name: str, args: Any = None, kwargs: Any = None, options: Any = None,
                   task: Any = None, **kw: Any) -> dict[str, str] | None:
        if not is_platform_name(name):
            return None
        parsed = parse_task_name(name, services)
        return {"queue": parsed.queue, "routing_key": parsed.routing_key}

    route_task.__name__ = route_task.__qualname__ = "route_task"
    return route_task


#: The router for the design's three services: use it in ``task_routes``.
route_task = make_router()
