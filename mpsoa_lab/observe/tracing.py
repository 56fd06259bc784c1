"""Per-message tracing from Celery's own signals: published, received, started, finished, returned.

Each process that takes part writes what it sees to a file of its own under
``<lab home>/trace/`` (JSON lines, one ``os.write`` per record on an append-only file, no
fsync), and :func:`collect` merges the files into one :class:`TaskTrace` per task id:

===============  =======================  =====================================================
Event            Where                    Celery signal
===============  =======================  =====================================================
``published``    the publisher (edge)     ``before_task_publish``; its time also travels in
                                          the message as the header ``mpsoa_published``
``received``     worker, main process     ``task_received``: the worker got the message
``started``      worker, pool process     ``task_prerun``
``finished``     worker, pool process     ``task_postrun``
``returned``     the caller of a sync     :meth:`Tracer.get`: the result reached the caller
                 call
===============  =======================  =====================================================

One more record, not a step of every message's life: ``acked``, written by the worker's main
process right after it sent an *early* acknowledgement (Celery's ``Request.on_accepted``, once
a pool process has taken the task; no signal marks it). It can come after ``started``: a fault
scenario that kills a worker to show what early acks lose waits for it
(:func:`mpsoa_lab.experiments.faults.wait_acked`).

All times are ``time.time()`` on one machine, so they compare across processes. From them:
queue wait = received - published (in the broker), prefetch wait = started - received (in the
worker, behind other tasks), run = finished - started, and for a sync call the round trip =
returned - published. Celery sends ``task_postrun`` after the task's result has been sent, so
a sync caller may hold the result a moment *before* the worker writes ``finished``: order the
events published <= received <= started <= finished, and started <= returned, but not
finished <= returned.

Signals rather than Celery's task events: events travel through the broker that is being
measured (an extra exchange, extra messages per task and a receiver to run), signals are a
function call in the process that already holds the information.

Workers trace when started with ``start_worker(..., trace=True)``: that sets
:data:`TRACE_ENV` to the trace directory and the service module connects the worker-side
handlers at import (:func:`connect_worker_from_env`). The publisher side is a context
manager in the edge's process::

    with Tracer(lab) as tracer:
        results = [app.send_task("mpledger.sync.entry_count") for _ in range(10)]
        values = [tracer.get(r, timeout=10) for r in results]
    traces = tracer.collect()          # one TaskTrace per task published in the block

What the tracing costs is measured, not assumed (:mod:`mpsoa_lab.experiments.tracing_cost`); the
picture of a run, one row per worker, is :func:`mpsoa_lab.observe.timeline.plot_timeline`.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "TRACE_ENV",
    "HEADER",
    "EVENTS",
    "trace_dir",
    "TraceWriter",
    "Tracer",
    "TaskTrace",
    "connect_worker",
    "connect_worker_from_env",
    "read_records",
    "collect",
]

#: Environment variable naming the trace directory; a worker that has it traces every task.
TRACE_ENV = "MPSOA_TRACE_DIR"
#: The message header that carries the publish time to the worker.
HEADER = "mpsoa_published"
#: The events of one message's life, in order.
EVENTS = ("published", "received", "started", "finished", "returned")

_uids = itertools.count(1)


def trace_dir(lab: Any) -> Path:
    """Where the traces of ``lab``'s space go: ``<space home>/trace`` (the lab home for the
    default space)."""
    return Path(getattr(lab, "space_home", None) or lab.home) / "trace"


class TraceWriter:
    """Appends one JSON line per record to ``<directory>/<role>-<pid>.jsonl``.

    The file is opened on first use in each process (a pool process forked from a worker
    gets a file of its own) and written with one ``os.write`` per record: no buffering to
    lose, no lock between processes, no fsync.
    """

    def __init__(self, directory: Path | str, role: str):
        self.directory = Path(directory)
        self.role = role
        self._fd: int | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        return self.directory / f"{self.role}-{os.getpid()}.jsonl"

    def write(
        self,
        event: str,
        task_id: str | None,
        task: str | None,
        host: str | None = None,
        t: float | None = None,
        **extra: Any,
    ) -> None:
        record = {
            "e": event,
            "id": task_id,
            "task": task,
            "host": host,
            "pid": os.getpid(),
            "t": time.time() if t is None else t,
            **extra,
        }
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        with self._lock:
            if self._fd is None or self._pid != os.getpid():
                self.directory.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                self._pid = os.getpid()
            os.write(self._fd, line)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None and self._pid == os.getpid():
                os.close(self._fd)
            self._fd = self._pid = None


# -- worker side ---------------------------------------------------------------------------------

_worker: dict[str, Any] = {"writer": None}


def connect_worker(directory: Path | str) -> TraceWriter:
    """Connect the worker-side handlers in this process (idempotent): every task this
    process receives, starts and finishes is written to ``directory``."""
    from celery import signals

    if _worker["writer"] is not None:
        return _worker["writer"]
    writer = TraceWriter(directory, "worker")

    def on_received(sender: Any = None, request: Any = None, **_: Any) -> None:
        published = request.request_dict.get(HEADER) if request is not None else None
        writer.write("received", request.id, request.name, request.hostname, published=published)

    def on_prerun(
        sender: Any = None, task_id: str | None = None, task: Any = None, **_: Any
    ) -> None:
        writer.write("started", task_id, task.name, task.request.hostname)

    def on_postrun(
        sender: Any = None,
        task_id: str | None = None,
        task: Any = None,
        state: str | None = None,
        **_: Any,
    ) -> None:
        writer.write("finished", task_id, task.name, task.request.hostname, state=state)

    _record_early_acks(writer)
    signals.task_received.connect(on_received, weak=False, dispatch_uid="mpsoa-trace-received")
    signals.task_prerun.connect(on_prerun, weak=False, dispatch_uid="mpsoa-trace-prerun")
    signals.task_postrun.connect(on_postrun, weak=False, dispatch_uid="mpsoa-trace-postrun")
    _worker["writer"] = writer
    return writer


def _record_early_acks(writer: TraceWriter) -> None:
    """Write ``acked`` once Celery's ``Request.on_accepted`` has sent a task's early ack (the
    frame is written to the socket before it returns)."""
    from celery.worker.request import Request

    accepted = Request.on_accepted
    if getattr(accepted, "_mpsoa_traced", False):
        return

    def on_accepted(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = accepted(self, *args, **kwargs)
        if not self.task.acks_late:
            writer.write("acked", self.id, self.name, self.hostname)
        return result

    on_accepted._mpsoa_traced = True  # type: ignore[attr-defined]
    Request.on_accepted = on_accepted  # type: ignore[method-assign]


def connect_worker_from_env() -> TraceWriter | None:
    """Connect the worker-side handlers if :data:`TRACE_ENV` names a directory."""
    directory = os.environ.get(TRACE_ENV, "").strip()
    return connect_worker(directory) if directory else None


# -- publisher side ------------------------------------------------------------------------------


class Tracer:
    """Publisher-side tracing in this process, between :meth:`start` and :meth:`stop`.

    Every task published in this process meanwhile gets the header :data:`HEADER` and a
    ``published`` record; :meth:`get` waits for a sync call's result and records when it came
    back; :meth:`collect` returns the traces of the tasks published here.
    """

    def __init__(self, lab_or_directory: Any):
        directory = (
            lab_or_directory
            if isinstance(lab_or_directory, (str, Path))
            else trace_dir(lab_or_directory)
        )
        self.directory = Path(directory)
        self.writer = TraceWriter(self.directory, "publisher")
        self.task_ids: list[str] = []
        self._uid = f"mpsoa-trace-publish-{next(_uids)}"
        self._active = False
        self._first_start: float | None = None

    def _on_publish(self, sender: Any = None, headers: dict | None = None, **_: Any) -> None:
        if headers is None or "id" not in headers:  # protocol 1 messages carry no headers
            return
        now = time.time()
        headers[HEADER] = now
        self.task_ids.append(headers["id"])
        self.writer.write("published", headers["id"], sender, t=now)

    def start(self) -> Tracer:
        from celery import signals

        signals.before_task_publish.connect(self._on_publish, weak=False, dispatch_uid=self._uid)
        self._active = True
        if self._first_start is None:
            self._first_start = time.time()
        return self

    def stop(self) -> None:
        from celery import signals

        if self._active:
            signals.before_task_publish.disconnect(dispatch_uid=self._uid)
            self._active = False
        self.writer.close()

    def __enter__(self) -> Tracer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def get(self, result: Any, **options: Any) -> Any:
        """``result.get(**options)``, recording when the result reached the caller."""
        value = result.get(**options)
        self.writer.write("returned", result.id, None, t=time.time())
        return value

    def collect(self, *, wait: float = 0.0, complete: bool = True) -> list[TaskTrace]:
        """The traces of the tasks published through this tracer, in publish order.

        With ``wait``, poll up to that many seconds until every task has finished (the
        pool process writes ``finished`` a moment after the task's effects are visible).
        """
        deadline = time.monotonic() + wait
        while True:
            # files untouched since this tracer first started hold none of its tasks
            since = None if self._first_start is None else self._first_start - 1.0
            traces = collect(self.directory, task_ids=self.task_ids, modified_since=since)
            done = all(t.finished is not None for t in traces)
            if not complete or done or time.monotonic() >= deadline:
                return traces
            time.sleep(0.05)


# -- reading the traces back ---------------------------------------------------------------------


@dataclass
class TaskTrace:
    """One message's life. Times are epoch seconds; ``None`` where nothing was recorded.

    When a message was delivered more than once (``deliveries > 1``), ``received``,
    ``started``, ``finished`` and ``worker`` are those of the last delivery.
    """

    task_id: str
    task: str | None = None
    published: float | None = None
    received: float | None = None
    started: float | None = None
    finished: float | None = None
    returned: float | None = None
    worker: str | None = None
    pid: int | None = None
    state: str | None = None
    deliveries: int = 0
    runs: int = 0

    @staticmethod
    def _gap(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else b - a

    @property
    def queue_wait(self) -> float | None:
        """Seconds in the broker: received - published."""
        return self._gap(self.published, self.received)

    @property
    def prefetch_wait(self) -> float | None:
        """Seconds held by the worker before running: started - received."""
        return self._gap(self.received, self.started)

    @property
    def run(self) -> float | None:
        """Seconds running: finished - started."""
        return self._gap(self.started, self.finished)

    @property
    def round_trip(self) -> float | None:
        """A sync call as its caller saw it: returned - published."""
        return self._gap(self.published, self.returned)

    @property
    def total(self) -> float | None:
        """Published to finished."""
        return self._gap(self.published, self.finished)

    def as_dict(self) -> dict[str, Any]:
        row = {k: getattr(self, k) for k in self.__dataclass_fields__}
        row.update(
            queue_wait=self.queue_wait,
            prefetch_wait=self.prefetch_wait,
            run=self.run,
            round_trip=self.round_trip,
            total=self.total,
        )
        return row


def read_records(
    directory: Path | str, modified_since: float | None = None
) -> list[dict[str, Any]]:
    """Every record in the trace directory (a line cut short by a killed process is skipped);
    with ``modified_since`` (epoch seconds), only from files written to since then."""
    records = []
    for path in sorted(Path(directory).glob("*.jsonl")):
        if modified_since is not None:
            try:
                if path.stat().st_mtime < modified_since:
                    continue
            except FileNotFoundError:
                continue
        with open(path, "rb") as fh:
            for line in fh:
                try:
                    records.append(json.loads(line))
                except ValueError:
                    continue
    return records


def collect(
    directory: Any,
    task_ids: Iterable[str] | None = None,
    since: float | None = None,
    modified_since: float | None = None,
) -> list[TaskTrace]:
    """One :class:`TaskTrace` per task id, ordered by publish (else receive) time.

    ``directory`` is a path or a lab (``<lab home>/trace``). ``task_ids`` keeps only those
    tasks (in a lab home shared with other notebooks and tests, pass the ids you published);
    ``since`` keeps tasks published (else received) at or after that time;
    ``modified_since`` skips files nobody wrote to since then (a lab home keeps the traces of
    every earlier run).
    """
    if not isinstance(directory, (str, Path)):
        directory = trace_dir(directory)
    wanted = set(task_ids) if task_ids is not None else None
    traces: dict[str, TaskTrace] = {}
    for rec in sorted(read_records(directory, modified_since), key=lambda r: r["t"]):
        tid = rec.get("id")
        if tid is None or (wanted is not None and tid not in wanted):
            continue
        tr = traces.setdefault(tid, TaskTrace(tid))
        tr.task = tr.task or rec.get("task")
        event = rec["e"]
        if event == "published":
            tr.published = rec["t"]
        elif event == "received":
            tr.deliveries += 1
            tr.received, tr.worker = rec["t"], rec.get("host")
            tr.started = tr.finished = tr.state = None
            if tr.published is None and rec.get("published") is not None:
                tr.published = rec["published"]  # the header, when the publisher kept no file
        elif event == "started":
            tr.runs += 1
            tr.started, tr.pid = rec["t"], rec.get("pid")
            tr.worker = tr.worker or rec.get("host")
        elif event == "finished":
            tr.finished, tr.state = rec["t"], rec.get("state")
        elif event == "returned":
            tr.returned = rec["t"]
    out = list(traces.values())
    if since is not None:
        out = [t for t in out if (t.published or t.received or 0) >= since]
    return sorted(out, key=lambda t: t.published or t.received or float("inf"))
