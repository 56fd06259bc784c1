"""The fault drivers of notebook 07: each scenario's steps, so a cell keeps what it teaches.

Every driver runs inside :func:`~mpsoa_lab.experiments.faults.restored` (the lab is whole again
afterwards, also when a step fails) and returns what it counted, never an estimate:

* :func:`kill_mid_task`: a worker killed (SIGKILL) while its first task runs;
* :func:`kill_after_effect`: a worker killed after its tasks committed their effect and before
  their acks left (its main process frozen first), so late acks run them again every time;
* :func:`sync_call`, :func:`sync_calls_through_outage`: a sync caller, and its sync node stopped
  under it, then started again;
* :func:`publish_unbound`: tasks published after their queue (and binding) was deleted;
* :func:`crash_while_publishing`: the async node killed while a thread publishes;
* :func:`freeze_and_watch`: workers frozen with SIGSTOP, their queues sampled on the broker.

Then the reporting helpers: :func:`counted` (a :func:`~mpsoa_lab.experiments.faults.tally` of
what a :class:`~mpsoa_lab.observe.tracing.Tracer` saw published), :func:`format_tallies`,
:class:`OnePage` (each failure, 2014 against recommended) and :func:`plot_fault_costs`.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..observe.tracing import Tracer
from ..plumbing.management import Management
from ..plumbing.util import ready_messages, wait_until
from ..running.lab import Lab
from .faults import (
    Tally,
    freeze_main_process,
    negotiated_heartbeat,
    queued_task_ids,
    restored,
    settled_task_ids,
    tally as tally_ids,
    wait_acked,
    wait_started,
)

__all__ = [
    "NO_REPLY",
    "counted",
    "format_tallies",
    "KillRun",
    "kill_mid_task",
    "kill_after_effect",
    "sync_call",
    "sync_calls_through_outage",
    "publish_unbound",
    "CrashRun",
    "crash_while_publishing",
    "FreezeRun",
    "freeze_and_watch",
    "OnePage",
    "plot_fault_costs",
]

ASYNC_QUEUE = "mpledger.async"


def counted(tracer: Tracer, service: Any, broker: Any, queue: str) -> Tally:
    """What became of the tasks ``tracer`` saw published: ``service``'s execution log (a
    service module), the workers' traces, and the ids still in ``queue`` on ``broker``."""
    return tally_ids(
        tracer.task_ids,
        service.service.storage.executions(),
        traces=tracer.collect(),
        queued=queued_task_ids(broker, queue),
    )


#: What a sync caller gets when no reply ever comes: its own time-out, or its reply consumer's
#: connection lost while it waited (which of the two varies from run to run). An error raised at
#: once (``OperationalError``) is an answer: the caller knows at once.
NO_REPLY = ("TimeoutError", "RecoverableConnectionError")


def format_tallies(results: Mapping[str, Tally], names: Iterable[str]) -> str:
    """The tallies of ``names`` as a table: one row per scenario, the five columns of a Tally."""
    names = list(names)
    width = max([44, *(len(name) + 2 for name in names)])  # 44 unless a name is longer
    lines = [f"{'scenario':<{width}}" + "".join(f"{c:>11}" for c in Tally.COLUMNS)]
    for name in names:
        values = results[name].row().values()
        lines.append(f"{name:<{width}}" + "".join(f"{v:>11}" for v in values))
    return "\n".join(lines)


def _finished(storage: Any) -> set[str]:
    return {e["task_id"] for e in storage.executions()}


@dataclass(frozen=True)
class KillRun:
    """A worker killed during a scenario: the tally, and what the broker held right after."""

    tally: Tally
    requeued: tuple[str, ...]  # task ids back in the queue right after the kill
    first: str  # the task that was running when the worker was killed


