"""Notebook 06's memory alarm: an async flood, with publisher confirms and no async worker,
drives its broker into its memory alarm while a caller times sync calls, once per set-up (the
design's two brokers, or one shared broker).

:func:`run_alarm` waits until the backlog holds ``at_backlog`` messages, tells the flood's broker
its memory is full (``rabbitmqctl set_vm_memory_high_watermark``), holds it so for ``hold_s``
seconds, then gives the node its own limit back. :func:`alarm_phases` (pure) sorts the recorded
calls into before, during and after the alarm; :func:`plot_alarm` draws them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kombu import Connection

from ..plumbing.management import Management
from ..plumbing.util import ready_messages, wait_until
from ..running.workers import start_worker
from .two_brokers import QUEUE, Call, _log_ms_axis, start_edge, time_sync_calls

__all__ = ["AlarmRun", "alarm_phases", "node_memory", "plot_alarm", "run_alarm"]


def node_memory(broker: Any) -> tuple[int, int, bool]:
    """(memory used, memory limit, alarm raised) of the broker's node, from the management API
    (its node statistics, refreshed every second on the lab's nodes)."""

    def read():
        with Management.for_broker(broker, timeout=2.0) as api:
            node = api.nodes()[0]
        return (
            (node["mem_used"], node["mem_limit"], node["mem_alarm"]) if "mem_used" in node else None
        )

    return wait_until(read, timeout=10, interval=0.25)


@dataclass
class AlarmRun:
    """One set-up's memory alarm: the calls and the measured instants (epoch seconds).

    ``window`` is the interval in which the alarm certainly held: from the broker reporting it
    (``alarm_at``) to the moment the limit was about to be put back (``reset_at``)."""

    setup: str
    calls: list[Call]
    flood_start: float
    lowered_at: float
    alarm_at: float
    reset_at: float
    cleared_at: float
    in_queue: int
    sync_node_alarm: bool
    limit: int
    lowered_to: int

    @property
    def window(self) -> tuple[float, float]:
        return self.alarm_at, self.reset_at


def _lower_limit(broker: Any, limit: int) -> None:
    broker.node.ctl("set_vm_memory_high_watermark", "absolute", str(limit))


def run_alarm(
    lab: Any,
    setup: str,
    sync_broker: Any,
    async_broker: Any,
    *,
    flood: int,
    at_backlog: int,
    hold_s: float,
    call_timeout: float,
    baseline_s: float,
) -> AlarmRun:
    """Drive ``async_broker`` into its memory alarm under a confirmed flood, no async worker,
    while a caller times sync calls on ``sync_broker``; the node's own limit is always restored."""
    urls = (sync_broker.url, async_broker.url)
    calls: list[Call] = []
    stop, edge, worker = threading.Event(), None, None
    _, limit, _ = node_memory(async_broker)
    caller = threading.Thread(
        target=time_sync_calls, args=(*urls, calls, stop), kwargs={"timeout": call_timeout}
    )
    try:
        worker = start_worker(lab, "mpwallet", "sync")
        caller.start()
        time.sleep(baseline_s)
        flood_start = time.time()
        edge = start_edge(f"alarm-{setup}", flood, *urls, confirm=True)
        try:
            wait_until(lambda: ready_messages(urls[1], QUEUE) >= at_backlog, 60, 0.1)
            lowered_to = node_memory(async_broker)[0] // 2  # half of what the node uses
            _lower_limit(async_broker, lowered_to)
            lowered_at = time.time()
            wait_until(lambda: node_memory(async_broker)[2], timeout=30, interval=0.25)
            alarm_at = time.time()
            sync_node_alarm = node_memory(sync_broker)[2]
            time.sleep(hold_s)
            reset_at = time.time()
        finally:  # the node's own limit back, whatever happened
            _lower_limit(async_broker, limit)
        wait_until(lambda: not node_memory(async_broker)[2], timeout=30, interval=0.25)
        cleared_at = time.time()
        edge.stdout.read()
        if edge.wait(120) != 0:
            raise RuntimeError("the edge process failed")
        in_queue = ready_messages(urls[1], QUEUE)  # the edge waited for every confirm
        time.sleep(baseline_s)  # sync calls after the alarm
    finally:
        stop.set()
        if caller.is_alive():
            caller.join(60)
        if edge is not None and edge.poll() is None:
            edge.kill()
        if worker is not None:
            worker.stop()
        with Connection(urls[1]) as conn:
            conn.default_channel.queue_purge(QUEUE)
    return AlarmRun(
        setup, list(calls), flood_start, lowered_at, alarm_at, reset_at, cleared_at,
        in_queue, bool(sync_node_alarm), limit, lowered_to,
    )  # fmt: skip


def alarm_phases(run: Any) -> dict[str, Any]:
    """The calls of an alarm run by phase: ``before`` (ended before the flood began),
    ``during`` (ended inside ``run.window``), ``after`` (started once the alarm was seen
    cleared), and ``longest``, the longest call in progress at some point of the window."""
    lo, hi = run.window
    return {
        "before": [c for c in run.calls if c[1] <= run.flood_start],
        "during": [c for c in run.calls if lo <= c[1] <= hi],
        "after": [c for c in run.calls if c[0] >= run.cleared_at],
        "longest": max((e - s for s, e, _ in run.calls if e >= lo and s <= hi), default=0.0),
    }


def plot_alarm(runs: Mapping[str, AlarmRun]) -> Any:
    """Each sync call at the time it *ended* (answered blue, failed red), with the alarm window
    shaded: the same interval :func:`alarm_phases` counts as "during"."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(10, 5), sharex=True, sharey=True, layout="constrained")
    for ax, (setup, run) in zip(axes, runs.items()):
        t0 = run.flood_start
        for ok, colour, label in ((True, "tab:blue", "answered"), (False, "tab:red", "failed")):
            pts = [(e - t0, (e - s) * 1e3) for s, e, o in run.calls if o == ok]
            if pts:
                ax.plot(*zip(*pts), ".", markersize=3, color=colour, label=f"sync call, {label}")
        lo, hi = run.window
        ax.axvspan(lo - t0, hi - t0, color="tab:red", alpha=0.12,
                   label="memory alarm held (reported → limit put back)")  # fmt: skip
        ax.axvline(run.lowered_at - t0, color="grey", ls=":", lw=1, label="limit lowered")
        ax.axvline(run.cleared_at - t0, color="grey", ls="--", lw=1, label="alarm reported cleared")
        _log_ms_axis(ax)
        where = "a second broker" if setup == "split" else "the sync calls' broker"
        ax.set_title(f"{setup}: the flood, and its memory alarm, on {where}", fontsize=10)
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    axes[-1].set_xlabel("seconds since the flood began (each call at the time it ended)")
    return fig
