"""Each node's own view of the cluster, read once a second while a split runs.

Every node is asked on its own management API (``GET /api/nodes``, :data:`TIMEOUT` s to answer), all at
once: which members it sees running, and which it lists in ``partitions`` (the nodes it has
seen come back after having thought them down). A node that does not answer is recorded as
such: a node paused by ``pause_minority`` closes its listeners, and a node busy deciding may
answer late.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests

from ...plumbing.cluster import Cluster

__all__ = ["View", "ViewMonitor", "read_views", "views_at", "agreed"]

#: Seconds a node has to answer (each of connect and read): a view read that started this long
#: before a moment was over by then.
TIMEOUT = 1.5


@dataclass(frozen=True)
class View:
    """What node ``index`` said at wall-clock time ``t`` (``answered`` False: nothing)."""

    t: float
    index: int
    answered: bool
    running: frozenset[int] = frozenset()  # indexes of the members it sees running
    partitions: frozenset[int] = frozenset()  # members it lists as partitioned from it

    def __str__(self) -> str:
        if not self.answered:
            return "no answer"
        seen = ",".join(str(i + 1) for i in sorted(self.running))
        split = ",".join(str(i + 1) for i in sorted(self.partitions))
        return f"sees {seen} running" + (f"; partitioned from {split}" if split else "")


def _ask(cluster: Cluster, index: int) -> View:
    node = cluster.nodes[index]
    now = time.time()
    try:
        resp = requests.get(
            f"http://{node.address}:{node.management_port}/api/nodes",
            auth=("guest", "guest"),
            timeout=TIMEOUT,
        )
        resp.raise_for_status()
        nodes = resp.json()
    except (requests.RequestException, ValueError):
        return View(now, index, False)
    by_name = {n.nodename: n.index for n in cluster.nodes}
    me = next((n for n in nodes if n["name"] == node.nodename), {})
    running = frozenset(
        by_name[n["name"]] for n in nodes if n.get("running") and n["name"] in by_name
    )
    partitions = frozenset(by_name[p] for p in me.get("partitions") or [] if p in by_name)
    return View(now, index, True, running, partitions)


def read_views(cluster: Cluster) -> list[View]:
    """Every node's view now, asked all at once."""
    with ThreadPoolExecutor(len(cluster.nodes)) as pool:
        return list(pool.map(lambda i: _ask(cluster, i), range(len(cluster.nodes))))


def agreed(views: list[View], size: int) -> bool:
    """Whether every node answered, sees every member running, and lists no partition."""
    everyone = frozenset(range(size))
    return len(views) == size and all(
        v.answered and v.running == everyone and not v.partitions for v in views
    )


class ViewMonitor:
    """Reads every node's view once a second in a thread, until stopped."""

    def __init__(self, cluster: Cluster, every: float = 1.0):
        self.cluster, self.every = cluster, every
        self.views: list[View] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="views", daemon=True)

    def __enter__(self) -> ViewMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.views.extend(read_views(self.cluster))
            self._stop.wait(max(0.0, self.every - (time.monotonic() - started)))

    def at(self, t: float) -> list[View]:
        """The last view of each node read at or before wall-clock time ``t``."""
        return views_at(self.views, t)


def views_at(views: list[View], t: float) -> list[View]:
    """The last of ``views`` of each node read at or before wall-clock time ``t``."""
    last: dict[int, View] = {}
    for view in views:
        if view.t <= t:
            last[view.index] = view
    return [last[i] for i in sorted(last)]