def kill_mid_task(
    lab: Lab,
    edge: Any,
    config: dict,
    *,
    tasks: int = 3,
    seconds: float = 2.0,
    prefetch_multiplier: int | None = 1,
    worker_options: Mapping[str, Any] | None = None,
) -> KillRun:
    """One async ``mpledger`` worker (prefork, concurrency 1, ``prefetch_multiplier``, where
    None is Celery's default of 4; traced, Celery settings ``config``) gets ``tasks``
    ``reconcile(seconds)`` tasks; once the trace shows the first started, the worker and its
    pool get SIGKILL. A fresh worker with the same settings takes what the broker still has;
    counted when every task that can run has run. ``worker_options`` go to
    :func:`~mpsoa_lab.running.workers.start_worker` as well (e.g. ``force_root``).

    The kill always lands mid-task: this process holds the service's database from before the
    tasks are sent until the kill, so the first run cannot write its result (after its
    ``seconds`` of work) before it dies, however late a loaded machine notices that it started.
    (Without that, a kill that came after the run had finished was counted as no loss.) With
    early acks it also lands after the worker sent the running task's ack
    (:func:`~mpsoa_lab.experiments.faults.wait_acked`): the worker's main process sends it once
    its pool has taken the task, which can come after the task started; killed before, the
    task is requeued instead of lost."""
    from ..design.services import mpledger

    storage = mpledger.service.storage
    storage.reset()
    options = {
        **(worker_options or {}),
        "config": config,
        "prefetch_multiplier": prefetch_multiplier,
        "trace": True,
    }
    with restored(lab) as scenario:
        worker = scenario.start_worker("mpledger", "async", **options)
        with storage.connect():  # no run can store its result until the kill: see above
            with Tracer(lab) as tracer:
                for i in range(tasks):
                    edge.send_task(
                        "mpledger.async.reconcile",
                        kwargs={"batch_id": f"kill-{i}", "seconds": seconds},
                    )
            first = tracer.task_ids[0]
            wait_started(lab, [first])
            if not config.get("task_acks_late"):
                wait_acked(lab, [first])  # the worker sent its early ack: see above
            worker.kill()
        requeued = tuple(queued_task_ids(lab.async_, ASYNC_QUEUE))
        scenario.start_worker("mpledger", "async", **options)
        can_run = set(tracer.task_ids) - ({first} - set(requeued))  # an acked first task cannot
        wait_until(lambda: can_run <= _finished(storage), timeout=30)
        time.sleep(0.5)  # a duplicate run, if any, would show now
        counts = counted(tracer, mpledger, lab.async_, ASYNC_QUEUE)
    return KillRun(counts, requeued, first)


def kill_after_effect(
    lab: Lab, service: Any, edge: Any, task: str, kwargs: list[dict], config: dict
) -> KillRun:
    """The dangerous moment of late acks, made to happen every time.

    ``service`` (a service module) gets one task per entry of ``kwargs`` while this process
    holds its SQLite database, so each task blocks in its first write. Once all have started,
    the worker's main process is frozen (no ack can leave; with early acks, once it has sent
    them), the database released: every task commits its effect and finishes. Then the worker
    is killed, and a new one takes whatever the broker delivers again. Worker: prefork,
    concurrency ``len(kwargs)``, prefetch multiplier 1, Celery settings ``config``.
    """
    name, storage = service.service.name, service.service.storage
    queue = f"{name}.async"
    options = {"config": config, "prefetch_multiplier": 1, "concurrency": len(kwargs)}
    with restored(lab) as scenario:
        worker = scenario.start_worker(name, "async", trace=True, **options)
        with Tracer(lab) as tracer, storage.connect():  # the tasks block in their write
            for entry in kwargs:
                edge.send_task(task, kwargs=entry)
            wait_started(lab, tracer.task_ids)
            if not config.get("task_acks_late"):
                # The early acks are sent by the main process once its pool has taken each
                # task, which on a loaded machine can come after the tasks started: frozen
                # before, the messages would come back as if acks were late (a run of
                # notebook 07 on RabbitMQ 4.0.5 counted 2 duplicates with early acks so).
                wait_acked(lab, tracer.task_ids)
            freeze_main_process(worker)  # no ack can leave the worker from now on
        wait_until(lambda: len(storage.executions()) == len(kwargs), timeout=10)  # committed
        worker.kill()
        requeued = tuple(queued_task_ids(lab.async_, queue))
        scenario.start_worker(name, "async", trace=True, **options)
        runs = len(kwargs) + len(requeued)
        wait_until(lambda: len(storage.executions()) == runs, timeout=20)
        time.sleep(0.5)  # a further run, if any, would show now
        counts = tally_ids(tracer.task_ids, storage.executions(), traces=tracer.collect())
    return KillRun(counts, requeued, tracer.task_ids[0])


Outcome = tuple[tuple[str, Any], float]  # ((what the caller got, its value or text), seconds)


