"""The design's app factory, configured the way Celery 5 wants it.

``celery_apps_factory(app_type, sync_broker_url, async_broker_url, service_name)`` keeps the
2014 name and shape and returns ``(sync_app, async_app)``: two Celery apps, each on its own
broker. What changed against 2014, and why, is shown by running both in notebook 03:

* lowercase setting names (the uppercase ones are deprecated and cannot be mixed with new ones);
* JSON instead of pickle (pickle runs code chosen by whoever can publish to the broker);
* ``rpc://`` results on the sync app (the ``amqp`` result backend was removed in Celery 5);
  results ignored on the async app;
* the ``pyamqp`` transport for publishers and subscribers alike (``librabbitmq`` is gone);
* each app's router only accepts tasks of its own kind, and unknown queues are an error
  instead of being created on the fly with a direct exchange;
* sync messages are transient (the design's intent, stated where it takes effect: on the
  message), async messages persistent;
* a worker's consumer that keeps the messages it cannot use instead of dropping them or dying
  of them (:class:`~mpsoa_lab.design.dead_letters.KeepingConsumer`, notebook 12).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Celery
from kombu import Queue

from ..plumbing.errors import UnknownService
from .dead_letters import KEEPING_CONSUMER
from .naming import SERVICES
from .routing import kind_router
from .topology import platform_queues

__all__ = ["APP_TYPES", "celery_apps_factory", "build_apps", "base_config", "normalize_broker_url"]

#: The 2014 factory chose a transport by app type; today both use ``pyamqp``.
APP_TYPES = ("PUBLISHER", "SUBSCRIBER")


def normalize_broker_url(url: str) -> str:
    """Accept the design's scheme-less ``user:pass@host:port/vhost`` as well as full URLs."""
    if not url:
        raise ValueError("a broker URL is required, e.g. 'amqp://guest:guest@localhost:5672//'")
    if "://" not in url:
        return "pyamqp://" + url
    return url


def base_config(kind: str, services: tuple[str, ...] = SERVICES) -> dict[str, Any]:
    """The modern configuration shared by both apps, for the app of ``kind``."""
    config: dict[str, Any] = {
        "task_routes": (kind_router(kind, services),),
        # The platform's queues of this kind, plus Celery's default queue for its own tasks.
        "task_queues": [*platform_queues(kinds=(kind,), services=services), Queue("celery")],
        "task_create_missing_queues": False,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "timezone": "UTC",
        "enable_utc": True,
        "worker_disable_rate_limits": True,
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
        # A worker keeps what it cannot use (rejected, so dead-lettered where its queue has a
        # dead-letter exchange) instead of dropping it or dying of it: notebook 12.
        "worker_consumer": KEEPING_CONSUMER,
    }
    if kind == "sync":
        config.update(
            result_backend="rpc://",
            task_default_delivery_mode="transient",
        )
    else:
        config.update(
            task_ignore_result=True,
            task_default_delivery_mode="persistent",
        )
    return config


def celery_apps_factory(
    app_type: str, sync_broker_url: str, async_broker_url: str, service_name: str
) -> tuple[Celery, Celery]:
    """Return ``(sync_app, async_app)`` for ``service_name``, each on its own broker."""
    return build_apps(app_type, sync_broker_url, async_broker_url, service_name, base_config)


def build_apps(
    app_type: str,
    sync_broker_url: str,
    async_broker_url: str,
    service_name: str,
    config_for: Callable[[str], dict[str, Any]],
) -> tuple[Celery, Celery]:
    """``(sync_app, async_app)`` for ``service_name``, each on its own broker and configured
    with ``config_for(kind)``; a clear error for an unknown app type or service."""
    if app_type not in APP_TYPES:
        raise ValueError(f"app_type must be one of {APP_TYPES}, not {app_type!r}")
    if service_name not in SERVICES:
        raise UnknownService(
            f"service_name {service_name!r} is not a service of the platform; "
            f"known services: {', '.join(SERVICES)}"
        )
    apps = []
    for kind, url in (("sync", sync_broker_url), ("async", async_broker_url)):
        app = Celery(
            f"{service_name}.{kind}_app", broker=normalize_broker_url(url), set_as_current=False
        )
        app.conf.update(config_for(kind))
        apps.append(app)
    return apps[0], apps[1]
