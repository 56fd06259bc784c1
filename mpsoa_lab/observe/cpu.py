"""CPU time of named processes over an interval, each process counted once.

A measurement names the processes it cares about (``{"edge": pid, "worker": pid, "this
kernel": os.getpid()}``) and wants each one's CPU time *with* its helpers: a prefork worker's
pool processes, a node's ``erl_child_setup``. But the names nest: the kernel started the edge
and the worker, so "the kernel with its children" holds them too, and adding the kernel's tree
to theirs counted them twice (notebook 08 once showed 2.25 cores busy on a 2-core machine).

:class:`CpuMeter` gives each process to the *nearest* named process above it (itself included):
a tree stops where another named tree begins. So the shares of one interval add up to at most
the machine's cores, which :meth:`CpuMeter.total` lets a notebook assert.

A process that ends inside the interval is not counted for the part it ran there (its time
reaches its parent's ``children_*`` times only when it is reaped, together with everything it
used before); the lab's measured processes live through their intervals, so the figures are
exact for them and a lower bound otherwise. The wall time runs from before the first reading to
after the last, so each share is, if anything, a little low; the kernel counts CPU time in clock
ticks (10 ms), so an interval of a second or more keeps that error to about a percent.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from ..plumbing.processes import process_started

__all__ = ["CpuMeter", "cpu_by_process"]

#: A process, as seen once: its pid and when it started (a reused pid is another process).
Key = tuple[int, float]


def cpu_by_process(roots: Mapping[str, int]) -> dict[str, dict[Key, float]]:
    """CPU seconds (user + system) so far of every process under each named root, each process
    under the nearest root above it: the walk down from one root stops at any other root."""
    import psutil

    others = set(roots.values())
    found: dict[str, dict[Key, float]] = {}
    for name, pid in roots.items():
        seen: dict[Key, float] = {}
        todo = [pid]
        while todo:
            current = todo.pop()
            try:
                process = psutil.Process(current)
                times = process.cpu_times()
                children = process.children()
            except psutil.Error:  # gone meanwhile
                continue
            started = process_started(current)
            if started is None:
                continue
            seen[(current, started)] = times.user + times.system
            todo += [c.pid for c in children if c.pid not in others]
        found[name] = seen
    return found


class CpuMeter:
    """CPU seconds (user + system) that each named process, with the children that are not
    named themselves, used between :meth:`start` and :meth:`stop`; :meth:`share` divides by
    the wall time (1.0 = one core). Processes without a pid (``None``) are left out."""

    def __init__(self, pids: Mapping[str, int | None]):
        self.pids = {name: pid for name, pid in pids.items() if pid is not None}
        self._t0 = 0.0
        self._before: dict[str, dict[Key, float]] = {}
        self.seconds: dict[str, float] = {}
        self.wall = 0.0

    def start(self) -> CpuMeter:
        # the wall time brackets both readings (taken while walking the trees, which takes tens
        # of milliseconds among many processes): a share is never overstated
        self._t0 = time.perf_counter()
        self._before = cpu_by_process(self.pids)
        return self

    def stop(self) -> dict[str, float]:
        after = cpu_by_process(self.pids)
        self.wall = time.perf_counter() - self._t0
        self.seconds = {}
        for name, now in after.items():
            before = self._before.get(name, {})
            # a process started meanwhile counts from 0; one that moved to another name's tree
            # (it cannot: parents do not change while both run) would count from 0 too
            self.seconds[name] = sum(max(0.0, s - before.get(key, 0.0)) for key, s in now.items())
        return self.seconds

    def share(self) -> dict[str, float]:
        """CPU seconds per second of wall time, by process (2.0 would be both cores)."""
        return {n: s / self.wall for n, s in self.seconds.items()} if self.wall else {}

    def total(self) -> float:
        """All the named processes together, in cores: never more than the machine has."""
        return sum(self.share().values())
