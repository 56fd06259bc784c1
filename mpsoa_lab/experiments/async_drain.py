"""Async tasks drained by workers: the harness of notebook 05, without the concept it teaches.

The notebook publishes the tasks itself (what is sent, and when, is the lesson); this module
does the rest of a run and reads it back:

* waiting for the workers: :func:`consumer_count` (a passive ``queue.declare``, answered by the
  queue), :func:`worker_qos` (each worker's ``basic.qos`` and pool, from Celery's ``inspect``),
  :func:`worker_group` (fresh workers that all consume, stopped at the end, also on error);
* waiting for the work: :func:`executed`, :func:`executions` (the service's execution log) and
  :func:`wait_processed`, with a progress bar;
* reading a run back: :class:`BurstRun` (a burst drained by ``n`` workers), the round-robin
  rotation (:func:`rotation_names`, :func:`rotation_kept`, :func:`rotation_prefix`),
  :class:`MixedRun` (one long task published first, then short ones) and two text tables,
  :func:`drain_table` and :func:`mixed_table`;
* :func:`body_bytes`, the size of a task message's body as Celery serializes it.

Everything that reads a run is pure (traces, samples and log rows in, figures out) and is
unit-tested without a broker; the rest is tested on the lab's brokers.
"""

from __future__ import annotations

import contextlib
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..observe.progressbar import progress
from ..observe.tracing import TaskTrace
from ..plumbing.util import wait_until
from ..running.workers import Worker, start_workers, stop_all

__all__ = [
    "consumer_count",
    "body_bytes",
    "executed",
    "executions",
    "wait_processed",
    "worker_qos",
    "WorkerGroup",
    "worker_group",
    "BurstRun",
    "rotation_names",
    "rotation_kept",
    "rotation_prefix",
    "drain_table",
    "MixedRun",
    "mixed_table",
]


# -- the queue and the workers ---------------------------------------------------------------


def consumer_count(url: str, queue: str) -> int:
    """Consumers on ``queue`` now: a passive ``queue.declare``, answered by the queue itself."""
    from kombu import Connection

    with Connection(url) as conn:
        return conn.default_channel.queue_declare(queue, passive=True).consumer_count


def body_bytes(app: Any, task: str, **kwargs: Any) -> int:
    """Bytes of the body of a ``task(**kwargs)`` message, serialized as ``app`` would (JSON)."""
    from kombu.serialization import dumps

    message = app.amqp.create_task_message(str(uuid.uuid4()), task, (), kwargs)
    return len(dumps(message.body, serializer=app.conf.task_serializer)[2])


def worker_qos(workers: Sequence[Worker], timeout: float = 5.0) -> dict[str, dict[str, Any]]:
    """Each worker's own account (Celery's ``inspect().stats()``): ``prefetch_count`` (the
    ``basic.qos`` it asked for), ``concurrency`` (pool processes) and ``pool`` (its class)."""
    hostnames = [w.hostname for w in workers]
    stats = workers[0].app.control.inspect(hostnames, timeout=timeout).stats() or {}
    missing = sorted(set(hostnames) - set(stats))
    if missing:
        raise RuntimeError(f"no stats from {', '.join(missing)} within {timeout:.0f} s")
    return {
        host: {
            "prefetch_count": s["prefetch_count"],
            "concurrency": s["pool"]["max-concurrency"],
            "pool": s["pool"]["implementation"].split(":")[-1],
        }
        for host, s in stats.items()
    }


@dataclass
class WorkerGroup:
    """Workers started together on one queue, and what each said about itself when ready."""

    workers: list[Worker]
    qos: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def hostnames(self) -> list[str]:
        return [w.hostname for w in self.workers]


@contextlib.contextmanager
def worker_group(
    lab: Any, service: str, kind: str, count: int, *, queue: str, **options: Any
) -> Iterator[WorkerGroup]:
    """Start ``count`` fresh workers of ``service`` (``options`` as for
    :func:`~mpsoa_lab.running.workers.start_worker`), wait until the broker counts ``count``
    consumers on ``queue``, read their qos; stop them all at the end, also when the body raises."""
    workers = start_workers(lab, service, kind, count, **options)
    try:
        url = (lab.async_ if kind == "async" else lab.sync).url
        wait_until(lambda: consumer_count(url, queue) == count, timeout=10)
        yield WorkerGroup(workers, worker_qos(workers))
    finally:
        stop_all(workers)


# -- the service's execution log -------------------------------------------------------------


