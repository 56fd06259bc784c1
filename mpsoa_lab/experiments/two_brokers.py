"""Notebook 06's harness: an async flood on one broker while a caller times sync calls.

:func:`run_flood`, once per set-up (the design's two brokers, or one shared broker): a caller
thread makes sync calls one after the other; an edge process publishes a flood of
``mpledger.async.record_entry`` tasks while async workers drain them; the queue depth, the
brokers' memory and flow state and their CPU time are sampled; the workers stop consuming,
finish what they hold, and are stopped (Celery's warm shutdown); what is left in the queue is
purged and counted, so published = processed + left, exactly. The same flood driven into the
broker's memory alarm is :mod:`.memory_alarm`'s.

The edge is a process of its own (``python -m mpsoa_lab.experiments.two_brokers edge ...``), as
a web front end would be: in the notebook's process it would compete with the caller thread for
Python's GIL. Pure helpers (:func:`phase_calls`, :func:`latency_table`, :func:`mem_growth`) work
on the recorded runs and need no broker.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kombu import Connection

from ..design.apps import celery_apps_factory
from ..observe.latency import percentile, summarize
from ..observe.monitor import QueueMonitor
from ..observe.progressbar import progress
from ..plumbing.management import Management
from ..plumbing.util import wait_until
from ..running.workers import start_worker, stop_all
from .async_drain import body_bytes  # noqa: F401 - notebook 06 calls two_brokers.body_bytes; one definition

__all__ = [
    "FLOOD_TASK",
    "PHASES",
    "QUEUE",
    "SYNC_TASK",
    "FloodRun",
    "broker_rows",
    "cpu_seconds",
    "entry_kwargs",
    "finish_in_hand",
    "latency_table",
    "mem_growth",
    "GROWTH_LABELS",
    "backlog_growth",
    "growth_report",
    "phase_calls",
    "reset_storage",
    "plot_flood",
    "run_flood",
    "time_sync_calls",
]

FLOOD_TASK = "mpledger.async.record_entry"
QUEUE = "mpledger.async"
SYNC_TASK = "mpwallet.sync.get_balance"
#: The flood run's phases: before the flood, while the edge publishes, after it, and both.
PHASES = ("baseline", "publishing", "draining", "flood")

Call = tuple[float, float, bool]  # (started, ended, answered), epoch seconds


def entry_kwargs(setup: str, i: int) -> dict[str, Any]:
    """The keyword arguments of the flood's ``i``-th task: one ledger entry of 1 unit."""
    return {"entry_id": f"{setup:>6}-{i:06d}", "account": setup, "amount_cents": 100}


def publish_flood(setup: str, n: int, sync_url: str, async_url: str, confirm: bool) -> None:
    """The edge: ``n`` flood tasks through one producer, printing the count every 500."""
    _, edge = celery_apps_factory("PUBLISHER", sync_url, async_url, "mpledger")
    if confirm:  # each publish waits for the broker's confirm
        edge.conf.broker_transport_options = {"confirm_publish": True}
    # One connection and channel for the flood, closed with AMQP's close handshake before the
    # count is final: the broker has then handled every publish. A process that just exits
    # with unread bytes from the broker (a heartbeat) resets the socket, and the broker drops
    # the publishes it had not read yet: under load, the tail of an unconfirmed flood.
    with edge.connection_for_write() as conn, conn.Producer() as producer:
        for i in range(n):
            edge.send_task(FLOOD_TASK, producer=producer, kwargs=entry_kwargs(setup, i))
            if (i + 1) % 500 == 0 and i + 1 < n:
                print(i + 1, flush=True)
    print(n, flush=True)  # after the close: every message is in the broker's hands


def start_edge(setup: str, n: int, sync_url: str, async_url: str, *, confirm: bool = False):
    """Start the edge process; its stdout counts the messages published. (The URLs go in its
    environment, not on its command line, where any user of the machine could read them.)"""
    argv = [sys.executable, "-m", __name__, "edge", setup, str(n)]
    env = {**os.environ, "EDGE_SYNC_URL": sync_url, "EDGE_ASYNC_URL": async_url}
    argv += ["--confirm"] if confirm else []
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)


def time_sync_calls(
    sync_url: str,
    async_url: str,
    calls: list[Call],
    stop: threading.Event,
    *,
    timeout: float = 30.0,
    args: tuple = (1,),
) -> None:
    """Make sync calls one after the other until ``stop``; append ``(started, ended, answered)``."""
    sync_app, _ = celery_apps_factory("PUBLISHER", sync_url, async_url, "mpwallet")
    try:
        while not stop.is_set():
            started, t0 = time.time(), time.perf_counter()
            try:
                sync_app.send_task(SYNC_TASK, args=args).get(timeout=timeout)
                ok = True
            except Exception:  # noqa: BLE001 - a failed call is the observation
                ok = False
            calls.append((started, started + time.perf_counter() - t0, ok))
    finally:
        sync_app.close()


