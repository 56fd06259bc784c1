"""The harness of notebook 04 (sync calls): workers that take turns, blocks of callers timed in
turns, what they measured, a thin edge's view of an error, and the broker's own counters.

The notebook keeps what it teaches (the call, ``send_task(...).get()``; what a caller does in a
block; the asserts) and hands the plumbing to these functions:

* :func:`sync_workers` and :func:`consume_with`: several sync workers per service, of which
  exactly *n* consume their queue (Celery's ``add_consumer`` / ``cancel_consumer`` control
  commands; the broker's consumer count confirms each switch);
* :func:`take_turns`: the settings take turns in short blocks, in another order each round, so
  a slow moment of a shared machine hits every setting alike; each block also measures the CPU
  it used (:class:`CpuUse`);
* :func:`setting_logs`, :func:`setting_rows`, :func:`round_ratios`, :func:`format_table`,
  :func:`plot_ecdfs`: the figures of each setting, from the callers' samples and the services'
  execution logs;
* :func:`thin_edge_error`: a failing call made from a process that never imported the service;
* :func:`alternate` and :func:`counted_by_broker`: two edge settings in alternating blocks, and what
  each run cost the broker in this process's space (connections, channels and queues created,
  from the broker's events; queue declarations it answered).
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ..observe.events import DECLARED, SpaceEvents
from ..observe.latency import PERCENTILES, CallerRun, ecdf, max_overlap, summarize
from ..plumbing.util import wait_until
from ..running.workers import Worker, start_worker, stop_all

__all__ = [
    "BROKER_COUNTERS",
    "Block",
    "CpuUse",
    "alternate",
    "consume_with",
    "consumers",
    "counted_by_broker",
    "format_table",
    "measure_cpu",
    "plot_ecdfs",
    "round_ratios",
    "setting_logs",
    "setting_rows",
    "sync_workers",
    "take_turns",
    "thin_edge_error",
    "worker_settings",
]

T = TypeVar("T")
Key = tuple[int, int]  # (callers, workers per service)

#: What :func:`counted_by_broker` counts: the broker's events of this process's space (new
#: connections, channels and queues), then the declarations the broker answered (a queue declared
#: again is no event: its ``declare-ok`` is a round trip all the same).
BROKER_COUNTERS = ("connection.created", "channel.created", "queue.created", DECLARED)


# -- workers ------------------------------------------------------------------------------------
@contextlib.contextmanager
def sync_workers(
    lab: Any, services: Iterable[str], per_service: int, **options: Any
) -> Iterator[list[Worker]]:
    """``per_service`` sync workers of each service, started together, ready (control ping),
    and stopped when the ``with`` block ends, also on an error. ``options`` go to
    :func:`~mpsoa_lab.running.workers.start_worker` (``concurrency=2``, ``config={...}``)."""
    workers: list[Worker] = []
    try:
        for service in services:
            workers += [
                start_worker(lab, service, "sync", wait=False, **options)
                for _ in range(per_service)
            ]
        for worker in workers:
            worker.wait_ready()
        yield workers
    finally:
        stop_all(workers)


def worker_settings(worker: Worker) -> dict[str, Any]:
    """The pool, concurrency and prefetch count a running worker reports (``inspect stats``)."""
    stats = worker.app.control.inspect([worker.hostname], timeout=5).stats()[worker.hostname]
    pool = stats["pool"]
    return {
        "pool": pool["implementation"].split(":")[0].rsplit(".", 1)[-1],
        "concurrency": pool["max-concurrency"],
        "prefetch": stats["prefetch_count"],
    }


def consumers(url: str, queue: str) -> int:
    """How many consumers the broker has on ``queue`` right now (a passive declare)."""
    from kombu import Connection

    with Connection(url) as conn:
        return conn.default_channel.queue_declare(queue, passive=True).consumer_count


def consume_with(workers: Sequence[Worker], n: int, url: str, timeout: float = 10.0) -> None:
    """Exactly ``n`` sync workers of each service consume its ``<service>.sync`` queue; the
    others stay running, idle. Returns once the broker counts ``n`` consumers on each queue."""
    for service in dict.fromkeys(w.service for w in workers):
        mine = [w for w in workers if w.service == service]
        if not 0 < n <= len(mine):
            raise ValueError(f"{service} has {len(mine)} workers: cannot let {n} consume")
        control, queue = mine[0].app.control, f"{service}.sync"
        if mine[n:]:
            control.cancel_consumer(queue, destination=[w.hostname for w in mine[n:]], reply=True)
        control.add_consumer(queue, destination=[w.hostname for w in mine[:n]], reply=True)
        wait_until(lambda queue=queue: consumers(url, queue) == n, timeout=timeout)


# -- blocks taken in turns ----------------------------------------------------------------------
@dataclass(frozen=True)
class CpuUse:
    """CPU used while something ran: ``machine``, the share of all cores that were busy (every
    process on the machine, the lab's and others'); ``here``, this process's CPU seconds per
    second (1.0 = one core busy all the time; the callers are threads of this process)."""

    machine: float
    here: float


def measure_cpu(work: Callable[[], T]) -> tuple[T, CpuUse]:
    """Run ``work()`` and return its result with the CPU used meanwhile."""
    import psutil

    me = psutil.Process()
    machine0, mine0, t0 = psutil.cpu_times(), me.cpu_times(), time.perf_counter()
    result = work()
    machine1, mine1, wall = psutil.cpu_times(), me.cpu_times(), time.perf_counter() - t0
    total = sum(machine1) - sum(machine0)
    idle = sum(
        getattr(machine1, f) - getattr(machine0, f)
        for f in ("idle", "iowait")
        if hasattr(machine1, f)
    )
    here = (mine1.user + mine1.system - mine0.user - mine0.system) / wall if wall > 0 else 0.0
    # Linux's iowait counter can step backwards, so the busy share is clamped to [0, 1].
    busy = 1 - idle / total if total > 0 else 0.0
    return result, CpuUse(machine=min(1.0, max(0.0, busy)), here=here)


@dataclass(frozen=True)
class Block:
    """One block of calls: ``callers`` callers with ``workers`` workers per service consuming,
    in round ``round``; what the callers measured, and the CPU used meanwhile."""

    callers: int
    workers: int
    round: int
    run: CallerRun
    cpu: CpuUse

    @property
    def key(self) -> Key:
        return self.callers, self.workers


def take_turns(
    workers: Sequence[Worker],
    url: str,
    per_service: Sequence[int],
    callers: Sequence[int],
    rounds: int,
    run_block: Callable[[int, str], CallerRun],
) -> list[Block]:
    """``rounds`` rounds; in each, every number of workers in ``per_service`` takes its turn
    (another order each round: round *r* starts at the *r*-th), and with each, every number
    of ``callers`` runs one block: ``run_block(callers, tag)``, ``tag`` unique to the block."""
    blocks = []
    for r in range(rounds):
        start = r % len(per_service)
        for n in [*per_service[start:], *per_service[:start]]:
            consume_with(workers, n, url)
            for c in callers:
                run, cpu = measure_cpu(lambda tag=f"r{r}n{n}c{c}", c=c: run_block(c, tag))
                blocks.append(Block(c, n, r, run, cpu))
    return blocks


# -- what the blocks measured -------------------------------------------------------------------
def _in_window(log: Iterable[Mapping[str, Any]], run: CallerRun) -> list[Mapping[str, Any]]:
    return [e for e in log if run.started_at <= e["started"] <= run.ended_at]


def setting_logs(
    blocks: Sequence[Block], executions: Mapping[str, Sequence[Mapping[str, Any]]]
) -> dict[Key, dict[str, list[Mapping[str, Any]]]]:
    """The execution-log entries (per service) of each setting: those that started inside one
    of the setting's blocks."""
    logs: dict[Key, dict[str, list[Mapping[str, Any]]]] = {}
    for block in blocks:
        setting = logs.setdefault(block.key, {service: [] for service in executions})
        for service, log in executions.items():
            setting[service] += _in_window(log, block.run)
    return logs