def sync_call(app: Any, timeout: float, task: str = "mpledger.sync.entry_count") -> Outcome:
    """One sync call, ``send_task(task).get(timeout)``: what the caller got (``"answer"`` and
    the value, or the exception's class name and text) and the seconds it took."""
    t0 = time.monotonic()
    try:
        got: tuple[str, Any] = ("answer", app.send_task(task).get(timeout=timeout))
    except Exception as exc:  # noqa: BLE001 - what the caller gets is the observation
        got = (type(exc).__name__, str(exc))
    return got, time.monotonic() - t0


def _wait_reply(call: Any, timeout: float) -> Outcome:
    t0 = time.monotonic()
    try:
        got: tuple[str, Any] = ("answer", call.get(timeout=timeout))
    except Exception as exc:  # noqa: BLE001 - what the caller gets is the observation
        got = (type(exc).__name__, str(exc))
    return got, time.monotonic() - t0


def sync_calls_through_outage(
    lab: Lab, backend: str, *, restart_delay: float = 3.0, call_timeout: float = 5.0
) -> tuple[dict[str, Outcome], Tally]:
    """One edge (result backend ``backend``) and one ``mpledger`` sync worker; the sync node
    is stopped gracefully under the edge. Three moments, each a :func:`sync_call` outcome:

    * ``in flight``: the call has started on the worker (its query held) when the node stops;
    * ``while down``: the same edge calls while the node is down; a timer starts the node
      again ``restart_delay`` seconds later;
    * ``after``: once a brand-new edge is answered again, the same edge calls once more.

    Returns the three outcomes and the tally of the in-flight call.
    """
    from ..design.apps import celery_apps_factory
    from ..design.services import mpledger

    def new_edge_answered() -> bool:
        probe, _ = celery_apps_factory("PUBLISHER", lab.sync.url, lab.async_.url, "mpledger")
        try:
            return sync_call(probe, timeout=1)[0][0] == "answer"
        finally:
            probe.close()

    caller, _ = celery_apps_factory("PUBLISHER", lab.sync.url, lab.async_.url, "mpledger")
    caller.conf.result_backend = backend
    mpledger.service.storage.reset()
    moments: dict[str, Outcome] = {}
    try:
        with restored(lab) as scenario:
            scenario.start_worker("mpledger", "sync", trace=True)
            if sync_call(caller, call_timeout)[0][0] != "answer":
                raise RuntimeError("the sync worker does not answer before the outage")
            stopping = threading.Thread(target=lab.stop_node, args=("sync",))
            starting = threading.Timer(restart_delay, lab.start_node, args=("sync",))
            try:
                with Tracer(lab) as tracer:
                    with mpledger.service.storage.connect():  # the call blocks in its query
                        call = caller.send_task("mpledger.sync.entry_count")
                        wait_started(lab, [call.id])
                        stopping.start()
                        moments["in flight"] = _wait_reply(call, call_timeout)
                    stopping.join()
                starting.start()
                moments["while down"] = sync_call(caller, call_timeout)
            finally:  # no stop or start of the node is under way when restored() looks
                for thread in (stopping, starting):
                    if thread.is_alive():
                        thread.join()
            wait_until(new_edge_answered, timeout=60, interval=0.5)
            moments["after"] = sync_call(caller, call_timeout)
            wait_until(lambda: call.id in _finished(mpledger.service.storage), timeout=10)
            counts = counted(tracer, mpledger, lab.sync, "mpledger.sync")
    finally:
        caller.close()
    return moments, counts


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _amqp_warnings() -> Iterator[list[str]]:
    """py-amqp's warnings (logger ``amqp``) while the block runs, collected instead of printed."""
    logger, handler = logging.getLogger("amqp"), _Collect()
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def publish_unbound(lab: Lab, options: dict, transport: dict, count: int = 5) -> dict[str, Any]:
    """A fresh ``mpledger`` edge (``broker_transport_options = transport``) publishes one
    ``record_entry`` task (which declares its queue), then ``mpledger.async`` is deleted through
    the management API, then ``count`` more tasks are published with ``send_task(**options)``.

    Returns what happened to those ``count``: publisher errors, kept in a queue, dropped
    silently, whether the queue exists again, the first error, py-amqp's warnings (logged
    while the channel closed after an error), and their :class:`Tally` (lost: dropped silently).
    The design's queues are declared again at the end.
    """
    from ..design.apps import celery_apps_factory

    def entry(i: int, prefix: str) -> dict:
        return {"entry_id": f"{prefix}-{i}", "account": prefix, "amount_cents": 100}

    lab.prepare_topology()
    errors: list[str] = []
    try:
        _, publisher = celery_apps_factory("PUBLISHER", lab.sync.url, lab.async_.url, "mpledger")
        publisher.conf.broker_transport_options = transport
        with _amqp_warnings() as warnings:
            publisher.send_task(
                "mpledger.async.record_entry", kwargs=entry(0, "declare"), **options
            )
            with Management.for_broker(lab.async_) as api:
                api.delete_queue(ASYNC_QUEUE)  # the queue, and its binding, are gone
            for i in range(count):
                try:
                    publisher.send_task(
                        "mpledger.async.record_entry", kwargs=entry(i, "unbound"), **options
                    )
                except Exception as exc:  # noqa: BLE001 - what reaches the publisher is the observation
                    errors.append(f"{type(exc).__name__}: {exc}")
            publisher.close()
        with Management.for_broker(lab.async_) as api:
            exists = any(q["name"] == ASYNC_QUEUE for q in api.queues())
        depth = ready_messages(lab.async_.url, ASYNC_QUEUE) if exists else 0
    finally:
        lab.prepare_topology()  # the design's queues are back, also if something above failed
    dropped = count - len(errors) - depth
    return {
        "published": count,
        "publisher errors": len(errors),
        "kept in a queue": depth,
        "dropped silently": dropped,
        "queue exists": exists,
        "first error": errors[0] if errors else "",
        "amqp warnings": tuple(warnings),
        "tally": Tally(count, 0, 0, lost=dropped, duplicated=0, in_queue=depth),
    }


