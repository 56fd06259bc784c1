"""Flower, on demand, as one of the lab's components: one per broker, since the design has two.

``start_flower(lab, "sync")`` starts ``celery --broker <the sync broker> flower`` on a reserved
port of 127.0.0.1, ready when ``GET /healthcheck`` answers, recorded in the state file (the
reaper stops it when its owner is gone, ``lab.down()`` with everything else) and stopped with
:func:`stop_flower`. :func:`flowers` starts one on each broker and prints their addresses
(``mpsoa_lab.flower(lab)`` in a notebook, ``python -m mpsoa_lab flower`` in a terminal).

The lab's workers send no events: every measurement is made without them. Flower is started
with ``--enable_events=False`` so that it does not switch them on everywhere by itself;
:func:`watching` switches them on, through Celery's remote control, for the workers it is given
and off again afterwards. What events cost a measurement is measured by
:func:`mpsoa_lab.experiments.watching.events_cost`.

Flower's HTTP API answers without authentication here (``FLOWER_UNAUTHENTICATED_API``): it
listens on 127.0.0.1 only, for the person running the lab. Do not start it so on a shared host.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from ..plumbing.component import Program, http_probe
from ..plumbing.errors import LabError
from ..plumbing.util import wait_until
from .lab import Lab

__all__ = [
    "FLOWER_PREFIX",
    "start_flower",
    "stop_flower",
    "flower_url",
    "flowers",
    "running_flowers",
    "watching",
    "watch_where_possible",
    "stop_watching",
    "wait_idle",
    "NotWatchable",
]


class NotWatchable(LabError):
    """A worker whose task events cannot be switched on (started without a dispatcher)."""


#: Name prefix of the Flower programs in the state file.
FLOWER_PREFIX = "flower-"
_serial = itertools.count(1)


def flower_url(flower: Program) -> str:
    """Flower's address, e.g. ``http://127.0.0.1:22123``."""
    return f"http://127.0.0.1:{flower.ports['http']}"


def start_flower(lab: Lab, role: str = "sync", *, start_timeout: float = 60.0) -> Program:
    """Flower on ``lab``'s ``role`` broker (``sync`` or ``async``), in this process's space,
    ready when it answers; owned by this process."""
    if role not in lab.brokers:
        raise ValueError(f"no broker role {role!r}; the design has {', '.join(lab.brokers)}")
    broker = lab.brokers[role]
    name = f"{FLOWER_PREFIX}{role}-{os.getpid()}-{next(_serial)}"
    args = [sys.executable, "-m", "celery", "--broker", broker.url, "flower"]
    args += ["--address=127.0.0.1", "--port={http}", "--enable_events=False"]
    if broker.management_url:  # its Broker page: the queues of this space's vhost
        args.append(f"--broker_api={broker.management_url.rstrip('/')}/api/")
    flower = lab.program(
        name,
        args,
        ports=["http"],
        env={"FLOWER_UNAUTHENTICATED_API": "true"},  # loopback only: see the module's note
        probe=http_probe("http://127.0.0.1:{http}/healthcheck"),
    )
    lab.launch(flower, start_timeout, lambda: stop_flower(lab, flower))
    return flower


def stop_flower(lab: Lab, flower: Program, timeout: float = 10.0) -> None:
    """Stop Flower, release its port, forget it."""
    lab.retire(flower, timeout)


def flowers(lab: Lab, *, quiet: bool = False) -> dict[str, Program]:
    """Flower on each of ``lab``'s brokers, its address printed (unless ``quiet``)."""
    started: dict[str, Program] = {}
    try:
        for role in lab.brokers:
            started[role] = start_flower(lab, role)
    except BaseException:
        for flower in started.values():
            stop_flower(lab, flower)
        raise
    if not quiet:
        for role, flower in started.items():
            print(f"Flower on the {role} broker: {flower_url(flower)}")
    return started


def running_flowers(lab: Lab) -> list[Program]:
    """The Flower programs the state file records (started by any process on this lab)."""
    return [c for c in lab.components("program") if c.name.startswith(FLOWER_PREFIX)]


def _switch(workers: Iterable[Any], command: str, timeout: float) -> dict[str, Any]:
    replies: dict[str, Any] = {}
    for worker in workers:
        for reply in worker.app.control.broadcast(
            command, destination=[worker.hostname], reply=True, timeout=timeout
        ):
            replies.update(reply)
        answer = replies.get(worker.hostname)
        if answer is None:
            raise NotWatchable(f"worker {worker.name} did not answer {command} within {timeout} s")
        if "error" in answer:
            raise NotWatchable(
                f"worker {worker.name} cannot send events ({answer['error']}): the lab starts its "
                "workers without an event dispatcher, to keep measurements clean. Start it with "
                "start_worker(..., watchable=True) to watch it with Flower."
            )
    return replies


def watch_where_possible(
    workers: Iterable[Any], timeout: float = 2.0
) -> tuple[list[Any], dict[str, str]]:
    """Task events on for each of ``workers`` that can send them; returns those, and why each
    other one cannot (by name). Switch them off again with :func:`stop_watching`."""
    watched, refused = [], {}
    for worker in workers:
        try:
            _switch([worker], "enable_events", timeout)
            watched.append(worker)
        except NotWatchable as exc:
            refused[worker.name] = str(exc)
    return watched, refused


def stop_watching(workers: Iterable[Any], timeout: float = 2.0) -> None:
    """Task events off again for ``workers`` that still run."""
    with contextlib.suppress(NotWatchable):  # a worker gone meanwhile has nothing to undo
        _switch([w for w in workers if w.is_running()], "disable_events", timeout)


def wait_idle(workers: Iterable[Any], timeout: float = 10.0) -> None:
    """Return once none of ``workers`` has a task in hand (Celery's ``inspect active``).

    A caller holds a task's result as soon as the pool child has published it; the worker's main
    process reports the task done (and sends ``task-succeeded``, if events are on) a moment
    later. Events switched on in that moment report a task that ran before them: wait for this
    first to count exactly what was watched. Raises :class:`TimeoutError` after ``timeout``."""

    def idle(worker: Any) -> bool:
        inspect = worker.app.control.inspect(destination=[worker.hostname], timeout=1.0)
        replies = inspect.active() or {}
        return worker.hostname in replies and not replies[worker.hostname]

    for worker in workers:
        try:
            wait_until(lambda w=worker: idle(w), timeout=timeout, interval=0.05)
        except TimeoutError:
            raise TimeoutError(
                f"worker {worker.name} still had a task in hand after {timeout} s"
            ) from None


@contextlib.contextmanager
def watching(workers: Iterable[Any], timeout: float = 2.0) -> Iterator[dict[str, Any]]:
    """Task events on for ``workers`` (Celery's ``enable_events``; each started with
    ``watchable=True``, else :class:`NotWatchable` says so) while the block runs, off again
    after it (``disable_events``), whatever happened in it. Yields each worker's reply."""
    workers = list(workers)
    replies = _switch(workers, "enable_events", timeout)
    try:
        yield replies
    finally:
        stop_watching(workers, timeout)