def watch_broker(broker: Any, samples: list[dict], stop: threading.Event, every: float = 0.5):
    """Sample the node's memory, alarms and connections in flow control until ``stop``."""
    with Management.for_broker(broker, timeout=2.0) as api:
        while not stop.wait(every):
            try:
                node = api.nodes()[0]
                states = [c.get("state") for c in api.connections()]
            except Exception as exc:  # noqa: BLE001 - a slow answer under load is data too
                samples.append({"t": time.time(), "error": type(exc).__name__})
                continue
            samples.append(
                {
                    "t": time.time(),
                    "mem_used": node.get("mem_used"),
                    "mem_limit": node.get("mem_limit"),
                    "mem_alarm": node.get("mem_alarm"),
                    "disk_alarm": node.get("disk_free_alarm"),
                    "flow": sum(s in ("flow", "blocked", "blocking") for s in states),
                }
            )


def reset_storage(wallet: int = 1) -> None:
    """Empty the ledger's and the wallet's storage, and open the wallet the caller reads."""
    from ..design.services import mpledger, mpwallet

    mpledger.service.storage.reset()
    mpwallet.service.storage.reset()
    with mpwallet.service.storage.connect() as db:
        db.execute(
            "INSERT INTO wallets (user_id, balance_cents, created) VALUES (?, 0, ?)",
            (wallet, time.time()),
        )


def cpu_seconds(broker: Any) -> float | None:
    """CPU time (user + system) used so far by the broker's Erlang VM; None without a node."""
    return sum(broker.node._beam().cpu_times()[:2]) if broker.node else None


def processed(setup: str) -> int:
    """Ledger entries the flood of ``setup`` wrote (one per task processed)."""
    from ..design.services import mpledger

    sql = "SELECT COUNT(*) AS n FROM entries WHERE account = ?"
    return mpledger.service.storage.query(sql, (setup,))[0]["n"]


def executions(since: float) -> dict[str, int]:
    """Runs of the flood task since ``since``: ``n`` and ``distinct_ids``."""
    from ..design.services import mpledger

    sql = (
        "SELECT COUNT(*) AS n, COUNT(DISTINCT task_id) AS distinct_ids FROM executions "
        "WHERE task_name = ? AND started >= ?"
    )
    return mpledger.service.storage.query(sql, (FLOOD_TASK, since))[0]


def finish_in_hand(workers: Sequence[Any], queue: str = QUEUE, timeout: float = 30.0) -> None:
    """Tell the workers to stop consuming ``queue`` (Celery's ``cancel_consumer``) and wait
    until they have run every message they hold (none active, none reserved)."""
    app, hosts = workers[0].app, [w.hostname for w in workers]
    app.control.cancel_consumer(queue, destination=hosts, reply=True, timeout=5)

    def idle() -> bool:
        inspect = app.control.inspect(hosts, timeout=1)
        active, reserved = inspect.active() or {}, inspect.reserved() or {}
        return (
            len(active) == len(reserved) == len(hosts)
            and not any(active.values())
            and not any(reserved.values())
        )

    wait_until(idle, timeout=timeout, interval=0.2)


@dataclass
class FloodRun:
    """One set-up's flood: the sync calls, the instants, the samples and the counts."""

    setup: str
    flood: int
    calls: list[Call]
    start: float
    flood_start: float
    flood_published: float
    flood_end: float
    series: dict[str, list]
    peak: int
    broker: dict[str, list[dict]]
    processed: int
    processed_in_window: int
    left: int
    executions: dict[str, int]
    cpu_s: dict[str, float | None]

    @property
    def lost(self) -> int:
        return self.flood - self.processed - self.left

    @property
    def duplicated(self) -> int:
        return self.executions["n"] - self.executions["distinct_ids"]


def _publish_with_bar(edge: subprocess.Popen, setup: str, n: int) -> None:
    with progress(total=n, desc=f"{setup}: publishing", unit="msg", leave=False) as bar:
        for line in edge.stdout:
            bar.update(int(line) - bar.n)
    if edge.wait(30) != 0:
        raise RuntimeError(f"the edge process failed (exit code {edge.returncode})")


def _drain_with_bar(setup: str, window_s: float) -> None:
    t0 = time.time()
    with progress(total=window_s, desc=f"{setup}: draining", unit="s") as bar:
        while time.time() < t0 + window_s:
            time.sleep(0.5)
            bar.update(min(window_s, time.time() - t0) - bar.n)
            bar.set_postfix_str(f"{processed(setup):,} tasks processed")
        bar.update(window_s - bar.n)