def executed(storage: Any, task: str) -> int:
    """Runs of ``task`` in the service's execution log (one row per finished run)."""
    rows = storage.query("SELECT COUNT(*) AS n FROM executions WHERE task_name = ?", (task,))
    return rows[0]["n"]


def executions(storage: Any, task_ids: Iterable[str]) -> list[dict[str, Any]]:
    """The execution log's rows of these task ids (one per run: worker, pid, times, success)."""
    wanted = set(task_ids)
    return [e for e in storage.executions() if e["task_id"] in wanted]


def wait_processed(
    storage: Any,
    task: str,
    total: int,
    *,
    desc: str = "processed",
    timeout: float = 120.0,
    interval: float = 0.2,
) -> float:
    """Show a progress bar until the execution log holds ``total`` runs of ``task``; return
    the epoch time at which it did. Raises TimeoutError (with the count) after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    with progress(total=total, desc=desc, unit="task") as bar:
        while bar.n < total:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{bar.n} of {total} {task} processed after {timeout:.0f} s")
            time.sleep(interval)
            bar.update(min(total, executed(storage, task)) - bar.n)
    return time.time()


# -- (a) a burst drained by n workers --------------------------------------------------------


@dataclass
class BurstRun:
    """One burst: published at ``first_publish`` (epoch s) in ``publish_seconds``, drained by
    ``workers`` (hostnames, in start order). ``runs`` are the execution log's rows of its
    tasks, ``traces`` their traces in publish order, ``series`` the queue's depth
    (:meth:`~mpsoa_lab.observe.monitor.QueueMonitor.series`, ``t`` after the first publish)."""

    workers: list[str]
    first_publish: float
    publish_seconds: float
    runs: list[dict[str, Any]]
    traces: list[TaskTrace]
    series: dict[str, list]

    @classmethod
    def read(
        cls,
        workers: Sequence[Worker | str],
        tracer: Any,
        storage: Any,
        monitor: Any,
        first_publish: float,
        publish_seconds: float,
        *,
        queue: str | None = None,
        wait: float = 10.0,
    ) -> BurstRun:
        """Read a finished burst back: the execution log's rows of the tasks ``tracer``
        published, their traces (waiting up to ``wait`` s for the last ``finished`` record), and
        ``monitor``'s samples of ``queue`` from half a second before the first publish on."""
        return cls(
            [w if isinstance(w, str) else w.hostname for w in workers],
            first_publish,
            publish_seconds,
            executions(storage, tracer.task_ids),
            tracer.collect(wait=wait),
            monitor.series(queue, t0=first_publish, since=first_publish - 0.5, until=time.time()),
        )

    @property
    def published(self) -> int:
        return len(self.traces)

    @property
    def executions(self) -> int:
        return len(self.runs)

    @property
    def distinct(self) -> int:
        """Task ids run at least once."""
        return len({e["task_id"] for e in self.runs})

    @property
    def shares(self) -> Counter:
        """Runs per worker hostname (from the execution log)."""
        return Counter(e["hostname"] for e in self.runs)

    @property
    def drain_seconds(self) -> float:
        """From the first publish to the end of the last run."""
        return max(e["finished"] for e in self.runs) - self.first_publish

    @property
    def publish_rate(self) -> float:
        """Messages per second the edge published."""
        return self.published / self.publish_seconds

    @property
    def drain_rate(self) -> float:
        """Tasks per second the workers finished, from the first publish on."""
        return self.executions / self.drain_seconds

    @property
    def ms_per_task(self) -> float:
        """Milliseconds one worker spent per task: drain time x workers / tasks."""
        return 1000 * self.drain_seconds * len(self.workers) / self.executions

    def _exact(self) -> list[int]:
        return [v for v in self.series["ready_now"] if v is not None]

    @property
    def peak_ready(self) -> int:
        """The most messages ready at one sample (passive ``queue.declare``)."""
        return max(self._exact(), default=0)

    @property
    def last_ready(self) -> int | None:
        """Messages ready at the last sample (``None`` if there was none)."""
        exact = self._exact()
        return exact[-1] if exact else None

    def api_at_peak(self) -> dict[str, Any]:
        """At the sample with the most ready messages: that count and what the management API
        said at the same moment (``ready``, ``unacked``)."""
        s = self.series
        i = max(range(len(s["t"])), key=lambda k: s["ready_now"][k] or 0)
        return {"ready_now": s["ready_now"][i], "ready": s["ready"][i], "unacked": s["unacked"][i]}

    def order(self) -> list[str | None]:
        """The worker that received each message, in publish order."""
        return [t.worker for t in self.traces]