@dataclass(frozen=True)
class CrashRun:
    """A node killed while a thread published: ids in publish order, counted on the broker."""

    sent: tuple[str, ...]  # every task whose send_task returned without error, in order
    before_kill: int  # how many of them had returned when the node was killed
    kept: frozenset[str] = field(repr=False)  # task ids in the queue once the node was back
    failure: str = "none"  # the first error the publisher got

    @property
    def published_before(self) -> tuple[str, ...]:
        return self.sent[: self.before_kill]

    @property
    def lost_before(self) -> int:
        """Tasks published before the kill and not in the queue afterwards."""
        return sum(1 for tid in self.published_before if tid not in self.kept)

    @property
    def sent_after(self) -> int:
        """Tasks whose send_task returned without error after the node was killed."""
        return len(self.sent) - self.before_kill

    @property
    def lost_after(self) -> int:
        return sum(1 for tid in self.sent[self.before_kill :] if tid not in self.kept)

    @property
    def kept_unsent(self) -> int:
        """Tasks in the queue whose publish raised (in flight when the node died)."""
        return len(self.kept - set(self.sent))

    def _tally(self, ids: Sequence[str]) -> Tally:
        lost = sum(1 for tid in ids if tid not in self.kept)
        return Tally(len(ids), 0, 0, lost=lost, duplicated=0, in_queue=len(ids) - lost)

    def tally(self) -> Tally:
        """The tasks published before the kill: the denominator of every fault of notebook 07."""
        return self._tally(self.published_before)

    def tally_after(self) -> Tally:
        """The tasks 'sent' after the kill (send_task returned without error): counted apart,
        since no publisher could have kept them; lost is what the node did not have."""
        return self._tally(self.sent[self.before_kill :])