def setting_rows(
    blocks: Sequence[Block], logs: Mapping[Key, Mapping[str, Sequence[Mapping[str, Any]]]]
) -> dict[Key, dict[str, float]]:
    """One row per setting, all its blocks together: ``calls``, percentiles (ms), ``calls/s``;
    ``at once`` (most tasks of one service running at one instant), ``in task`` (share of the
    callers' waiting spent in the tasks), ``idle`` (share of the workers' time in the blocks
    with no task running: every worker of every service, ``workers`` per service), ``cpu``
    and ``caller cpu`` (medians over the blocks, see :class:`CpuUse`); ``p50/1w`` and
    ``calls/s/1w`` against 1 worker per service, same callers."""
    rows: dict[Key, dict[str, float]] = {}
    for key in dict.fromkeys(b.key for b in blocks):
        mine = [b for b in blocks if b.key == key]
        samples = [s for b in mine for s in b.run.samples]
        row = summarize(samples)
        row["calls/s"] = len(samples) / sum(b.run.wall_s for b in mine)
        row["at once"] = max(
            max_overlap((e["started"], e["finished"]) for e in log) for log in logs[key].values()
        )
        row["in task"] = sum(
            e["finished"] - e["started"] for log in logs[key].values() for e in log
        ) / sum(samples)
        busy = sum(e["finished"] - e["started"] for log in logs[key].values() for e in log)
        row["idle"] = 1 - busy / (sum(b.run.wall_s for b in mine) * key[1] * len(logs[key]))
        row["cpu"] = statistics.median(b.cpu.machine for b in mine)
        row["caller cpu"] = statistics.median(b.cpu.here for b in mine)
        rows[key] = row
    for (callers, _n), row in rows.items():
        base = rows.get((callers, 1))
        row["p50/1w"] = row["p50_ms"] / base["p50_ms"] if base else float("nan")
        row["calls/s/1w"] = row["calls/s"] / base["calls/s"] if base else float("nan")
    return rows


