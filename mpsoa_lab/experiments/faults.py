"""Fault scenarios without the plumbing: a lab that is always restored, and exact counts.

A fault scenario breaks things on purpose: it restarts a broker node, kills a worker with
SIGKILL, freezes one. :func:`restored` makes sure the lab is whole again afterwards, also when
a cell fails half way::

    with restored(lab) as scenario:
        worker = scenario.start_worker("mpledger", "async", config={"task_acks_late": True})
        ...                                   # kill it, restart a node, ...
    # here: every node of the lab runs and accepts AMQP, the scenario's workers are gone

:func:`tally` counts what happened to a set of published task ids, from three sources that
each see one part of it: the service's execution log (one row per finished run of a task),
the worker-side trace (one ``received`` record per delivery, one ``started`` per run) and the
broker (the task ids still in the queue, read through the management API). Nothing is
inferred from elapsed time or from totals: every figure is a set of task ids.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..observe.tracing import TaskTrace, read_records, trace_dir
from ..plumbing.management import Management
from ..running.lab import Lab, check_broker
from ..running.workers import Worker, start_worker

__all__ = [
    "Scenario",
    "restored",
    "restart_nodes",
    "drop_pooled_connections",
    "Tally",
    "tally",
    "queued_task_ids",
    "settled_task_ids",
    "wait_started",
    "wait_acked",
    "freeze_main_process",
    "negotiated_heartbeat",
]


class Scenario:
    """The workers one fault scenario started; :func:`restored` stops them at the end."""

    def __init__(self, lab: Lab):
        self.lab = lab
        self.workers: list[Worker] = []

    def start_worker(self, service: str, kind: str, **options: Any) -> Worker:
        """:func:`mpsoa_lab.running.workers.start_worker`, remembered for the clean-up."""
        worker = start_worker(self.lab, service, kind, **options)
        self.workers.append(worker)
        return worker


def drop_pooled_connections() -> None:
    """Forget every broker connection this process keeps in a pool.

    Celery apps share kombu's connection pools (one per broker URL, process-wide). After a
    node restart the pooled connections are dead sockets, and a remote-control call such as
    ``ping`` fails on one with ``ConnectionResetError`` instead of reconnecting. Publishing
    retries on its own; control calls and result consumers do not. This closes the pools and
    makes each app open fresh connections (what Celery itself does after a fork).
    """
    import kombu.pools
    from celery._state import _get_active_apps

    kombu.pools.reset()
    for app in list(_get_active_apps()):
        with contextlib.suppress(Exception):
            app._after_fork()


def restart_nodes(lab: Lab, roles: Iterable[str] = ("sync", "async")) -> float:
    """Restart the lab's nodes of ``roles`` gracefully, in parallel; return the seconds it took.

    Each node keeps its data and ports (:meth:`mpsoa_lab.running.lab.Lab.restart_node`); afterwards
    this process's pooled connections are dropped (:func:`drop_pooled_connections`).
    """
    from concurrent.futures import ThreadPoolExecutor

    roles = list(roles)
    for role in roles:
        lab.node(role, "restart")  # brokers given by URL: a clear NeedsLabNode, before anything
    with lab.exclusive(f"restarts the {' and '.join(roles)} broker(s)"):
        lab.refresh()
        started = time.monotonic()
        with ThreadPoolExecutor(max(1, len(roles))) as pool:
            list(pool.map(lab.restart_node, roles))
    drop_pooled_connections()
    return time.monotonic() - started


def _restore(lab: Lab, workers: list[Worker], timeout: float) -> None:
    for worker in workers:
        with contextlib.suppress(Exception):
            # a frozen worker cannot act on SIGKILL's aftermath
            os.kill(worker.process.pid, signal.SIGCONT)
        worker.kill()  # a no-op for a worker already killed by the scenario
    lab.refresh()
    restarted = False
    for role, node in lab.nodes.items():
        if not node.is_running():
            lab.start_node(role)
            restarted = True
    if restarted:
        drop_pooled_connections()
    for broker in lab.brokers.values():
        check_broker(broker.url, timeout=timeout)


@contextlib.contextmanager
def restored(lab: Lab, timeout: float = 30.0) -> Iterator[Scenario]:
    """Run a fault scenario and put the lab back, whatever happened in it.

    On the way in and out, the lab's node handles are refreshed from the state file (another
    process may have restarted a node). On the way out, also after an exception: the workers
    started through the yielded :class:`Scenario` are killed (those still running), every node of the lab that is not
    running is started again (keeping its data), and each broker must accept an AMQP
    connection within ``timeout`` seconds.

    A scenario has the lab to itself (:meth:`~mpsoa_lab.running.lab.Lab.exclusive`): a scenario of
    another notebook on the same lab waits for it, and says so.
    """
    with lab.exclusive("runs a fault scenario (restarts, kills or freezes)"):
        lab.refresh()
        scenario = Scenario(lab)
        try:
            yield scenario
        finally:
            _restore(lab, scenario.workers, timeout)


def freeze_main_process(worker: Worker) -> None:
    """SIGSTOP to the worker's main process only.

    Its pool processes keep running the tasks they already have, but the main process, which
    holds the broker connection, sends nothing: no ack, no new delivery. Kill the worker (or
    leave :func:`restored`) to end the freeze.
    """
    os.kill(worker.process.pid, signal.SIGSTOP)


def negotiated_heartbeat(broker: Any, worker: Worker, timeout: float = 15.0) -> int:
    """The heartbeat timeout (s) the broker agreed with ``worker``'s consumer connection.

    The worker's main process holds the connection; its local port is found with psutil and
    matched with the management API's list of connections (which lags a little behind a new
    connection, hence the polling). The consumer connection is the one with the largest
    timeout (the others of the process, if any, ask for none).
    """
    from urllib.parse import urlsplit

    import psutil

    port = urlsplit(broker.url).port or 5672
    deadline = time.monotonic() + timeout
    while True:
        local = {
            c.laddr.port
            for c in psutil.Process(worker.process.pid).net_connections("tcp")
            if c.raddr and c.raddr.port == port
        }
        with Management.for_broker(broker) as api:
            agreed = [
                c.get("timeout") or 0 for c in api.connections() if c.get("peer_port") in local
            ]
        if agreed and max(agreed):
            return max(agreed)
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"no connection of worker {worker.name} with a heartbeat in the "
                f"management API within {timeout:.0f} s (seen: {agreed})"
            )
        time.sleep(0.25)


def wait_started(
    lab: Lab, task_ids: Iterable[str], count: int | None = None, timeout: float = 30.0
) -> set[str]:
    """Block until ``count`` (default: all) of ``task_ids`` have started on a traced worker.

    Reads the worker-side trace (``started`` records from ``task_prerun``); the workers must be
    started with ``trace=True``. Returns the ids seen started.
    """
    return _wait_records(lab, "started", task_ids, count, timeout)


def wait_acked(lab: Lab, task_ids: Iterable[str], timeout: float = 30.0) -> set[str]:
    """Block until a traced worker has sent the early ack of every one of ``task_ids``.

    A prefork worker acknowledges early from its main process once a pool process has taken
    the task, which on a loaded machine can come after the task's ``started`` trace: a worker
    killed in between has its message requeued instead of lost. A kill that is to show what
    early acks lose waits for this (the ``acked`` records of :mod:`mpsoa_lab.observe.tracing`).
    """
    return _wait_records(lab, "acked", task_ids, None, timeout)


def _wait_records(
    lab: Lab, event: str, task_ids: Iterable[str], count: int | None, timeout: float
) -> set[str]:
    wanted = set(task_ids)
    need = len(wanted) if count is None else count
    directory = trace_dir(lab)
    since = time.time() - 3600
    deadline = time.monotonic() + timeout
    while True:
        seen = {
            r["id"]
            for r in read_records(directory, modified_since=since)
            if r.get("e") == event and r.get("id") in wanted
        }
        if len(seen) >= need:
            return seen
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(seen)} of {need} tasks {event} within {timeout:.0f} s")
        time.sleep(0.05)


def queued_task_ids(broker: Any, queue: str) -> list[str]:
    """The task id of every message ready in ``queue``, read on the broker (and put back).

    Uses the management API's "get messages" with ``ack_requeue_true``: the messages stay in
    the queue, marked redelivered. Celery puts the task id in the ``id`` header.
    """
    with Management.for_broker(broker) as api:
        ready = api.queue(queue).get("messages_ready", 0)
        from kombu import Connection  # the API's count lags; ask the queue itself too

        with Connection(broker.url) as conn:
            ready = max(
                ready, conn.default_channel.queue_declare(queue, passive=True).message_count
            )
        if not ready:
            return []
        messages = api.get_messages(queue, count=ready, ackmode="ack_requeue_true")
    return [(m["properties"].get("headers") or {}).get("id") for m in messages]


def settled_task_ids(
    broker: Any, queue: str, *, settle: float = 1.0, timeout: float = 15.0
) -> list[str]:
    """:func:`queued_task_ids` once the queue's count has stopped changing for ``settle``
    seconds (at most ``timeout``). A quorum queue whose node was just started counts its
    messages as it replays its log: read at once, it reported tens of messages fewer than it
    held (seen on RabbitMQ 3.10, in 2 of 5 crashes under a publisher; notebook 14)."""
    ids = queued_task_ids(broker, queue)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(settle)
        again = queued_task_ids(broker, queue)
        if len(again) == len(ids):
            return again
        ids = again
    return ids


@dataclass(frozen=True)
class Tally:
    """What became of a set of published tasks; every figure counts task ids or runs.

    ``published``  tasks sent;
    ``delivered``  tasks a worker received at least once (trace ``received``);
    ``deliveries`` receptions in total (a redelivered task counts each time);
    ``started``    runs started in total (trace ``started``; a run cut by a kill counts);
    ``processed``  tasks with at least one finished, successful run (execution log);
    ``duplicated`` finished runs beyond the first, summed over tasks (execution log);
    ``in_queue``   tasks still waiting in the queue (their ids read on the broker);
    ``lost``       tasks neither processed nor in the queue: nobody will ever run them.
    """

    published: int
    delivered: int
    processed: int
    lost: int
    duplicated: int
    deliveries: int = 0
    started: int = 0
    in_queue: int = 0
    lost_ids: tuple[str, ...] = field(default=(), repr=False)
    duplicated_ids: tuple[str, ...] = field(default=(), repr=False)

    COLUMNS = ("published", "delivered", "processed", "lost", "duplicated")

    def row(self) -> dict[str, int]:
        """The five figures of the issue's table, in order."""
        return {name: getattr(self, name) for name in self.COLUMNS}

    def as_dict(self) -> dict[str, int]:
        return {
            **self.row(),
            "deliveries": self.deliveries,
            "started": self.started,
            "in_queue": self.in_queue,
        }