def crash_while_publishing(
    lab: Lab,
    transport: dict,
    *,
    crash_after: int = 1000,
    limit: int = 20_000,
    publisher: Any = None,
    options: Mapping[str, Any] | None = None,
) -> CrashRun:
    """A thread publishes persistent ``record_entry`` tasks to the durable ``mpledger.async``
    as fast as it can (``broker_transport_options = transport``, one reconnection attempt);
    once ``crash_after`` have been sent the async node gets SIGKILL. The thread goes on until
    a publish fails (at most ``limit`` tasks). :func:`restored` starts the node again (its data
    kept) and the ids in the queue are read on the broker. ``publisher`` is the async app to
    publish with (default: the lab's), ``options`` its ``send_task`` options (``mandatory``)."""
    from ..design.apps import celery_apps_factory

    lab.prepare_topology()
    if publisher is None:
        _, publisher = celery_apps_factory("PUBLISHER", lab.sync.url, lab.async_.url, "mpledger")
    publisher.conf.broker_transport_options = {
        **publisher.conf.broker_transport_options,
        **transport,
        "max_retries": 1,
    }
    extra = dict(options or {})
    sent: list[str] = []
    failures: list[str] = []

    def publish() -> None:
        for i in range(limit):
            kwargs = {"entry_id": f"crash-{i}", "account": "crash", "amount_cents": 100}
            try:
                task = publisher.send_task("mpledger.async.record_entry", kwargs=kwargs, **extra)
                sent.append(task.id)
            except Exception as exc:  # noqa: BLE001 - the publisher's first error is the observation
                failures.append(f"{type(exc).__name__}: {exc}")
                return

    try:
        with restored(lab):
            publishing = threading.Thread(target=publish, daemon=True)
            publishing.start()
            wait_until(lambda: len(sent) >= crash_after or failures, timeout=60, interval=0.01)
            before_kill = len(sent)
            lab.kill_node("async")
            publishing.join(timeout=60)
        kept = frozenset(settled_task_ids(lab.async_, ASYNC_QUEUE))
    finally:
        publisher.close()
        lab.prepare_topology()
    return CrashRun(tuple(sent), before_kill, kept, failures[0] if failures else "none")


@dataclass(frozen=True)
class FreezeRun:
    """Frozen workers watched on the broker: per label, (seconds, ready messages) samples."""

    samples: dict[str, list[tuple[float, int]]]
    released_at: dict[str, float | None]  # seconds until the prefetched messages were back
    negotiated: dict[str, int]  # heartbeat timeout the broker agreed with each worker (s)
    settings: dict[str, dict[str, Any]]  # heartbeat settings each worker reports it uses


