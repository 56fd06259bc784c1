"""What every service module shares: its two apps, its storage, and a task base class.

A service module does, at import::

    service = Service("mplogin", schema=...)
    sync_app, async_app = service.sync_app, service.async_app

so that ``celery -A mpsoa_lab.design.services.mplogin.sync_app worker -Q mplogin.sync`` works from a
terminal. The broker URLs come from ``MPSOA_SYNC_BROKER_URL`` / ``MPSOA_ASYNC_BROKER_URL`` or,
when those are not set, from the lab running under ``MPSOA_LAB_HOME``.

A process that runs the services' code in-process, never through Celery (a REST instance of
:mod:`mpsoa_lab.design.rest`), calls :func:`without_broker` before it loads a service: the
service then needs no broker at all, and :meth:`Service.execute` runs a task's function with
the same execution log a worker keeps.

``MPSOA_CELERY_CONFIG`` (a JSON object of Celery 5 settings, e.g.
``{"task_acks_late": true, "worker_prefetch_multiplier": 1}``) is applied on top of the
factory's configuration: that is how the lab starts one worker with late acks and another
without, from the same service module. Settings that ask for Celery's ``auth`` serializer
(``task_serializer``, ``accept_content`` and the ``security_*`` files) also make the process call
``setup_security()``, as Celery asks of an app that signs its messages.

A task of the async app that fails is kept in the service's storage with its arguments and
its error (:meth:`Storage.failed_tasks`, through Celery's ``Task.on_failure``): nobody waits
for its result, so the worker's log line alone would be the only trace of a task the edge
had answered 202 for.

``MPSOA_SERVICE_DELAY_MS`` (milliseconds, default 0) makes every task of this process wait that
long before it runs: a service that waits on something slow (a database, another API), the
load notebook 08 puts behind the edge, or one slow instance among several.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator
from typing import Any

from celery import Celery, Task

from ...observe.tracing import connect_worker_from_env
from ...plumbing import settings as settings_mod
from ...plumbing.errors import BrokerNotConfigured, SettingsError
from ...plumbing.state import running_lab_urls
from ..apps import celery_apps_factory
from .storage import Storage

__all__ = [
    "Service",
    "broker_urls",
    "config_overrides",
    "without_broker",
    "CONFIG_ENV",
    "NO_BROKER_URL",
    "task_delay",
    "DELAY_ENV",
]

logger = logging.getLogger(__name__)

#: Environment variable holding Celery settings (JSON) applied on top of the factory's.
CONFIG_ENV = "MPSOA_CELERY_CONFIG"
#: Environment variable: milliseconds every task waits before it runs (a slow service).
DELAY_ENV = "MPSOA_SERVICE_DELAY_MS"


def task_delay() -> float:
    """Seconds every task of this process waits before it runs (``MPSOA_SERVICE_DELAY_MS``)."""
    delay = settings_mod.env_float(os.environ, DELAY_ENV, 0.0, unit="milliseconds")
    if delay < 0:
        raise SettingsError(f"{DELAY_ENV}={delay:g} is negative: give 0 or more ms")
    return delay / 1000


#: The broker of a service loaded by :func:`without_broker`: the ``.invalid`` top-level domain
#: never resolves (RFC 2606), so a Celery app of such a process that tried to connect would
#: fail at once instead of reaching some broker.
NO_BROKER_URL = "amqp://no-broker-in-this-process.invalid//"

_without_broker = False


def without_broker() -> None:
    """Load the services in this process without a broker: for a process that runs their code
    in-process (a REST instance), never through Celery. Call it before importing a service."""
    global _without_broker
    _without_broker = True


def config_overrides() -> dict[str, Any]:
    """The Celery settings given in ``MPSOA_CELERY_CONFIG``, checked against Celery's own names."""
    from celery.app.defaults import SETTING_KEYS

    raw = os.environ.get(CONFIG_ENV, "").strip()
    if not raw:
        return {}
    try:
        overrides = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{CONFIG_ENV} is not valid JSON ({exc}): {raw!r}") from None
    if not isinstance(overrides, dict):
        raise ValueError(f"{CONFIG_ENV} must be a JSON object of Celery settings, not {raw!r}")
    unknown = sorted(set(overrides) - set(SETTING_KEYS))
    if unknown:
        raise ValueError(
            f"{CONFIG_ENV} names settings Celery 5 does not have: {', '.join(unknown)} "
            "(use the lowercase names, e.g. task_acks_late)"
        )
    return overrides


