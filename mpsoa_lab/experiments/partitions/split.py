"""A three-node cluster split for real (or one node suspended), under counted load.

:func:`partition_cluster` starts a cluster with ``cluster_partition_handling`` set to one mode
and a short ``net_ticktime``, on hosts of its own (:mod:`~mpsoa_lab.plumbing.netns`);
:func:`set_mode` switches a running one to another mode.
:func:`fault_run` declares one queue per kind through node 1, so that node 1 holds the classic
queue's master and the quorum queue's leader, and publishes to each queue from both sides:
through node 1 (the side that will be the minority) and through node 2 (the majority), every
message by id with publisher confirms. Then:

1. the fault: the network between node 1 and nodes 2 and 3 is cut (silently), or node 1's
   Erlang VM is suspended, for longer than ``net_ticktime``, so that the others declare it down;
2. it ends (healed, resumed); the run waits a bounded time for the cluster to serve normally
   again: every node answers and sees all three running with no partition, and every
   publisher has a confirm for a message published after the heal;
3. where a node still lists a partition, the lab does what RabbitMQ's partitions guide tells
   an operator to do: restart the nodes of the side it does not trust (node 1), and waits
   again; under ``autoheal``, whose point is to resolve the split itself, it only waits;
4. the load stops, each queue is read to the end through node 2, and every confirmed message
   is looked for by id: *lost* (confirmed, not there), *duplicated* (there twice).

No consumer runs during the run: every message the broker confirmed should be in its queue
afterwards, so whatever is missing was lost by the cluster, not taken by a consumer.
"""

from __future__ import annotations

import contextlib
import re
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...plumbing.cluster import Cluster
from ...plumbing.errors import LabError
from ...running.cluster import start_cluster, stop_cluster
from ...running.lab import Lab
from ..clusters.queues import MIRRORING_POLICY
from ..clusters.versions import mirroring_available, server_version
from .traffic import CountingPublisher, QueueUnreadable, connect, drain
from .views import View, ViewMonitor, agreed, read_views, views_at

__all__ = [
    "MODES",
    "FAULTS",
    "TICKTIME",
    "SideCount",
    "SplitRun",
    "partition_cluster",
    "start_partition_cluster",
    "stop_partition_cluster",
    "set_mode",
    "fault_run",
    "kinds_for",
    "QUEUES",
    "STEPS",
]

#: The partition-handling modes that matter for a cluster of three (``pause_if_all_down`` is
#: for clusters spread over two racks).
MODES = ("ignore", "pause_minority", "autoheal")
#: The queue of each kind.
QUEUES = {"mirrored": "p11.mirrored", "quorum": "p11.quorum"}
SIDES = {"minority": 0, "majority": 1}
#: The Erlang distribution's tick time of the lab's partition clusters: a silent peer is
#: declared down after 0.75 to 1.25 times this (60 s by default; short, to keep runs short).
TICKTIME = 6
#: The steps :func:`fault_run` reports to its ``on_step`` (a progress bar's total).
STEPS = 5
#: What happens to node 1: its network cut, or its VM suspended.
FAULTS = ("split", "suspend")


def kinds_for(version: Sequence[int]) -> list[str]:
    """The queue kinds a server runs: classic mirrored only before 4.0."""
    return [k for k in QUEUES if k != "mirrored" or mirroring_available(version)]


@dataclass(frozen=True)
class SideCount:
    """What one publisher (one queue, one side) saw, counted by message id."""

    kind: str
    side: str
    published_split: int  # published while the network was cut
    confirmed_split: int  # of those, confirmed by the broker while the network was cut
    confirmed_late: int  # of those, confirmed only after the network healed
    confirmed: int  # every confirmed message of the run
    lost: int | None  # confirmed, and not in the queue after recovery (None: unreadable)
    duplicated: int | None  # in the queue more than once (None: the queue was unreadable)
    unconfirmed: int  # never acked nor nacked
    told: str  # what the client was told from the split to normal service ("" for nothing)