def round_ratios(
    blocks: Sequence[Block], key: Key, base: Key, figure: str = "calls/s"
) -> list[float]:
    """Round by round, ``figure`` of setting ``key`` over that of ``base`` in the same round:
    ``calls/s`` (calls per second of the block) or ``p50`` (its median round trip). The
    spread of these ratios is the run-to-run noise of the comparison."""

    def value(block: Block) -> float:
        if figure == "calls/s":
            return block.run.per_second
        if figure == "p50":
            return statistics.median(block.run.samples)
        raise ValueError(f"figure must be 'calls/s' or 'p50', not {figure!r}")

    by_round = {(b.key, b.round): b for b in blocks}
    rounds = sorted({b.round for b in blocks})
    return [
        value(by_round[key, r]) / value(by_round[base, r])
        for r in rounds
        if (key, r) in by_round and (base, r) in by_round
    ]


_COLUMNS = (
    # header, width, row field, format
    ("callers", 8, None, ""),
    ("workers", 8, None, ""),
    ("calls", 7, "calls", ".0f"),
    ("p50 ms", 8, "p50_ms", ".2f"),
    ("p90 ms", 8, "p90_ms", ".2f"),
    ("p99 ms", 8, "p99_ms", ".2f"),
    ("p50/1w", 8, "p50/1w", ".2f"),
    ("calls/s", 8, "calls/s", ".0f"),
    ("calls/s/1w", 11, "calls/s/1w", ".2f"),
    ("at once", 8, "at once", ".0f"),
    ("in task", 8, "in task", ".0%"),
    ("idle", 6, "idle", ".0%"),
    ("cpu", 6, "cpu", ".0%"),
    ("caller cpu", 11, "caller cpu", ".2f"),
)
_LEGEND = """\
workers: sync workers per service consuming; p50/1w, calls/s/1w: against 1 worker per service, same callers;
at once: most tasks of one service running at the same instant; in task: share of the callers' waiting
spent in the tasks themselves (the rest is publishing, queueing, delivery, reply); idle: share of the
workers' time with no task running (every worker of the three services, during the blocks); cpu: share
of the machine's cores busy during the blocks (every process on it); caller cpu: cores used by the
callers' process (1.00 = one core); cpu figures are medians over the rounds"""


def format_table(rows: Mapping[Key, Mapping[str, float]]) -> str:
    """The rows of :func:`setting_rows` as a fixed-width table, with a legend of its columns."""
    lines = ["".join(f"{header:>{width}}" for header, width, _f, _s in _COLUMNS)]
    for (callers, n), row in rows.items():
        cells = [f"{callers:>8}", f"{n:>8}"]
        cells += [f"{row[field]:>{width}{spec}}" for _h, width, field, spec in _COLUMNS[2:]]
        lines.append("".join(cells))
    return "\n".join([*lines, _LEGEND])


