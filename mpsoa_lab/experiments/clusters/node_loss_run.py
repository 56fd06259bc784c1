"""What a node-loss run recorded, and the figures read from it (no broker needed).

:class:`NodeLossRun` holds one configuration under the fault: the calls and tasks, when the
node was killed and back, the counts of lost and duplicated work, what each client did after,
and the :class:`~.clean_stop.Rejoin` that followed; :func:`longest_gap` is how long a stream of
successes stopped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..faults import Tally
from .clean_stop import Rejoin
from .load import Call
from .queues import ASYNC_TASK

__all__ = ["longest_gap", "runs_to_end", "NodeLossRun"]


def longest_gap(times: Iterable[float], start: float, end: float) -> float:
    """The longest stretch of ``[start, end]`` with none of ``times`` in it (seconds): how long
    a stream of successes (answers, finished tasks) stopped. 0 for an empty window."""
    if end <= start:
        return 0.0
    inside = sorted(t for t in times if start <= t <= end)
    edges = [start, *inside, end]
    return max(b - a for a, b in zip(edges, edges[1:]))


def runs_to_end(times: Iterable[float], start: float, end: float, least: float = 1.0) -> bool:
    """Whether the longest stretch of ``[start, end]`` without ``times`` (of at least
    ``least`` seconds) is the one that reaches ``end``: the stream had not come back when the
    window closed, so its gap is a lower bound."""
    inside = sorted(t for t in times if start <= t <= end)
    final = end - (inside[-1] if inside else start)
    return final >= least and final >= longest_gap(inside, start, end) - 1e-9


@dataclass
class NodeLossRun:
    """One configuration under the same fault; times are wall clock (``time.time()``)."""

    config: str
    version: tuple[int, ...]
    killed: str
    clients_elsewhere: bool
    leaders: dict[str, str]  # queue -> leader (home) before the kill
    replicas: dict[str, list[str]]  # queue -> nodes with a copy before the kill
    calls: list[Call]
    sent: list[tuple[float, str]]
    send_errors: list[tuple[float, str]]
    executions: list[dict[str, Any]] = field(repr=False)
    started_at: float = 0.0
    killed_at: float = 0.0
    back_at: float = 0.0  # the killed node reported running again
    ended_at: float = 0.0  # the load stopped
    sync: Tally | None = None
    async_: Tally | None = None
    consumers_after: dict[str, int] = field(default_factory=dict)
    recovered: dict[str, bool] = field(default_factory=dict)  # client -> served after the fault
    alive: dict[str, bool] = field(default_factory=dict)  # worker -> process still running
    worker_errors: dict[str, str] = field(default_factory=dict)  # worker -> its first CRITICAL
    #: worker -> how often its log says Celery retried the delayed-delivery set-up on a node
    delayed_delivery_retries: dict[str, int] = field(default_factory=dict)
    qos: dict[str, dict[str, int]] = field(default_factory=dict)  # queue -> prefetch counts
    rejoin: Rejoin | None = None
    timings: dict[str, float] = field(default_factory=dict)
    one_address: bool = False  # every client on one HAProxy address in front of the cluster
    transient_replies: bool = False  # the caller's reply queue was exclusive (not durable)

    @property
    def label(self) -> str:
        """The configuration and how its clients were set up, e.g. ``quorum (one address,
        transient replies)``."""
        how = [
            text
            for on, text in (
                (self.clients_elsewhere, "clients elsewhere"),
                (self.one_address, "one address"),
                (self.transient_replies, "transient replies"),
            )
            if on
        ]
        return self.config + (f" ({', '.join(how)})" if how else "")

    def finished(self, task: str) -> list[float]:
        """When each execution of ``task`` in the run's log finished (wall clock)."""
        return [e["finished"] for e in self.executions if e["task_name"] == task]

    @property
    def sync_unavailable_s(self) -> float:
        """The longest stretch after the kill with no sync call answered."""
        answered = [c.ended for c in self.calls if c.ok]
        return longest_gap(answered, self.killed_at, self.ended_at)

    @property
    def async_stopped_s(self) -> float:
        """The longest stretch after the kill with no async task finished."""
        return longest_gap(self.finished(ASYNC_TASK), self.killed_at, self.ended_at)

    @property
    def cut_off(self) -> list[str]:
        """The streams (``sync``, ``async``) whose outage after the kill lasted to the end of
        the run: their unavailable seconds are a lower bound, the service was not seen back."""
        answered = [c.ended for c in self.calls if c.ok]
        streams = {"sync": answered, "async": self.finished(ASYNC_TASK)}
        return [
            name
            for name, times in streams.items()
            if runs_to_end(times, self.killed_at, self.ended_at)
        ]

    @property
    def calls_failed(self) -> int:
        return sum(1 for c in self.calls if not c.ok)

    def summary(self) -> dict[str, Any]:
        assert self.sync is not None and self.async_ is not None
        return {
            "config": self.label,
            "sync calls": len(self.calls),
            "sync failed": self.calls_failed,
            "sync lost": self.sync.lost,
            "sync dup": self.sync.duplicated,
            "async sent": self.async_.published,
            "async send errors": len(self.send_errors),
            "async lost": self.async_.lost,
            "async dup": self.async_.duplicated,
            "sync unavailable s": round(self.sync_unavailable_s, 1),
            "async stopped s": round(self.async_stopped_s, 1),
            "down s": round(self.back_at - self.killed_at, 1),
            "cut off": "+".join(self.cut_off) or "-",
        }
