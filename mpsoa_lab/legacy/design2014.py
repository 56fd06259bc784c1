"""The 2014 router and configuration, reproduced as they were, next to the modern router.

This module rebuilds what the 2014 post ("Using Celery as middleware in SOA") configured, with
its original, Celery 3 era setting names and shapes, so the lab can run it against Celery 5 and
a current RabbitMQ and show what still holds (:mod:`mpsoa_lab.legacy.audit`):

* :class:`Router`, whose ``route_for_task`` matches task names with the 2014 regular
  expressions. Their dots are *not* escaped, so ``.`` there matches any character; that is the
  behaviour to show, not a typo of ours.
* :func:`_get_celery_queues`, the 2014 queue table: a dict of dicts with ``binding_key``,
  ``exchange``, ``exchange_type`` and, on the sync queues, ``delivery_mode``.
* :class:`CeleryConfig`, the uppercase settings of 2014, used with ``config_from_object``.
* :func:`legacy_celery_apps_factory`, the 2014 factory: ``pyamqp`` for subscribers,
  ``librabbitmq`` for publishers, results ignored on the async app.

:func:`compare_routers` puts the 2014 router next to the modern one
(:func:`mpsoa_lab.design.routing.kind_router`) for a list of task names; :data:`ROUTER_CASES`
holds names on which the two agree and names on which they do not.

Nothing here is meant for use in the platform: it is the behaviour the lab measures.
"""

from __future__ import annotations

import re
from typing import Any

from celery import Celery

from ..design.routing import kind_router, route_task
from ..plumbing.errors import RoutingError

__all__ = [
    "LEGACY_SERVICES",
    "LEGACY_SYNC_PATTERN",
    "LEGACY_ASYNC_PATTERN",
    "Router",
    "_get_celery_queues",
    "CeleryConfig",
    "legacy_celery_apps_factory",
    "legacy_route",
    "modern_route",
    "compare_routers",
    "ROUTER_CASES",
]

#: The services the 2014 queue table knows, in the post's order.
LEGACY_SERVICES: tuple[str, ...] = ("mplogin", "mpwallet", "mpledger")

#: The 2014 patterns, unchanged: the dots are unescaped, so each ``.`` matches any character.
LEGACY_SYNC_PATTERN = r"^mp[a-z_]+.sync.[a-z_]+$"
LEGACY_ASYNC_PATTERN = r"^mp[a-z_]+.async.[a-z_]+$"


class Router:
    """The 2014 router class: Celery 3 called ``route_for_task`` for every task it sent.

    It routes any name the loose patterns accept, to the queue named after the text before
    the first dot plus ``.sync`` or ``.async``, and returns None for everything else (Celery
    then falls back to its default queue).
    """

    def route_for_task(
        self, task: str, args: Any = None, kwargs: Any = None
    ) -> dict[str, str] | None:
        parts = task.split(".")
        if re.match(LEGACY_SYNC_PATTERN, task) is not None:
            return {"routing_key": task, "queue": parts[0] + ".sync"}
        if re.match(LEGACY_ASYNC_PATTERN, task) is not None:
            return {"routing_key": task, "queue": parts[0] + ".async"}
        return None


def _get_celery_queues() -> dict[str, dict[str, Any]]:
    """The 2014 ``CELERY_QUEUES`` table: two queues per service on the service's topic exchange.

    The sync queues carry ``'delivery_mode': 1`` (transient, "not written to disk"); the
    async ones carry no delivery mode.
    """
    queues: dict[str, dict[str, Any]] = {}
    for service in LEGACY_SERVICES:
        queues[service + ".sync"] = {
            "binding_key": service + ".sync.#",
            "exchange": service,
            "exchange_type": "topic",
            "delivery_mode": 1,
        }
        queues[service + ".async"] = {
            "binding_key": service + ".async.#",
            "exchange": service,
            "exchange_type": "topic",
        }
    return queues


class CeleryConfig:
    """The 2014 configuration object, uppercase Celery 3 names and values as they were."""

    CELERY_ROUTES = (Router(),)

    # The post kept pickle first ("only if your broker is secured from unwanted access").
    CELERY_ACCEPT_CONTENT = ["pickle", "json"]
    CELERY_TASK_SERIALIZER = "pickle"
    CELERY_RESULT_SERIALIZER = "pickle"
    CELERY_TIMEZONE = "UTC"
    CELERY_ENABLE_UTC = True
    CELERY_BACKEND = "amqp"

    # "Replicate queues to all nodes in the cluster".
    CELERY_QUEUE_HA_POLICY = "all"

    CELERY_DISABLE_RATE_LIMITS = True

    CELERY_QUEUES = _get_celery_queues()
    BROKER_HEARTBEAT = 10
    BROKER_HEARTBEAT_CHECKRATE = 2.0
    BROKER_POOL_LIMIT = 0


