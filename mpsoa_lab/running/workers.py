"""Celery workers as real ``celery worker`` processes: start, wait until ready, stop, kill.

A worker is started with the same command a person would type in a terminal::

    celery -A mpsoa_lab.design.services.mplogin.sync_app worker -Q mplogin.sync -n mplogin-sync-1@%h

"Ready" means the worker answered Celery's own control ``ping`` through the broker, never a
sleep. A worker belongs to the process that started it (a notebook kernel): the lab's reaper
stops it when that process is gone, and ``Lab.down()`` stops it with everything else.

The default pool is Celery's own default, ``prefork``. The ``solo`` pool is not: on Celery 5.7
an idle solo worker does not act on SIGTERM until a message or a broker heartbeat wakes it
(measured here: still running 10 s after SIGTERM, where prefork exits in about 0.5 s).
Mingle, gossip and worker event heartbeats are off: they only add start-up time and broker
chatter to a lab of a few workers.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from ..design.naming import KINDS, SERVICES
from ..design.services._service import CONFIG_ENV, DELAY_ENV
from ..observe.tracing import TRACE_ENV, trace_dir
from ..plumbing.component import Component, NotReady
from ..plumbing.processes import MANAGED_MARK
from .lab import Lab

__all__ = ["Worker", "start_worker", "start_workers", "start_daemons", "stop_all", "worker_command"]

_serial = itertools.count(1)


def worker_command(
    service: str,
    kind: str,
    name: str,
    *,
    pool: str = "prefork",
    concurrency: int = 1,
    prefetch_multiplier: int | None = None,
    loglevel: str = "INFO",
    extra: tuple[str, ...] = (),
    watchable: bool = False,
) -> list[str]:
    """The ``celery worker`` command line for one of the design's daemons.

    The lab's workers send no events at all (``--without-heartbeat``, ``--without-gossip``,
    no ``-E``): Celery then has no event dispatcher in them, and none can be switched on later.
    A ``watchable`` worker keeps its worker heartbeat events (one small message every 2 s to
    ``celeryev``) so that :func:`mpsoa_lab.running.flower.watching` can switch its task events
    on and off through the remote control."""
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}; known: {', '.join(SERVICES)}")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    cmd = [
        "celery",
        "-A",
        f"mpsoa_lab.design.services.{service}.{kind}_app",
        "worker",
        "-Q",
        f"{service}.{kind}",
        "-n",
        f"{name}@%h",
        "--pool",
        pool,
        "--concurrency",
        str(concurrency),
        "--loglevel",
        loglevel,
        *([] if watchable else ["--without-heartbeat"]),
        "--without-mingle",
        "--without-gossip",
    ]
    if prefetch_multiplier is not None:
        cmd += ["--prefetch-multiplier", str(prefetch_multiplier)]
    return cmd + list(extra)


class Worker(Component):
    """One running ``celery worker`` process, on the lab's component life cycle."""

    TYPE = "worker"
    FIELDS = ("service", "kind", "command", "log_file", "broker_urls", "space")
    STOP_ORDER = 0

    def __init__(
        self,
        service: str,
        kind: str,
        name: str,
        command: list[str],
        log_file: Path,
        lab: Lab | None,
        *,
        env: dict[str, str] | None = None,
        broker_urls: tuple[str, str] | None = None,
        owner: int | None = None,
        space: str | None = None,
    ):
        super().__init__(
            name,
            Path(log_file).parent,
            owner=owner,
            mark=str(lab.home) if lab is not None else None,
        )
        self.service, self.kind = service, kind
        self.command = command
        self.log_file = Path(log_file)
        self.lab = lab
        self.broker_urls = broker_urls
        self.space = space
        self._env = env or {}
        self._app = None

    def _restored(self) -> None:
        self.log_file = Path(self.log_file)
        self.broker_urls = tuple(self.broker_urls) if self.broker_urls else None
        self.lab, self._env, self._app = None, {}, None

    # -- the component -----------------------------------------------------------------------
    @property
    def stdout_log(self) -> Path:
        return self.log_file

    def display_command(self) -> list[str]:
        return self.command

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "celery",
            *self.command[1:],
        ]  # the venv's celery, whatever PATH says

    def environment(self) -> dict[str, str]:
        return self._env

    def probe(self) -> None:
        """Ready: the worker answers Celery's control ping through its broker."""
        replies = self.app.control.ping(destination=[self.hostname], timeout=0.5)
        if not any(self.hostname in reply for reply in replies):
            raise NotReady(f"no ping reply from {self.hostname}")

    @property
    def hostname(self) -> str:
        """The node name Celery knows the worker by (``name@host``)."""
        return f"{self.name}@{socket.gethostname()}"

    @property
    def app(self):
        """A Celery app on the worker's broker (for control commands: ping, inspect)."""
        if self.broker_urls is not None:
            if self._app is None:
                from ..design.apps import celery_apps_factory

                apps = celery_apps_factory("PUBLISHER", *self.broker_urls, self.service)
                self._app = apps[0] if self.kind == "sync" else apps[1]
                # its replies come in the worker's serializer: accept what the worker accepts
                accepted = json.loads(self._env.get(CONFIG_ENV) or "{}").get("accept_content")
                if accepted:
                    self._app.conf.accept_content = accepted
            return self._app
        from ..design import services

        module = services.load(self.service)
        return module.sync_app if self.kind == "sync" else module.async_app

    def wait_ready(self, timeout: float = 60.0) -> float:
        """Block until the worker answers a control ping; return how long that took."""
        return super().wait_ready(timeout)

    def stop(self, timeout: float | None = 30.0, *, keep_ports: bool = True) -> None:
        """Warm shutdown (SIGTERM to the main process): finish the tasks in hand, then exit;
        kill after ``timeout``."""
        stop_all([self], 30.0 if timeout is None else timeout)

    def kill(self, *, keep_ports: bool = True) -> None:
        """SIGKILL to the worker and its pool processes: tasks in hand die with them."""
        super().kill(keep_ports=keep_ports)
        if self.lab is not None:
            self.lab.forget(self)

    def log_tail(self, lines: int = 20) -> str:
        return self.tail(lines)

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_worker(
    lab: Lab,
    service: str,
    kind: str,
    name: str | None = None,
    *,
    wait: bool = True,
    timeout: float = 60.0,
    config: dict | None = None,
    trace: bool = False,
    broker_urls: tuple[str, str] | None = None,
    delay_ms: float = 0,
    force_root: bool = False,
    **options,
) -> Worker:
    """Start one of the design's daemons against ``lab``'s broker of that kind, in this
    process's space (its vhost, its services' storage).

    ``config`` holds Celery settings for this worker only (e.g. ``{"task_acks_late": True}``),
    passed in ``MPSOA_CELERY_CONFIG``; ``trace=True`` makes the worker record when it received,
    started and finished each task (:mod:`mpsoa_lab.observe.tracing`); ``options`` go to
    :func:`worker_command` (``pool``, ``concurrency``, ``prefetch_multiplier``, ``loglevel``,
    ``extra``).

    ``broker_urls=(sync_url, async_url)`` points this worker only at other brokers than the
    lab's (through ``MPSOA_SYNC_BROKER_URL`` / ``MPSOA_ASYNC_BROKER_URL`` in its environment),
    e.g. ``(lab.sync.url, lab.sync.url)`` for an async worker on the sync broker: both kinds
    of traffic on one broker (notebook 06). The queue it consumes must exist on that broker.

    ``delay_ms`` makes each task wait that long before it runs (a slow service, or one slow
    instance among several), through ``MPSOA_SERVICE_DELAY_MS``.

    Celery refuses to start a worker that accepts pickle as root (or as a member of the
    ``sudo`` or ``wheel`` group) unless ``C_FORCE_ROOT`` is set. The lab never hides that guard:
    ``C_FORCE_ROOT`` is taken out of the worker's environment, and set only with
    ``force_root=True`` (notebook 12 shows the guard, then goes past it).
    """
    name = name or f"{service}-{kind}-{os.getpid()}-{next(_serial)}"
    cmd = worker_command(service, kind, name, **options)
    env = {
        **os.environ,
        MANAGED_MARK: str(lab.home),
        "MPSOA_LAB_HOME": str(lab.home),
        "MPSOA_SPACE": lab.space,
    }
    env.pop(CONFIG_ENV, None)
    env.pop(TRACE_ENV, None)
    env.pop(DELAY_ENV, None)
    env.pop("C_FORCE_ROOT", None)
    if force_root:
        env["C_FORCE_ROOT"] = "1"
    if delay_ms:
        env[DELAY_ENV] = str(delay_ms)
    if trace:
        env[TRACE_ENV] = str(trace_dir(lab))
    if config:
        env[CONFIG_ENV] = json.dumps(config)
    if lab.external:
        env["MPSOA_SYNC_BROKER_URL"], env["MPSOA_ASYNC_BROKER_URL"] = lab.sync.url, lab.async_.url
    if broker_urls is None and lab.view_vhost:  # a view's vhost: not the one the space names
        broker_urls = (lab.sync.url, lab.async_.url)
    if broker_urls is not None:
        broker_urls = (str(broker_urls[0]), str(broker_urls[1]))
        env["MPSOA_SYNC_BROKER_URL"], env["MPSOA_ASYNC_BROKER_URL"] = broker_urls
    worker = Worker(
        service,
        kind,
        name,
        cmd,
        lab.home / "logs" / f"{name}.log",
        lab,
        env=env,
        broker_urls=broker_urls,
        owner=os.getpid(),
        space=lab.space,
    )
    worker.start(timeout, wait=False)
    lab.record(worker)
    if wait:
        try:
            worker.wait_ready(timeout)
        except BaseException:
            worker.kill()
            raise
    return worker