def run_flood(
    lab: Any,
    setup: str,
    sync_broker: Any,
    async_broker: Any,
    *,
    flood: int,
    baseline_s: float,
    window_s: float,
    async_workers: int = 2,
) -> FloodRun:
    """Time sync calls on ``sync_broker`` while ``flood`` tasks go to ``async_broker``."""
    urls = (sync_broker.url, async_broker.url)
    calls: list[Call] = []
    stop, workers = threading.Event(), []
    roles = [role for role, b in lab.brokers.items() if b in (sync_broker, async_broker)]
    samples: dict[str, list[dict]] = {role: [] for role in roles}
    threads = [threading.Thread(target=time_sync_calls, args=(*urls, calls, stop))]
    threads += [
        threading.Thread(target=watch_broker, args=(lab.brokers[r], samples[r], stop))
        for r in roles
    ]
    try:
        workers.append(start_worker(lab, "mpwallet", "sync", wait=False))
        workers += [
            start_worker(lab, "mpledger", "async", wait=False, broker_urls=urls)
            for _ in range(async_workers)
        ]
        for worker in workers:
            worker.wait_ready(60)
        cpu0 = {role: cpu_seconds(b) for role, b in lab.brokers.items()}
        with QueueMonitor(async_broker, [QUEUE], interval=0.25) as monitor:
            for thread in threads:
                thread.start()
            start = time.time()
            time.sleep(baseline_s)
            flood_start = time.time()
            _publish_with_bar(start_edge(setup, flood, *urls), setup, flood)
            flood_published = time.time()
            _drain_with_bar(setup, window_s)
            flood_end, processed_in_window = time.time(), processed(setup)
            stop.set()
            finish_in_hand(workers[1:])  # no worker is stopped with messages in hand
            for thread in threads:
                thread.join(60)
            cpu1 = {role: cpu_seconds(b) for role, b in lab.brokers.items()}
    finally:
        stop.set()
        stop_all(workers)  # warm shutdown (SIGTERM to each main process), SIGKILL after 30 s
    with Connection(async_broker.url) as conn:
        # A worker's unacknowledged messages go back to the queue when the broker has handled
        # its closed connection, which on a busy machine can be after the worker exited: purge
        # once the queue has no consumer left, or those messages are counted nowhere.
        channel = conn.default_channel
        wait_until(lambda: channel.queue_declare(QUEUE, passive=True).consumer_count == 0, 30, 0.1)
        left = channel.queue_purge(QUEUE) or 0
    cpu_s = {r: None if cpu0[r] is None else cpu1[r] - cpu0[r] for r in cpu0}
    return FloodRun(
        setup, flood, list(calls), start, flood_start, flood_published, flood_end,
        monitor.series(t0=flood_start), monitor.peak(QUEUE), samples, processed(setup),
        processed_in_window, left, executions(start), cpu_s,
    )  # fmt: skip


# -- reading the flood runs (pure) -------------------------------------------------------------


def phase_calls(run: Any, name: str) -> list[float]:
    """Durations (s) of the answered calls that *started* in phase ``name`` of ``run``."""
    bounds = {
        "baseline": (run.start, run.flood_start),
        "publishing": (run.flood_start, run.flood_published),
        "draining": (run.flood_published, run.flood_end),
        "flood": (run.flood_start, run.flood_end),
    }
    lo, hi = bounds[name]
    return [end - start for start, end, ok in run.calls if ok and lo <= start < hi]


def latency_table(runs: Mapping[str, Any]) -> tuple[dict, dict]:
    """``(table, ratio)``: a :func:`summarize` row per (set-up, phase), and for each phase and
    percentile the shared / split ratio."""
    table = {(s, name): summarize(phase_calls(r, name)) for s, r in runs.items() for name in PHASES}
    ratio = {
        (name, q): table["shared", name][f"p{q}_ms"] / table["split", name][f"p{q}_ms"]
        for name in PHASES
        for q in (50, 90, 99)
    }
    return table, ratio


def mem_growth(samples: Iterable[Mapping[str, Any]]) -> int:
    """What a node's memory grew by during a run: its peak over its first sample (a node keeps
    memory it used before, e.g. in an earlier run on the same lab, so peaks alone mislead)."""
    used = [x["mem_used"] for x in samples if "error" not in x]
    return max(used) - used[0]


#: The three memory growths notebook 06 compares, and how its lines name them.
GROWTH_LABELS = {
    "split sync": "split sync broker",
    "split async": "split async broker",
    "shared": "shared broker",
}