def legacy_celery_apps_factory(
    app_type: str, sync_broker_url: str, async_broker_url: str, service_name: str
) -> tuple[Celery, Celery]:
    """The 2014 factory: ``(sync_app, async_app)`` configured from :class:`CeleryConfig`.

    As in 2014, the broker URLs are given without a scheme (``user:pass@host:port/vhost``):
    the factory prepends ``pyamqp://`` for a ``'SUBSCRIBER'`` and ``librabbitmq://`` for
    anything else (the post's ``'PUBLISHER'``). The apps are not made current, so building
    them does not change which app ``celery.current_app`` is.
    """
    protocol = "pyamqp" if app_type == "SUBSCRIBER" else "librabbitmq"

    broker_url_sync = protocol + "://" + sync_broker_url
    broker_url_async = protocol + "://" + async_broker_url

    sync_app = Celery(service_name + ".sync_app", broker=broker_url_sync, set_as_current=False)
    sync_app.config_from_object(CeleryConfig)

    async_app = Celery(service_name + ".async_app", broker=broker_url_async, set_as_current=False)
    async_app.config_from_object(CeleryConfig)
    async_app.conf.CELERY_IGNORE_RESULT = True

    return sync_app, async_app


# -- the 2014 router next to the modern one ---------------------------------------------------


def legacy_route(name: str) -> dict[str, str] | None:
    """What the 2014 router returns for task ``name``."""
    return Router().route_for_task(name)


def modern_route(name: str) -> dict[str, Any]:
    """What the modern routers do with ``name``: a route, None, or the error they raise.

    The name's own kind (``sync`` or ``async``, when it has one) selects the app, i.e. the
    router of :func:`mpsoa_lab.design.routing.kind_router`; other names go through
    :func:`mpsoa_lab.design.routing.route_task`, the kind-blind router. Returns a dict with
    ``router`` (which one was asked), ``route`` and ``error`` (``"Class: message"`` or None).
    """
    parts = name.split(".")
    kind = parts[1] if len(parts) == 3 and parts[1] in ("sync", "async") else None
    router = kind_router(kind) if kind else route_task
    label = f"kind_router({kind!r})" if kind else "route_task"
    try:
        return {"router": label, "route": router(name), "error": None}
    except RoutingError as exc:  # the error is the result to report
        return {"router": label, "route": None, "error": f"{type(exc).__name__}: {exc}"}


def compare_routers(names: list[str] | tuple[str, ...]) -> list[dict[str, Any]]:
    """For each task name: the 2014 route, the modern route or error, and whether they agree.

    They agree when both return the same route, or both return None. A modern error never
    agrees with a 2014 route (2014 would have published where the modern router refuses) and
    never agrees with a 2014 None either (2014 would have let Celery's default queue take it).
    """
    rows = []
    for name in names:
        old = legacy_route(name)
        new = modern_route(name)
        agree = new["error"] is None and old == new["route"]
        rows.append(
            {
                "task": name,
                "legacy": old,
                "modern_router": new["router"],
                "modern": new["route"],
                "modern_error": new["error"],
                "agree": agree,
            }
        )
    return rows


#: Task names that show where the two routers agree and where they do not.
ROUTER_CASES: tuple[str, ...] = (
    # plain valid names, one per service and kind
    "mplogin.sync.register",
    "mplogin.async.send_welcome_mail",
    "mpwallet.sync.get_balance",
    "mpwallet.async.top_up",
    "mpledger.sync.post_entry",
    "mpledger.async.reconcile",
    # Celery's own tasks and names outside the platform
    "celery.ping",
    "celery.backend_cleanup",
    "billing.sync.charge",
    # digits in the method: a valid Python name the 2014 pattern refuses
    "mplogin.sync.register2",
    "mpwallet.async.top_up_v2",
    # a dot replaced by another character: the unescaped '.' accepts it
    "mplogin-sync-register",
    "mplogin_sync_register",
    "mploginxsyncxregister",
    "mplogin.sync_register",
    "mplogin_async.register",  # the *sync* pattern accepts it: the 'a' of async fills a dot
    # an unknown service: 2014 routes it to a queue nobody declared
    "mpshop.sync.x",
    "mpshop.async.notify",
    # uppercase, four parts, empty method, an unknown kind
    "mplogin.sync.Register",
    "MPLOGIN.sync.register",
    "mplogin.sync.user.register",
    "mplogin.sync.",
    "mplogin.batch.register",
    # '$' in both 2014 patterns also matches before a trailing newline (the lab uses fullmatch)
    "mplogin.sync.register\n",
)