def start_workers(
    lab: Lab, service: str, kind: str, count: int, *, timeout: float = 60.0, **options
) -> list[Worker]:
    """Start ``count`` workers on the same queue, all at once, and wait until each is ready."""
    workers = [start_worker(lab, service, kind, wait=False, **options) for _ in range(count)]
    try:
        for worker in workers:
            worker.wait_ready(timeout)
    except BaseException:
        for worker in workers:
            worker.kill()
        raise
    return workers


def _wake(workers: list[Worker]) -> None:
    """Make idle workers act on a SIGTERM now: send them a control ping.

    A prefork worker notices the signal only when its event loop wakes up, which an idle one
    does every few seconds (5.5 s measured here); a message for it wakes it at once (warm stop
    1.6 s). Best effort: one short connection attempt, and SIGTERM does the job anyway.
    """
    by_app: dict[int, tuple[Any, list[str]]] = {}
    for worker in workers:
        try:
            app = worker.app
        except Exception:  # noqa: BLE001 - no app, no wake-up: SIGTERM still works
            continue
        by_app.setdefault(id(app), (app, []))[1].append(worker.hostname)
    for app, hostnames in by_app.values():
        with contextlib.suppress(Exception), app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=0, timeout=1)
            app.control.ping(destination=hostnames, timeout=0.05, connection=conn)