def backlog_growth(runs: Mapping[str, FloodRun]) -> dict[str, float]:
    """How much the flood grew each broker's memory, MB: the split set-up's sync and async
    brokers, and the shared set-up's one broker."""
    growth = {
        s: {role: mem_growth(x) / 2**20 for role, x in run.broker.items()}
        for s, run in runs.items()
    }
    return {
        "split sync": growth["split"]["sync"],
        "split async": growth["split"]["async"],
        "shared": growth["shared"]["sync"],
    }


def growth_report(figures: dict[str, float], version: str, conditions: str, path: Any) -> str:
    """This run's growth, then the growth runs on other server versions recorded in ``path``
    (:mod:`mpsoa_lab.observe.measured`); this run is added there when recording is on."""
    from ..observe import measured

    this_run = {
        "version": version,
        "date": "this run",
        "figures": figures,
        "conditions": conditions,
    }
    others = measured.recorded_runs(path, besides=version)
    measured.record_measured(path, version, figures, conditions)
    return (
        "memory growth, "
        + measured.format_recorded([this_run], GROWTH_LABELS, "MB")
        + "\nrecorded on other versions:\n"
        + measured.format_recorded(others, GROWTH_LABELS, "MB")
    )


def broker_rows(run: FloodRun) -> list[str]:
    """The broker table's lines for one run: memory, alarms, flow and CPU of each broker."""
    lines = []
    for role, samples in run.broker.items():
        ok = [x for x in samples if "error" not in x]
        roles = "sync + async" if len(run.broker) == 1 else role
        cpu = run.cpu_s[role]
        alarms = sum(bool(x["mem_alarm"] or x["disk_alarm"]) for x in ok)
        lines.append(
            f"{run.setup:<8}{role:<7}{roles:<14}{max(x['mem_used'] for x in ok) / 2**20:>12.0f}"
            f"{alarms:>7}{max(x['flow'] for x in ok):>5}{'-' if cpu is None else f'{cpu:.1f}':>7}"
            f"{mem_growth(ok) / 2**20:>11.0f}"
        )
    return lines


# -- pictures ----------------------------------------------------------------------------------


def _rolling_median(values: Sequence[float], width: int = 25) -> list[float]:
    return [percentile(values[max(0, i - width + 1) : i + 1], 50) for i in range(len(values))]


def _log_ms_axis(ax: Any) -> None:
    from matplotlib.ticker import FormatStrFormatter, NullFormatter

    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylabel("sync call, ms")
    ax.grid(alpha=0.3, which="both")


def plot_flood(runs: Mapping[str, FloodRun], baseline_s: float) -> Any:
    """Sync latency over time (dots and a rolling median, log scale) with the backlog (grey,
    right axis), one panel per set-up; t = 0 is the first publish of the flood."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(10, 6), sharex=True, sharey=True, layout="constrained")
    for ax, (setup, run) in zip(axes, runs.items()):
        t = [start - run.flood_start for start, _, _ in run.calls]
        ms = [(end - start) * 1e3 for start, end, _ in run.calls]
        ax.plot(t, ms, ".", markersize=2, alpha=0.35, color="tab:blue")
        ax.plot(t, _rolling_median(ms), color="tab:blue", lw=1.5, label="sync call, median of 25")
        _log_ms_axis(ax)
        ax.axvspan(0, run.flood_published - run.flood_start, color="tab:orange", alpha=0.12,
                   label="publishing the flood")  # fmt: skip
        backlog = ax.twinx()
        pts = [(x, y) for x, y in zip(run.series["t"], run.series["ready_now"]) if y is not None]
        backlog.plot(*zip(*pts), color="grey", linewidth=1.5, label="async backlog")
        backlog.set_ylim(0, run.flood * 1.05)
        backlog.set_ylabel("messages ready\nin mpledger.async")
        where = "a second broker" if setup == "split" else "the same broker"
        ax.set_title(f"{setup}: the async flood on {where} as the sync calls", fontsize=10)
        handles = ax.get_legend_handles_labels()[0] + backlog.get_legend_handles_labels()[0]
        ax.legend(handles=handles, loc="upper left", fontsize=8, framealpha=0.8)
    axes[-1].set_xlabel("seconds after the first publish of the flood (calls at the time made)")
    axes[-1].set_xlim(-baseline_s, None)
    axes[-1].set_yticks([2, 5, 10, 20, 50, 100, 200])
    return fig


def _main(argv: Sequence[str]) -> None:
    if len(argv) < 3 or argv[0] != "edge":
        sys.exit(f"usage: python -m {__name__} edge SETUP N [--confirm]  (EDGE_*_URL set)")
    urls = os.environ["EDGE_SYNC_URL"], os.environ["EDGE_ASYNC_URL"]
    publish_flood(argv[1], int(argv[2]), *urls, confirm="--confirm" in argv[3:])


if __name__ == "__main__":
    _main(sys.argv[1:])