def _worker_settings(worker: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """The Celery settings ``names`` as the running worker reports them (control ``conf``)."""
    replies = worker.app.control.inspect(destination=[worker.hostname], timeout=2.0).conf(
        with_defaults=True
    )
    conf = (replies or {}).get(worker.hostname) or {}
    return {name: conf.get(name) for name in names}


def freeze_and_watch(
    lab: Lab,
    setups: Mapping[str, tuple[Any, Any, str, Callable[[int], dict], dict]],
    *,
    tasks_each: int = 6,
    after: float = 3.0,
    limit: float = 90.0,
    watch: str | None = None,
) -> FreezeRun:
    """Per label of ``setups`` (service module, edge, task, kwargs of task i, Celery settings):
    one async worker (prefork, concurrency 1, Celery's default prefetch of 4, early acks) gets
    ``tasks_each`` tasks while this process holds the service's database: 1 runs (blocked in
    its write), 4 are prefetched, the rest wait in the queue. Then every worker is frozen with
    SIGSTOP (main and pool processes) and each queue's ready messages are sampled on the broker
    until those of ``watch`` (default: the first label) are back, plus ``after`` seconds, or
    ``limit`` seconds have passed."""
    names = ("broker_heartbeat", "broker_heartbeat_checkrate")
    watch = watch or next(iter(setups))
    held = tasks_each - 5  # ready while the worker holds 1 running + 4 prefetched
    samples: dict[str, list[tuple[float, int]]] = {label: [] for label in setups}
    released: dict[str, float | None] = dict.fromkeys(setups)
    lab.prepare_topology()
    with contextlib.ExitStack() as stack:
        scenario = stack.enter_context(restored(lab))
        for service, *_ in setups.values():
            stack.enter_context(service.service.storage.connect())
        frozen = {}
        for label, (service, edge, task, kwargs, config) in setups.items():
            queue = f"{service.service.name}.async"
            worker = scenario.start_worker(service.service.name, "async", config=config, trace=True)
            with Tracer(lab) as tracer:
                for i in range(tasks_each):
                    edge.send_task(task, kwargs=kwargs(i))
            wait_started(lab, tracer.task_ids[:1])
            wait_until(lambda q=queue: ready_messages(lab.async_.url, q) == held, timeout=10)
            frozen[label] = (worker, queue)
        negotiated = {
            label: negotiated_heartbeat(lab.async_, w) for label, (w, _) in frozen.items()
        }
        settings = {label: _worker_settings(w, names) for label, (w, _) in frozen.items()}
        for worker, _ in frozen.values():
            worker.process.send(signal.SIGSTOP, group=True)  # no heartbeat, no ack
        t0 = time.monotonic()
        while (now := time.monotonic() - t0) < limit:
            for label, (_, queue) in frozen.items():
                ready = ready_messages(lab.async_.url, queue)
                samples[label].append((now, ready))
                if ready > held and released[label] is None:
                    released[label] = now
            if released[watch] is not None and now > released[watch] + after:
                break
            time.sleep(0.25)
    return FreezeRun(samples, released, negotiated, settings)


class OnePage:
    """Each failure on one line: what the 2014 configuration lost, what the recommended one
    lost, and the setting that makes the difference. Rows are added where they are measured."""

    HEADERS = ("failure", "2014 configuration", "recommended", "setting")

    def __init__(self) -> None:
        self.rows: dict[str, tuple[str, str, str]] = {}

    def add(self, failure: str, old: str, new: str, setting: str) -> None:
        """Add (or replace) the row of ``failure``."""
        self.rows[failure] = (old, new, setting)

    def __str__(self) -> str:
        rows = [self.HEADERS, *((failure, *cells) for failure, cells in self.rows.items())]
        widths = [max(len(row[i]) for row in rows) + 2 for i in range(len(self.HEADERS))]
        return "\n".join("".join(f"{c:<{w}}" for c, w in zip(row, widths)).rstrip() for row in rows)


def plot_fault_costs(
    results: Mapping[str, Tally],
    *,
    harmless: Iterable[str] = (),
    no_reply: Mapping[str, int] | None = None,
    ax: Any = None,
) -> Any:
    """What each scenario cost, as horizontal bars on a symlog axis (linear from 0 to 1, log
    above, so 1 and 1,000 both show), each bar with its count written at its end:

    * lost tasks (red);
    * duplicated runs (orange), or, for the scenarios in ``harmless``, runs an idempotent task
      absorbed (its effect stored once: grey, hatched): a re-run is not a double credit;
    * sync calls that never got a reply (``no_reply``: scenario -> calls; purple): an edge
      that waits for ever loses nothing on the broker and still fails its user.

    A scenario with none of these has no bar, and says "nothing lost, run twice or unanswered".
    The legend sits outside the axes, so it hides no bar. Returns the axes."""
    import matplotlib.pyplot as plt

    harmless, no_reply = set(harmless), dict(no_reply or {})
    unknown = (harmless | set(no_reply)) - set(results)
    if unknown:
        raise ValueError(f"no such scenario in the results: {sorted(unknown)}")
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 0.42 * len(results) + 1.2), layout="constrained")
    names = list(results)
    series = {  # label -> (colour, hatch, value of each scenario)
        "lost": ("tab:red", "", [results[n].lost for n in names]),
        "run twice, effect twice": (
            "tab:orange",
            "",
            [0 if n in harmless else results[n].duplicated for n in names],
        ),
        "run twice, effect once (idempotent)": (
            "lightgrey",
            "///",
            [results[n].duplicated if n in harmless else 0 for n in names],
        ),
        "sync calls never answered": ("tab:purple", "", [no_reply.get(n, 0) for n in names]),
    }
    for i in range(len(names)):  # the bars a row has, side by side around its tick
        present = [label for label, (*_, values) in series.items() if values[i]]
        if not present:
            ax.text(
                0.05,
                i,
                "nothing lost, run twice or unanswered",
                va="center",
                fontsize=8,
                color="tab:green",
            )
        height = 0.7 / max(len(present), 1)
        for k, label in enumerate(present):
            color, hatch, values = series[label]
            y = i - 0.35 + height * (k + 0.5)
            bar = ax.barh([y], [values[i]], height=height, color=color, hatch=hatch)
            ax.bar_label(bar, labels=[str(values[i])], padding=2, fontsize=8)
    for label, (color, hatch, _) in series.items():  # legend entries, drawn once each
        ax.barh([0], [0], color=color, hatch=hatch, label=label)
    ax.set_yticks(range(len(names)), names)
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.set_xscale("symlog", linthresh=1)
    top = max((max(values) for *_, values in series.values()), default=1)
    ax.set_xlim(0, max(top, 1) * 4)  # room for the counts at the bars' ends
    ax.set_xlabel("tasks or calls (linear from 0 to 1, log scale above)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return ax
