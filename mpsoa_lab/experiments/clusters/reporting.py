"""The runs as tables and plots: :func:`loss_table`, :func:`rejoin_table`, :func:`cost_table`,
:func:`plot_node_loss` and :func:`single_copy_outcome` (pure: no broker)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...observe.latency import rate_over_time
from .costs import CostRun
from .node_loss_run import NodeLossRun
from .queues import ASYNC_TASK

__all__ = ["loss_table", "rejoin_table", "cost_table", "plot_node_loss", "single_copy_outcome"]


def loss_table(runs: Sequence[NodeLossRun]) -> str:
    """One row per configuration: sync calls failed, lost, duplicated, unavailable seconds."""
    rows = [run.summary() for run in runs]
    if not rows:
        return ""
    columns = list(rows[0])
    width = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    lines = ["  ".join(f"{c:>{width[c]}}" for c in columns)]
    lines += ["  ".join(f"{r[c]!s:>{width[c]}}" for c in columns) for r in rows]
    return "\n".join(lines)


def single_copy_outcome(run: NodeLossRun) -> str:
    """What the clients of a run did while the node holding the only copy of their queues was
    down, in words built from the run's own records (the server's version decides it: 3.x
    refuses a declaration of such a queue at once, 4.0 makes it wait for the node)."""
    version = ".".join(map(str, run.version))
    down = run.back_at - run.killed_at
    gone = [w for w, alive in run.alive.items() if not alive or run.worker_errors.get(w)]
    if gone:
        first = next((e for e in run.worker_errors.values() if e), "no critical line logged")
        served = [c for c, ok in run.recovered.items() if ok]
        return (
            f"RabbitMQ {version}: {' and '.join(gone)} exited (first critical line: "
            f"{first[:100]!r}); served again once the node was back: "
            f"{', '.join(served) or 'nobody'}."
        )
    return (
        f"RabbitMQ {version}: every worker stayed up and logged no critical error; "
        f"{run.calls_failed} sync calls failed and {len(run.send_errors)} async publishes "
        f"raised while the node was down for {down:.1f} s; service stopped for "
        f"{run.sync_unavailable_s:.1f} s (sync) and {run.async_stopped_s:.1f} s (async), "
        f"and every client was served again: {all(run.recovered.values())}."
    )


def cost_table(runs: Sequence[CostRun], baseline: str = "2014") -> str:
    """Sync p50/p99 and async throughput of each configuration, and each as a ratio to
    ``baseline`` (unreplicated classic queues: one node holds each queue)."""
    base = next(r for r in runs if r.config == baseline)
    lines = [
        f"{'config':<13}{'p50 ms':>8}{'p99 ms':>8}{'tasks/s':>9}{'publish/s':>11}"
        f"{'p50 x':>7}{'p99 x':>7}{'tasks/s x':>10}  memory MiB per node"
    ]
    for r in runs:
        lines.append(
            f"{r.config:<13}{r.p50_ms:>8.1f}{r.p99_ms:>8.1f}{r.throughput:>9.0f}"
            f"{r.publish_rate:>11.0f}{r.p50_ms / base.p50_ms:>7.2f}{r.p99_ms / base.p99_ms:>7.2f}"
            f"{r.throughput / base.throughput:>10.2f}  "
            + " ".join(f"{m:.0f}" for _, m in sorted(r.memory_mib.items()))
        )
    return "\n".join(lines)


def rejoin_table(runs: Sequence[NodeLossRun]) -> str:
    """One row per configuration whose run stopped a queue's leader cleanly and started it
    again: what was published before and while it was down, what the queue held after, who
    leads it then, whether the rejoined node holds a full copy and how many seconds after its
    start the management API showed it."""
    lines = [
        f"{'config':<10} {'before':>6} {'transient':>9} {'while down':>10} {'refused':>7} "
        f"{'after':>5} {'copy on it':>10} {'after s':>7}  leader after  first refusal"
    ]
    for run in runs:
        r = run.rejoin
        if r is None:
            continue
        lines.append(
            f"{run.config:<10} {r.published_before:>6} {r.transient_before:>9} "
            f"{r.published_while_down:>10} {r.failed_while_down:>7} {r.in_queue_after:>5} "
            f"{'yes' if r.holds_copy else 'no':>10} "
            f"{'-' if r.sync_s is None else f'{r.sync_s:.1f}':>7}  "
            f"node {r.leader_after.split('@')[0][-1]}"
            f"        {r.first_error[:60] or '-'}"
        )
    return "\n".join(lines)


def plot_node_loss(runs: Sequence[NodeLossRun], axes: Sequence[Any]) -> None:
    """One panel per run: sync calls answered and async tasks run per second, counted from
    the kill (dotted line at 0) until the load stopped; the killed node back at the dashed."""
    for run, ax in zip(runs, axes):
        answered = [c.ended for c in run.calls if c.ok]
        ax.step(*rate_over_time(answered, run.killed_at), where="post", label="sync answered/s")
        ax.step(*rate_over_time(run.finished(ASYNC_TASK), run.killed_at), where="post",
                label="async run/s")  # fmt: skip
        ax.axvline(0, color="grey", linestyle=":")
        ax.axvline(run.back_at - run.killed_at, color="green", linestyle="--")
        end = run.ended_at - run.killed_at
        ax.set_xlim(run.started_at - run.killed_at, end)
        if run.cut_off:  # an outage still on when the load stopped: its length is a lower bound
            ax.text(end, ax.get_ylim()[1] * 0.5, f"no {' or '.join(run.cut_off)} service\n"
                    "to the end of the run", ha="right", va="center", fontsize=8, color="red")  # fmt: skip
        ax.set_title(run.label, fontsize=10)
        ax.set(xlabel="seconds from the kill")
    axes[0].set(ylabel="per second")
    axes[0].legend(fontsize=8)
