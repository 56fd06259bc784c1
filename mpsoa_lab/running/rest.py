"""The REST alternative's instances as lab components: uvicorn serving :mod:`mpsoa_lab.design.rest`.

``start_rest(lab, "mpwallet", 2)`` starts two ``python -m uvicorn --factory
mpsoa_lab.design.rest:instance_app`` processes, each on a port reserved on the machine-wide
allocator, on 127.0.0.1 only, with this process's space in their environment (so they use the
same SQLite storage as this process's Celery workers) and no broker. Each is ready when
``GET /health`` answers, recorded in the state file (the reaper stops it when its owner is
gone) and stopped with :func:`stop_rest`. ``delay_ms`` makes an instance slower (a sleep in
every call: the slow instance of the load experiments), ``concurrency`` bounds the calls it
runs at once.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Sequence

from ..design.naming import SERVICES
from ..plumbing.component import Program
from ..plumbing.errors import UnknownService
from .edge import uvicorn_program
from .lab import Lab

__all__ = [
    "start_rest",
    "stop_rest",
    "rest_url",
    "rest_instances",
    "rest_service",
    "REST_PREFIX",
    "KEEP_ALIVE_SECONDS",
]

#: Name prefix of the REST instances in the state file: ``rest-<service>-<pid>-<n>``.
REST_PREFIX = "rest-"
#: How long an instance keeps an idle keep-alive connection open: longer than a client or
#: HAProxy keeps one idle, so the server never closes a connection a client is about to reuse.
KEEP_ALIVE_SECONDS = 65
_serial = itertools.count(1)


def rest_url(instance: Program) -> str:
    """The instance's base URL, e.g. ``http://127.0.0.1:22345``."""
    return f"http://127.0.0.1:{instance.ports['http']}"


def rest_service(instance: Program) -> str:
    """The service an instance serves (from its name)."""
    return instance.name[len(REST_PREFIX) :].split("-", 1)[0]


def _delays(delay_ms: float | Sequence[float], count: int) -> list[float]:
    if isinstance(delay_ms, (int, float)):
        return [float(delay_ms)] * count
    delays = [float(d) for d in delay_ms]
    if len(delays) != count:
        raise ValueError(f"delay_ms has {len(delays)} values for {count} instances")
    return delays


def start_rest(
    lab: Lab,
    service: str,
    count: int = 1,
    *,
    delay_ms: float | Sequence[float] = 0,
    concurrency: int = 0,
    start_timeout: float = 60.0,
) -> list[Program]:
    """Start ``count`` instances of ``service`` and wait until each answers.

    ``delay_ms`` is one delay for all, or one per instance (``[0, 40]``: the second is slow);
    ``concurrency`` bounds the calls an instance runs at once (0: uvicorn's thread pool only).
    """
    if service not in SERVICES:
        raise UnknownService(f"no service {service!r}; known services: {', '.join(SERVICES)}")
    if count < 1:
        raise ValueError(f"count must be at least 1, not {count}")
    instances: list[Program] = []
    try:
        for delay in _delays(delay_ms, count):
            instance = _program(lab, service, delay, concurrency)
            instances.append(instance)
            instance.start(wait=False)
            lab.record(instance)
        for instance in instances:  # started together, waited for in turn
            instance.wait_ready(start_timeout)
    except BaseException:
        stop_rest(lab, instances)
        raise
    return instances


def _program(lab: Lab, service: str, delay_ms: float, concurrency: int) -> Program:
    name = f"{REST_PREFIX}{service}-{os.getpid()}-{next(_serial)}"
    env = {
        "MPSOA_LAB_HOME": str(lab.home),
        "MPSOA_SPACE": lab.space,
        "MPSOA_REST_SERVICE": service,
        "MPSOA_REST_INSTANCE": name,
        "MPSOA_REST_DELAY_MS": str(delay_ms),
        "MPSOA_REST_CONCURRENCY": str(concurrency),
    }
    factory = "mpsoa_lab.design.rest:instance_app"
    return uvicorn_program(lab, name, factory, env, "--timeout-keep-alive", str(KEEP_ALIVE_SECONDS))


def stop_rest(lab: Lab, instances: Iterable[Program], timeout: float = 10.0) -> None:
    """Stop instances (SIGTERM: uvicorn finishes its requests), release their ports, forget
    them. An instance killed before (``instance.kill()``) is only forgotten."""
    for instance in list(instances):
        lab.retire(instance, timeout)


def rest_instances(lab: Lab, service: str | None = None) -> list[Program]:
    """The REST instances the state file records (started by any process on this lab), of
    one ``service`` or all."""
    return [
        c
        for c in lab.components("program")
        if c.name.startswith(REST_PREFIX) and (service is None or rest_service(c) == service)
    ]