def tally(
    task_ids: Iterable[str],
    executions: Iterable[dict[str, Any]],
    *,
    traces: Iterable[TaskTrace] = (),
    queued: Iterable[str | None] = (),
) -> Tally:
    """Count what became of ``task_ids``.

    ``executions`` is the service's execution log (``service.storage.executions()``);
    ``traces`` the :class:`~mpsoa_lab.observe.tracing.TaskTrace` records of those tasks (without
    them, ``delivered`` counts the tasks that have a run in the log); ``queued`` the task ids still in
    the queue (:func:`queued_task_ids`), which are neither lost nor processed yet.
    """
    ids = list(dict.fromkeys(task_ids))
    wanted = set(ids)
    finished = Counter(
        e["task_id"] for e in executions if e["task_id"] in wanted and e["succeeded"]
    )
    traces = [t for t in traces if t.task_id in wanted]
    in_queue = {tid for tid in queued if tid in wanted}
    if traces:
        delivered = sum(1 for t in traces if t.deliveries)
    else:
        delivered = len(finished)
    lost = [tid for tid in ids if tid not in finished and tid not in in_queue]
    dup = [tid for tid, n in finished.items() if n > 1]
    return Tally(
        published=len(ids),
        delivered=delivered,
        processed=len(finished),
        lost=len(lost),
        duplicated=sum(n - 1 for n in finished.values()),
        deliveries=sum(t.deliveries for t in traces),
        started=sum(t.runs for t in traces),
        in_queue=len(in_queue),
        lost_ids=tuple(lost),
        duplicated_ids=tuple(sorted(dup)),
    )
