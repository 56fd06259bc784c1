"""Latency figures for the notebooks: percentiles, one summary row, ECDF points, overlap,
events per second over time, and several callers started together.

No broker here: the notebooks make and time their calls themselves (the call is what they
teach) and hand the samples to these functions. Samples are in seconds; summaries are in
milliseconds. :func:`run_callers` is the thread plumbing for "N callers at once": each caller
prepares in its own thread (a Celery app's ``rpc://`` result backend belongs to one thread),
then all are released together and the wall time of the whole run is measured.

>>> summarize([0.002, 0.003, 0.004, 0.010])["p50_ms"]
3.5
>>> max_overlap([(0.0, 1.0), (0.5, 2.0), (1.0, 3.0)])
2
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = [
    "PERCENTILES",
    "CallerRun",
    "ecdf",
    "max_overlap",
    "percentile",
    "rate_over_time",
    "run_callers",
    "summarize",
]

S = TypeVar("S")

#: The percentiles the notebooks report: the median and two tails.
PERCENTILES: tuple[int, ...] = (50, 90, 99)


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``samples``, by linear interpolation between ranks.

    The same definition as ``numpy.percentile``'s default, so figures agree with numpy's.
    """
    if not samples:
        raise ValueError("no samples: a percentile needs at least one value")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be between 0 and 100, not {q!r}")
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(
    seconds: Sequence[float], percentiles: Iterable[int] = PERCENTILES
) -> dict[str, float]:
    """One table row: ``calls`` and ``p50_ms``, ``p90_ms``, ``p99_ms`` (or the given ones)."""
    row: dict[str, float] = {"calls": len(seconds)}
    for q in percentiles:
        row[f"p{q}_ms"] = percentile(seconds, q) * 1e3
    return row


def ecdf(samples: Iterable[float]) -> tuple[list[float], list[float]]:
    """Points of the empirical distribution: sorted values and the share of samples <= each."""
    xs = sorted(samples)
    n = len(xs)
    return xs, [(i + 1) / n for i in range(n)]


def rate_over_time(
    times: Iterable[float], zero: float = 0.0, step: float = 0.5, since: float | None = None
) -> tuple[list[float], list[float]]:
    """Events per second in bins of ``step`` seconds, ``times`` counted from ``zero``: ``(bin
    starts, rates)``, empty bins included, from the bin of ``since`` (seconds from ``zero``;
    default: the first event's) to the last event's.

    >>> rate_over_time([0.1, 0.2, 1.2], step=0.5)
    ([0.0, 0.5, 1.0], [4.0, 0.0, 2.0])
    """
    if step <= 0:
        raise ValueError("step must be positive")
    counts = collections.Counter(int((t - zero) // step) for t in times)
    if not counts:
        return [], []
    first = min(counts) if since is None else int(since // step)
    bins = range(first, max(counts) + 1)
    return [b * step for b in bins], [counts.get(b, 0) / step for b in bins]


def max_overlap(intervals: Iterable[tuple[float, float]]) -> int:
    """The largest number of ``(start, end)`` intervals open at one instant.

    Intervals are half-open, ``[start, end)``: one that ends when another starts does not
    overlap it. Used on a service's execution log: how many tasks ran at the same time.
    """
    events: list[tuple[float, int]] = []
    for start, end in intervals:
        if end < start:
            raise ValueError(f"interval ends before it starts: ({start!r}, {end!r})")
        events += [(start, 1), (end, -1)]
    events.sort()  # at equal times, -1 (an end) sorts before +1 (a start)
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


@dataclass(frozen=True)
class CallerRun:
    """What :func:`run_callers` measured: every caller's samples, and the run's wall time."""

    samples: list[Any]
    wall_s: float
    #: ``time.time()`` once every caller was prepared, just before their release: with
    #: :attr:`ended_at`, the window in which the callers' work ran (to match execution logs).
    started_at: float

    @property
    def ended_at(self) -> float:
        """``time.time()`` at the end of the run (the last caller done)."""
        return self.started_at + self.wall_s

    @property
    def per_second(self) -> float:
        """Samples (calls) completed per second of wall time, all callers together."""
        return len(self.samples) / self.wall_s


def run_callers(
    n: int, prepare: Callable[[int], S], work: Callable[[int, S], list[Any]], timeout: float = 60.0
) -> CallerRun:
    """Run ``n`` callers in threads: each ``prepare(i)`` untimed, then all ``work(i, state)``
    released together; return their samples (concatenated, caller 0 first) and the wall time
    from the release to the last caller's end. The clock starts after the last ``prepare``
    has returned, before any ``work`` begins.

    ``prepare`` and ``work`` of a caller run in the same thread, so whatever ``prepare`` builds
    (an app, its connections, its reply queue) is that caller's own. An exception in any caller
    is raised here, after the others have finished.
    """
    if n < 1:
        raise ValueError(f"need at least one caller, not {n!r}")
    marks: list[tuple[float, float]] = []  # taken by the barrier once all have arrived

    def mark() -> None:
        marks.append((time.time(), time.perf_counter()))

    release = threading.Barrier(n + 1, action=mark, timeout=timeout)

    def caller(i: int) -> list[Any]:
        try:
            state = prepare(i)
            release.wait()
        except BaseException:
            release.abort()  # nobody waits for a caller that will never come
            raise
        return work(i, state)

    with ThreadPoolExecutor(n, thread_name_prefix="caller") as pool:
        futures = [pool.submit(caller, i) for i in range(n)]
        try:
            release.wait()
        except threading.BrokenBarrierError:
            errors = [future.exception() for future in futures]
            causes = [e for e in errors if e and not isinstance(e, threading.BrokenBarrierError)]
            if causes:
                raise causes[0] from None  # the failing caller's own error
            raise
        started_at, t0 = marks[0]
        results = [future.result() for future in futures]
        wall_s = time.perf_counter() - t0
    return CallerRun([sample for result in results for sample in result], wall_s, started_at)