@dataclass
class SplitRun:
    """One split: its times (wall clock), counts, and every node's views over time."""

    mode: str
    version: str
    ticktime: int
    fault: str
    t_start: float
    hosts: bool = True  # the nodes ran on hosts of their own (network namespaces)
    hold: float = 0.0  # seconds the fault was held (split: at least; suspend: exactly)
    t_split: float = 0.0
    t_heal: float = 0.0
    t_detected: float | None = None  # both sides had declared the other down (a split)
    t_restart: float | None = None  # the operator's restart of the minority (``ignore``)
    t_normal: float | None = None
    t_end: float = 0.0
    counts: list[SideCount] = field(default_factory=list)
    views: list[View] = field(default_factory=list)
    publishers: dict[str, CountingPublisher] = field(default_factory=dict)
    logs: dict[int, list[str]] = field(default_factory=dict)  # what each node logged of it
    unreadable: dict[str, str] = field(default_factory=dict)  # kind -> why it was not read

    @property
    def normal_after_s(self) -> float | None:
        """Seconds from the heal to normal service (None: not within the run)."""
        return None if self.t_normal is None else self.t_normal - self.t_heal

    def count(self, kind: str, side: str) -> SideCount:
        return next(c for c in self.counts if c.kind == kind and c.side == side)

    def lost(self, kind: str) -> int | None:
        """Confirmed messages of ``kind``'s queue missing after recovery, both sides; None when
        the run had no such queue (no mirroring from 4.0) or it could not be read (see
        :attr:`unreadable`)."""
        counts = [c.lost for c in self.counts if c.kind == kind]
        return None if not counts or None in counts else sum(counts)  # type: ignore[arg-type]

    def paused(self, node: int = 0) -> bool:
        """Whether node ``node`` (0: node 1) logged that it paused itself, as ``pause_minority``
        makes a node that sees itself in a minority ("Cluster minority/secondary status
        detected", 3.10 and 4.0)."""
        return any("minority" in line.lower() for line in self.logs.get(node, []))

    def views_at(self, t: float) -> list[View]:
        """Each node's last view read at or before wall-clock time ``t``."""
        return views_at(self.views, t)


def _declare(cluster: Cluster, queues: Mapping[str, str]) -> None:
    """The queues, declared through node 1 (their master or leader there), mirrored ones by a
    policy; returns once each mirrored queue has a synchronised mirror on the other nodes."""
    if "mirrored" in queues:
        with cluster.management(0) as api:
            api.put_policy("p11-mirrored", r"^p11\.mirrored\.", dict(MIRRORING_POLICY), "/")
    node = cluster.nodes[0]
    conn = connect(node.address, node.amqp_port)
    try:
        channel = conn.channel()
        for kind, queue in queues.items():
            args = {"x-queue-type": "quorum"} if kind == "quorum" else {}
            channel.queue_declare(queue, durable=True, auto_delete=False, arguments=args)
    finally:
        conn.close()
    deadline = time.monotonic() + 30
    while "mirrored" in queues and time.monotonic() < deadline:
        info = cluster.queue(queues["mirrored"])
        if len(info.get("synchronised_slave_nodes") or []) == len(cluster.nodes) - 1:
            return
        time.sleep(0.3)


def _delete(cluster: Cluster, queues: Iterable[str]) -> None:
    with contextlib.suppress(Exception), cluster.management(1, timeout=10) as api:
        for queue in queues:
            api.delete_queue(queue, "/")


def _confirmed_after(publisher: CountingPublisher, t: float) -> bool:
    return any(publisher.sent[i] >= t for i in publisher.confirmed)