def broker_urls() -> tuple[str, str]:
    """``(sync_url, async_url)`` for the services, or a clear :class:`BrokerNotConfigured`."""
    settings = settings_mod.load()
    if settings.external:
        return settings.sync_broker_url, settings.async_broker_url
    urls = running_lab_urls(settings)
    if urls:
        return urls["sync"], urls["async"]
    raise BrokerNotConfigured(
        f"No broker for the services: no lab is running under {settings.home} and "
        "MPSOA_SYNC_BROKER_URL / MPSOA_ASYNC_BROKER_URL are not set. Start the lab first "
        "(`python -m mpsoa_lab up` in a terminal, or `mpsoa_lab.up()` in a notebook), or "
        "export both URLs, e.g. MPSOA_SYNC_BROKER_URL=amqp://guest:guest@localhost:5672//."
    )


class Service:
    """The two Celery apps and the storage of one service."""

    def __init__(self, name: str, schema: str):
        self.name = name
        self._by_name: dict[str, Task] | None = None
        sync_url, async_url = (NO_BROKER_URL,) * 2 if _without_broker else broker_urls()
        self.storage = Storage(settings_mod.load().data_dir / f"{name}.sqlite3", schema)
        self.sync_app, self.async_app = celery_apps_factory("SUBSCRIBER", sync_url, async_url, name)
        overrides = config_overrides()
        for app in (self.sync_app, self.async_app):
            app.conf.update(overrides)
            app.Task = self._task_class(app)
        if overrides.get("task_serializer") == "auth":
            # Celery's message signing (notebook 12): registers the ``auth`` serializer with this
            # process's key, certificate and store, disables every other serializer but JSON and
            # makes ``auth`` kombu's default, for the whole process (both apps share it).
            self.sync_app.setup_security()
        # A worker started with start_worker(..., trace=True) records every task it runs.
        connect_worker_from_env()

    def _task_class(self, app: Celery) -> type[Task]:
        recorded, delay, storage = self.recorded, task_delay(), self.storage
        fire_and_forget = app is self.async_app

        class ServiceTask(app.Task):  # type: ignore[name-defined,misc]
            """Records every execution in the service's storage, and every failure of an async
            task (no caller waits for its error) in its failed tasks."""

            abstract = True

            def __call__(self, *args: Any, **kwargs: Any) -> Any:
                # The request is read at the end: Celery's own __call__ pushes one of its own.
                with recorded(self.name, lambda: (self.request.id, self.request.hostname)):
                    if delay:  # a slow service (MPSOA_SERVICE_DELAY_MS)
                        time.sleep(delay)
                    return super().__call__(*args, **kwargs)

            def on_failure(
                self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
            ) -> None:
                super().on_failure(exc, task_id, args, kwargs, einfo)
                if not fire_and_forget:  # a sync task's caller gets the error itself
                    return
                try:
                    storage.record_failure(task_id, self.name, args, kwargs, exc)
                except Exception:  # noqa: BLE001 - the worker's log keeps it then
                    logger.exception("could not keep the failure of %s %s", self.name, task_id)

        return ServiceTask

    @contextlib.contextmanager
    def recorded(self, task_name: str, who: Any) -> Iterator[None]:
        """Record the execution of the block in the execution log; ``who()`` gives its
        ``(task_id, hostname)`` once it has ended."""
        started, ok = time.time(), False
        try:
            yield
            ok = True
        finally:
            task_id, hostname = who()
            self.storage.record_execution(
                task_id, task_name, hostname, os.getpid(), started, time.time(), ok
            )

    def execute(
        self,
        task_name: str,
        kwargs: dict[str, Any],
        *,
        task_id: str | None = None,
        hostname: str | None = None,
        delay: float = 0.0,
        record: bool = True,
    ) -> Any:
        """Run a task's function in this process, no broker involved (what a REST instance
        does for a request), recorded in the execution log as a worker's run would be, under
        ``task_id`` (a request id) and ``hostname`` (the instance's name). ``delay`` seconds
        are waited inside the recorded run, where a worker waits ``MPSOA_SERVICE_DELAY_MS``.
        ``record=False`` runs the function alone, as a worker runs a task that is not the
        service's recording kind (``mpwallet.sync.echo``)."""
        if self._by_name is None:  # every task is defined once the service module is loaded
            self._by_name = self.tasks()
        task = self._by_name.get(task_name)
        if task is None:
            from ...plumbing.errors import RoutingError

            raise RoutingError(
                f"{self.name} has no task {task_name!r}; its tasks: {', '.join(self._by_name)}"
            )
        if not record:
            return task.run(**kwargs)
        with self.recorded(task_name, lambda: (task_id, hostname)):
            if delay:
                time.sleep(delay)
            return task.run(**kwargs)

    def tasks(self) -> dict[str, Task]:
        """The platform tasks this service defines, by name."""
        found = {}
        for app in (self.sync_app, self.async_app):
            found.update({n: t for n, t in app.tasks.items() if n.startswith(self.name + ".")})
        return dict(sorted(found.items()))