def stop_all(workers: list[Worker], timeout: float = 30.0) -> None:
    """Warm shutdown of several workers at once: one SIGTERM each, then wait for all."""
    for worker in workers:
        worker.request_stop()  # SIGTERM to the main process only: it stops its pool itself
    _wake([worker for worker in workers if worker.is_running()])
    deadline = time.monotonic() + timeout
    for worker in workers:
        if not worker.process.wait_gone(max(0.1, deadline - time.monotonic())):
            worker.process.signal_group(signal.SIGKILL)
            worker.process.wait_gone(5.0)
        worker._after_stop(keep_ports=False)
        if worker.lab is not None:
            worker.lab.forget(worker)


def start_daemons(
    lab: Lab, services: tuple[str, ...] = SERVICES, *, timeout: float = 60.0, **options
) -> dict[tuple[str, str], Worker]:
    """The design's daemons: for each service a sync worker (``<service>.sync`` on the sync
    broker) and an async worker (``<service>.async`` on the async broker), started together."""
    daemons = {
        (service, kind): start_worker(lab, service, kind, wait=False, **options)
        for service in services
        for kind in KINDS
    }
    try:
        for worker in daemons.values():
            worker.wait_ready(timeout)
    except BaseException:
        for worker in daemons.values():
            worker.kill()
        raise
    return daemons