def rotation_names(order: Sequence[str | None], letters: str = "ABCDEFGH") -> dict[str, str]:
    """A letter per worker, in the order of each one's first message (so a strict rotation
    reads A B C D A B C D ...)."""
    names: dict[str, str] = {}
    for worker in order:
        if worker is not None and worker not in names:
            names[worker] = letters[len(names)]
    return names


def rotation_kept(order: Sequence[str | None], n: int) -> int:
    """Messages after the first ``n`` that went to the same worker as the message ``n``
    places before them: the ones that kept a strict rotation among ``n`` workers."""
    return sum(1 for i in range(n, len(order)) if order[i] == order[i - n])


def rotation_prefix(order: Sequence[str | None], n: int) -> int:
    """How many messages from the first on went out in a strict rotation of ``n`` different
    workers (each one to the worker ``n`` places before it); 0 if the first ``n`` did not
    go to ``n`` different workers."""
    if len(order) < n or None in order[:n] or len(set(order[:n])) < n:
        return 0
    k = n
    while k < len(order) and order[k] == order[k - n]:
        k += 1
    return k


def drain_table(bursts: Mapping[int, BurstRun], task_seconds: float) -> str:
    """The bursts side by side: publish rate, drain time and rate, speed-up over the first
    row, milliseconds per task and worker (against the ``task_seconds`` each task sleeps),
    peak of ready messages."""
    first = bursts[min(bursts)]
    lines = [
        f"{'workers':>7}{'publish msg/s':>15}{'drain s':>9}{'tasks/s':>9}{'speed-up':>10}"
        f"{'ms/task':>9}{'peak ready':>12}"
    ]
    for n, b in sorted(bursts.items()):
        lines.append(
            f"{n:>7}{b.publish_rate:>15.0f}{b.drain_seconds:>9.2f}{b.drain_rate:>9.0f}"
            f"{first.drain_seconds / b.drain_seconds:>10.2f}{b.ms_per_task:>9.1f}{b.peak_ready:>12}"
        )
    lines.append(
        f"(ms/task: time one worker spent per task, {1000 * task_seconds:.0f} ms of it asleep)"
    )
    return "\n".join(lines)


# -- (c) one long task, then short ones --------------------------------------------------------


@dataclass
class MixedRun:
    """A long task published first, then short ones, run by ``hostnames``; ``qos`` maps each
    hostname to the ``basic.qos`` prefetch count it asked for; ``traces`` in publish order."""

    traces: list[TaskTrace]
    hostnames: list[str]
    qos: dict[str, int] = field(default_factory=dict)

    @property
    def long(self) -> TaskTrace:
        return self.traces[0]

    @property
    def shorts(self) -> list[TaskTrace]:
        return self.traces[1:]

    @property
    def workers(self) -> list[str]:
        """The long task's worker first, then the others."""
        return [self.long.worker] + [h for h in self.hostnames if h != self.long.worker]

    @property
    def held(self) -> list[TaskTrace]:
        """Short tasks the long task's worker received while the long task was still running."""
        long = self.long
        return [t for t in self.shorts if t.worker == long.worker and t.received < long.finished]

    @property
    def total(self) -> float:
        """From the first publish to the last finish."""
        return max(t.finished for t in self.traces) - min(t.published for t in self.traces)

    @property
    def short_latency(self) -> list[float]:
        """Each short task, published to finished."""
        return [t.finished - t.published for t in self.shorts]

    @property
    def per_worker(self) -> Counter:
        return Counter(t.worker for t in self.traces)


def mixed_table(mixed: Mapping[str, MixedRun]) -> str:
    """One line per set-up: the long task's worker's qos, tasks per worker (long task's worker
    first), short tasks held behind the long one, short-task p50 and max, all done."""
    lines = [
        f"{'set-up':<24}{'qos':>5}{'tasks per worker':>18}{'held behind long':>18}"
        f"{'short p50 s':>13}{'short max s':>13}{'all done s':>12}"
    ]
    for setup, m in mixed.items():
        tasks = " + ".join(str(m.per_worker[w]) for w in m.workers)
        lines.append(
            f"{setup:<24}{m.qos.get(m.workers[0], '?'):>5}{tasks:>18}{len(m.held):>18}"
            f"{statistics.median(m.short_latency):>13.2f}{max(m.short_latency):>13.2f}"
            f"{m.total:>12.2f}"
        )
    return "\n".join(lines)