def plot_ecdfs(blocks: Sequence[Block], title: str) -> Any:
    """One panel per number of callers: the ECDF of the round trips of each number of workers,
    with p50, p90 and p99 marked, on a log x axis and a logit y axis (which spreads the tail)."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

    callers = list(dict.fromkeys(b.callers for b in blocks))
    per_service = list(dict.fromkeys(b.workers for b in blocks))
    colors = dict(zip(per_service, ("tab:blue", "tab:orange", "tab:green", "tab:red")))
    marks = dict(zip(PERCENTILES, ("o", "s", "^")))
    fig, axes = plt.subplots(
        1, len(callers), figsize=(5.5 * len(callers), 4.6), sharex=True, sharey=True, squeeze=False
    )
    for ax, c in zip(axes[0], callers):
        for n in per_service:
            seconds = [s for b in blocks if b.key == (c, n) for s in b.run.samples]
            xs, ys = ecdf([s * 1e3 for s in seconds])
            ax.step(
                xs[:-1],
                ys[:-1],
                where="post",
                color=colors[n],
                lw=1.6,
                label=f"{n} worker{'s' * (n > 1)} per service",
            )
            row = summarize(seconds)
            for q, mark in marks.items():
                ax.plot(row[f"p{q}_ms"], q / 100, mark, color=colors[n], ms=7, mec="black", mew=0.6)
        for q in PERCENTILES:
            ax.axhline(q / 100, color="grey", lw=0.6, ls=":")
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator([1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 500]))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel("round trip of one sync call, ms (log scale)")
        ax.set_title("one caller, one call at a time" if c == 1 else f"{c} callers at once")
        ax.grid(True, axis="x", alpha=0.3)
    first = axes[0][0]
    first.set_yscale("logit")
    first.set_ylim(0.01, 0.997)
    first.yaxis.set_major_locator(FixedLocator([0.1, 0.5, 0.9, 0.99]))
    names = {0.1: "10%", 0.5: "50% (p50)", 0.9: "90% (p90)", 0.99: "99% (p99)"}
    first.yaxis.set_major_formatter(lambda y, _: names.get(round(y, 2), ""))
    first.yaxis.set_minor_locator(NullLocator())
    first.set_ylabel("share of calls at or below")
    handles, labels = first.get_legend_handles_labels()
    handles += [
        plt.Line2D([], [], ls="", marker=m, color="grey", mec="black", mew=0.6)
        for m in marks.values()
    ]
    labels += [f"p{q}" for q in marks]
    axes[0][-1].legend(handles, labels, loc="lower right", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


# -- a thin edge --------------------------------------------------------------------------------
_THIN_EDGE = """
import json, os, sys
import mpsoa_lab  # the edge's own package: it knows the task names, not the services' code
service, task, kwargs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
sync_app, _ = mpsoa_lab.celery_apps_factory("PUBLISHER", os.environ["SYNC_URL"], os.environ["ASYNC_URL"], service)
try:
    sync_app.send_task(task, kwargs=kwargs).get(timeout=10)
    print(json.dumps(None))
except Exception as exc:
    print(json.dumps({"type": f"{type(exc).__module__}.{type(exc).__name__}", "message": str(exc),
                      "is_value_error": isinstance(exc, ValueError),
                      "service_imported": f"mpsoa_lab.design.services.{service}" in sys.modules}))
"""


def thin_edge_error(lab: Any, task: str, kwargs: Mapping[str, Any]) -> dict[str, Any] | None:
    """Make the sync call ``task(**kwargs)`` from a fresh Python process that imports only
    ``mpsoa_lab`` (never the service's module), as a thin edge would; return what it caught:
    ``type`` (module and name), ``message``, ``is_value_error``, ``service_imported``; ``None``
    if the call succeeded. A worker of the service must be running."""
    done = subprocess.run(
        [sys.executable, "-c", _THIN_EDGE, task.split(".")[0], task, json.dumps(dict(kwargs))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "SYNC_URL": lab.sync.url, "ASYNC_URL": lab.async_.url},
    )
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"the thin edge failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- two settings side by side, and the broker's counters ---------------------------------------
def alternate(
    settings: Sequence[T], blocks: int, run_block: Callable[[T], list[float]]
) -> tuple[dict[T, list[float]], dict[T, list[float]]]:
    """``blocks`` rounds of ``run_block(setting)`` for each setting, the order reversed every
    other round; return every sample of each setting, and the median of each of its blocks (in
    round order, so block *i* of one setting ran beside block *i* of the other)."""
    samples: dict[T, list[float]] = {s: [] for s in settings}
    medians: dict[T, list[float]] = {s: [] for s in settings}
    for b in range(blocks):
        for setting in settings if b % 2 == 0 else list(reversed(settings)):
            block = run_block(setting)
            samples[setting] += block
            medians[setting].append(statistics.median(block))
    return samples, medians


def counted_by_broker(
    broker: Any, runs: Mapping[Any, Callable[[], Any]]
) -> dict[Any, dict[str, int]]:
    """Run each of ``runs`` in turn and return, for each, what it cost the broker: the
    connections, channels and queues the broker created in this process's space (its vhost),
    from the broker's own events, and the queue declarations it answered on this process's
    channels (:class:`~mpsoa_lab.observe.events.SpaceEvents`). Other processes' work on the
    same node, in spaces of their own, is not in these counts."""
    found: dict[Any, dict[str, int]] = {}
    with SpaceEvents(broker, BROKER_COUNTERS) as events:
        before = events.counts()
        for name, run in runs.items():
            run()
            after = events.counts()
            found[name] = {key: after[key] - before[key] for key in BROKER_COUNTERS}
            before = after
    return found
