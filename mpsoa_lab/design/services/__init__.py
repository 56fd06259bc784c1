"""The platform's services: ``mplogin``, ``mpwallet`` and ``mpledger``.

Each is a module with two Celery apps (``sync_app``, ``async_app``), a few tasks and a SQLite
storage of its own. Importing a service needs a broker: a running lab, or the broker URLs in
the environment (see :func:`mpsoa_lab.design.services._service.broker_urls`).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ..naming import SERVICES, parse_task_name

__all__ = ["load", "task_table"]


def load(service: str) -> ModuleType:
    """Import a service module by name, e.g. ``load("mplogin")``."""
    if service not in SERVICES:
        from ...plumbing.errors import UnknownService

        raise UnknownService(f"no service {service!r}; known services: {', '.join(SERVICES)}")
    return importlib.import_module(f"{__name__}.{service}")


def task_table() -> list[dict[str, str]]:
    """Every task the services define, with the exchange, queue and routing key it goes to."""
    rows = []
    for service in SERVICES:
        module = load(service)
        for name in module.service.tasks():
            parsed = parse_task_name(name)
            app = module.sync_app if parsed.kind == "sync" else module.async_app
            route = app.amqp.router.route({}, name)
            rows.append(
                {
                    "task": name,
                    "app": app.main,
                    "exchange": route["queue"].exchange.name,
                    "queue": route["queue"].name,
                    "routing_key": route["routing_key"],
                }
            )
    return rows
