"""The design's router, written as a Celery 5 router function.

Celery calls the router for every task it sends. A platform task (its name starts with ``mp``)
goes to ``<service>.<kind>`` with its own name as routing key; a platform name that does not fit
the scheme, or that names a service the platform does not have, raises
:class:`~mpsoa_lab.plumbing.errors.RoutingError` at publish time, so it never lands in a default
queue where no worker listens. Other tasks (Celery's own, ``celery.*``) are left to Celery's defaults.

Each app of :func:`mpsoa_lab.celery_apps_factory` gets the router of its kind
(:func:`kind_router`), which also refuses tasks of the other kind: a sync task sent through the
async app would go to the wrong broker.
"""

from __future__ import annotations

from typing import Any

from ..plumbing.errors import RoutingError
from .naming import KINDS, SERVICES, is_platform_name, parse_task_name

__all__ = ["route_task", "kind_router", "make_router"]


def _article(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def make_router(kind: str | None = None, services: tuple[str, ...] = SERVICES):
    """A Celery 5 router function; with ``kind``, one that only accepts tasks of that kind."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")

    def route_task(
        name: str,
        args: Any = None,
        kwargs: Any = None,
        options: Any = None,
        task: Any = None,
        **kw: Any,
    ) -> dict[str, str] | None:
        if not is_platform_name(name):
            return None  # Celery's own tasks keep Celery's default routing
        parsed = parse_task_name(name, services)
        if kind is not None and parsed.kind != kind:
            raise RoutingError(
                f"Task {name!r} is {_article(parsed.kind)} task but was sent through the {kind} "
                f"app, which publishes to the {kind} broker. Send it with the {parsed.kind} app "
                f"returned by celery_apps_factory()."
            )
        return {"queue": parsed.queue, "routing_key": parsed.routing_key}

    route_task.__qualname__ = f"route_task[{kind}]" if kind else "route_task"
    return route_task


def kind_router(kind: str, services: tuple[str, ...] = SERVICES):
    """The router of the app of one kind (``sync`` or ``async``)."""
    return make_router(kind, services)


#: The kind-blind router for the design's three services.
route_task = make_router()