def _wait_normal(run: SplitRun, cluster: Cluster, since: float, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if agreed(read_views(cluster), len(cluster.nodes)) and all(
            _confirmed_after(p, since) for p in run.publishers.values()
        ):
            run.t_normal = time.time()
            return True
        time.sleep(0.25)
    return False


#: What a node logs about a partition and its handling (3.10 and 4.0 wording).
_LOGGED = re.compile(
    r"partition|autoheal|pause|minority|inconsistent_database|net_tick", re.IGNORECASE
)


def _partition_lines(path: Path, offset: int = 0, keep: int = 40) -> list[str]:
    """The lines of a node's log about partitions from byte ``offset`` on (from the start if
    the log is now shorter), without timestamps' noise (the last few)."""
    try:
        with open(path, "rb") as log:
            log.seek(offset if _size(path) >= offset else 0)
            lines = log.read().decode(errors="replace").splitlines()
    except OSError:
        return []
    return [line.strip()[:200] for line in lines if _LOGGED.search(line)][-keep:]


def _wait_agreed(cluster: Cluster, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if agreed(read_views(cluster), len(cluster.nodes)):
            return True
        time.sleep(0.5)
    return False


def _told(publisher: CountingPublisher, since: float, until: float) -> str:
    events = Counter(e.kind for e in publisher.told(since, until))
    return ", ".join(f"{kind} x{n}" for kind, n in sorted(events.items()))


def start_partition_cluster(
    lab: Lab, mode: str, *, hosts: bool = True, ticktime: int = TICKTIME
) -> Cluster:
    """A three-node cluster whose ``cluster_partition_handling`` is ``mode``, with a short
    ``net_ticktime``, on hosts of its own (``hosts``: needed to split it, not to suspend a
    node). Stop it with :func:`stop_partition_cluster`."""
    _check_mode(mode)
    return start_cluster(
        lab, "sync", 3, hosts=hosts, ticktime=ticktime, config={"cluster_partition_handling": mode}
    )


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"partition-handling mode {mode!r}: the lab runs {', '.join(MODES)}")


def set_mode(cluster: Cluster, mode: str) -> None:
    """Switch a running cluster to another partition-handling mode without restarting it.

    Each node reads ``cluster_partition_handling`` from its application environment every time
    it handles a partition (a peer down, a peer back that had thought it down, autoheal's
    checks), so setting it there (``rabbitmqctl eval``) takes effect at the next one; the
    value is read back from every node. It goes into each node's configuration file too, so
    that a node restarted later (the operator's restart) keeps it."""
    _check_mode(mode)
    expr = (
        f"application:set_env(rabbit, cluster_partition_handling, {mode}), "
        "application:get_env(rabbit, cluster_partition_handling)."
    )
    with ThreadPoolExecutor(len(cluster.nodes)) as pool:
        answers = list(pool.map(lambda node: node.ctl("eval", expr).strip(), cluster.nodes))
    for node, answer in zip(cluster.nodes, answers):
        if answer != f"{{ok,{mode}}}":
            raise LabError(
                f"{node.nodename} did not take cluster_partition_handling = {mode}: it "
                f"answered {answer!r}. Start a cluster in that mode instead: "
                f"start_partition_cluster(lab, {mode!r})."
            )
        node.extra["cluster_partition_handling"] = mode


def stop_partition_cluster(lab: Lab, cluster: Cluster) -> None:
    """Resume node 1 if it is suspended (it would only stop when killed), stop every node and
    remove the network."""
    cluster.resume_node(0)
    stop_cluster(lab, cluster)


@contextlib.contextmanager
def partition_cluster(
    lab: Lab, mode: str, *, hosts: bool = True, ticktime: int = TICKTIME
) -> Iterator[Cluster]:
    """:func:`start_partition_cluster`, stopped on the way out."""
    cluster = start_partition_cluster(lab, mode, hosts=hosts, ticktime=ticktime)
    try:
        yield cluster
    finally:
        stop_partition_cluster(lab, cluster)


def fault_run(
    cluster: Cluster,
    fault: str = "split",
    *,
    hold: float = 10.0,
    hold_max: float | None = None,
    settle: float = 6.0,
    recover: float = 30.0,
    rate: float = 25.0,
    lead: float = 2.0,
    on_step: Callable[[str], None] | None = None,
) -> SplitRun:
    """One fault of node 1 under load, healed, recovered and counted (see the module doc):
    ``split`` cuts its network from nodes 2 and 3 for at least ``hold`` seconds, and on until
    both sides have declared the other down (node 1's log names both peers ``down:
    net_tick_timeout`` or node 1 has paused, nodes 2 and 3 see only each other running) and
    1 s more, at most
    ``hold_max`` (default four tick times): a heal that comes before node 1 has noticed
    leaves a split that only one side saw, which no mode resolves. ``suspend`` stops node 1's
    Erlang VM (SIGSTOP) for ``hold`` seconds and resumes it (SIGCONT), as a paused virtual
    machine.

    ``settle`` bounds the wait for normal service after the heal, which decides whether the
    cluster came back by itself; where it did not and a node still lists a partition, the
    operator restarts node 1. ``recover`` bounds the wait for normal service after that restart
    (publishers refused while the node was down come back on their own back-off: on a busy
    machine more than ``settle`` after the node is up), the wait after the heal under
    ``autoheal`` (no operator acts: the mode restarts nodes itself), the wait for a cluster that
    has not agreed by the end, and then each queue's read; a queue
    not read by then is *unreadable* (:attr:`SplitRun.unreadable`), its losses unknown.
    ``on_step(text)`` is called at each of the :data:`STEPS` steps (for a progress bar)."""
    step = on_step or (lambda text: None)
    if fault not in FAULTS:
        raise ValueError(f"fault {fault!r}: the lab makes {' or '.join(FAULTS)}")
    mode = cluster.nodes[0].extra.get("cluster_partition_handling", "ignore")
    ticktime = cluster.nodes[0].ticktime or 60
    version = server_version(cluster)
    kinds = kinds_for(version)
    queues = {kind: f"{QUEUES[kind]}.{fault}.{time.monotonic_ns() % 10**6}" for kind in kinds}
    _declare(cluster, queues)
    run = SplitRun(
        mode, ".".join(map(str, version)), int(ticktime), fault, time.time(), cluster.on_hosts, hold
    )
    try:
        for kind in kinds:
            for side, index in SIDES.items():
                node = cluster.nodes[index]
                name = f"{kind}-{side}"
                run.publishers[name] = CountingPublisher(
                    name, node.address, node.amqp_port, queues[kind], rate
                ).start()
        step("load running")
        with ViewMonitor(cluster) as monitor:
            time.sleep(lead)
            run.t_split = time.time()
            offsets = [_size(n.log_file) for n in cluster.nodes]
            cluster.split([0]) if fault == "split" else cluster.suspend_node(0)
            step(f"{fault} of node 1")
            time.sleep(hold)
            if fault == "split":
                run.t_detected = _wait_detected(cluster, offsets[0], hold_max or 4.0 * ticktime)
                time.sleep(1.0)
            cluster.heal() if fault == "split" else cluster.resume_node(0)
            run.t_heal = time.time()
            step("healed" if fault == "split" else "resumed")
            heals_itself = mode == "autoheal"  # the operator waits for it, up to ``recover``
            if (
                not _wait_normal(run, cluster, run.t_heal, recover if heals_itself else settle)
                and not heals_itself
                and _still_split(cluster)
            ):
                run.t_restart = time.time()  # what the partitions guide tells an operator
                cluster.restart_node(0)
                _wait_normal(run, cluster, run.t_restart, recover)
            step("served normally" if run.t_normal else "not served normally")
            time.sleep(1.0)
            for publisher in run.publishers.values():
                publisher.stop()
            run.t_end = time.time()
            if run.t_normal is None:  # let the cluster finish before its queues are read
                _wait_agreed(cluster, recover)
        run.views = monitor.views + read_views(cluster)  # the last: once it has all recovered
        run.logs = {n.index: _partition_lines(n.log_file, offsets[n.index]) for n in cluster.nodes}
        majority = cluster.nodes[SIDES["majority"]]
        held: dict[str, Counter | None] = {}
        for kind, queue in queues.items():
            try:
                held[kind] = Counter(
                    drain(majority.address, majority.amqp_port, queue, timeout=recover)
                )
            except QueueUnreadable as exc:
                held[kind], run.unreadable[kind] = None, str(exc)
        step("counted")
        run.counts = [
            _count(run, name, p, held[name.split("-")[0]]) for name, p in run.publishers.items()
        ]
        return run
    finally:
        if fault == "suspend":
            cluster.resume_node(0)  # a run that failed half-way leaves no node stopped
        for publisher in run.publishers.values():
            publisher.stop(2.0)  # nothing happens to one stopped already
        _delete(cluster, queues.values())


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _wait_detected(cluster: Cluster, offset: int, timeout: float) -> float | None:
    """Wait until both sides of a split of node 1 have declared the other down: node 1's log
    (from ``offset``) names every peer ``down: net_tick_timeout`` or node 1 refuses
    connections (paused), and nodes 2 and 3 see only each other running. The wall-clock time
    that was so, or None at ``timeout``."""
    peers = [n.nodename for n in cluster.nodes[1:]]
    others = frozenset(range(1, len(cluster.nodes)))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(cluster.nodes[0].log_file, "rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
        minority = _refuses(cluster.nodes[0]) or all(
            f"'{p}' down: net_tick_timeout" in text for p in peers
        )
        views = read_views(cluster)[1:]
        if minority and all(v.answered and v.running == others for v in views):
            return time.time()
        time.sleep(0.25)
    return None


def _refuses(node: Any) -> bool:
    """Whether a node refuses AMQP connections: paused (pause_minority closes its listeners)."""
    try:
        socket.create_connection((node.address, node.amqp_port), 0.5).close()
        return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def _still_split(cluster: Cluster, timeout: float = 10.0) -> bool:
    """Whether a node lists a partition: the split outlived the network's heal. A node that
    does not answer (busy, or paused) might be the one that lists it, so the nodes are asked
    again until every one has answered or one lists a partition, for at most ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        views = read_views(cluster)
        if any(v.answered and v.partitions for v in views):
            return True
        if all(v.answered for v in views) or time.monotonic() >= deadline:
            return False
        time.sleep(0.5)


def _count(
    run: SplitRun, name: str, publisher: CountingPublisher, held: Counter | None
) -> SideCount:
    kind, side = name.split("-")
    confirmed = set(publisher.confirmed)
    split_ids = {i for i, t in publisher.sent.items() if run.t_split <= t < run.t_heal}
    acked_in_split = {i for i, t in publisher.confirmed.items() if t < run.t_heal}
    return SideCount(
        kind=kind,
        side=side,
        published_split=len(split_ids),
        confirmed_split=len(split_ids & acked_in_split),
        confirmed_late=len(split_ids & confirmed - acked_in_split),
        confirmed=len(confirmed),
        lost=None if held is None else len(confirmed - set(held)),
        duplicated=None if held is None else sum(1 for i in publisher.sent if held[i] > 1),
        unconfirmed=len(publisher.unconfirmed),
        told=_told(publisher, run.t_split, run.t_normal or run.t_end),
    )
