"""Notebook 10's harness: the design's queues on a three-node cluster, and a node lost under load.

* :data:`CONFIGS`: the three ways of holding the design's queues on a cluster, each a
  :class:`QueueConfig`: ``2014`` (classic queues declared with the ``x-ha-policy: all`` argument
  that ``CELERY_QUEUE_HA_POLICY = 'all'`` produced), ``mirrored`` (classic queues mirrored by a
  policy, ``ha-mode: all`` with ``ha-sync-mode: automatic``) and ``quorum`` (``x-queue-type:
  quorum``, the way Celery 5.5+ declares them); :func:`celery_queues` turns one into Celery's
  ``task_queues`` (the 2014 dict shape, JSON, so a worker takes it in ``MPSOA_CELERY_CONFIG``).
* :func:`ha_setting_2014`: the design's six queues declared with the 2014 argument in a vhost
  of their own, and what the broker says of each (mirrors, policy).
* :func:`node_loss`: one sync and one async ``mpledger`` worker and an edge (publisher confirms
  on), all on the cluster's failover URL; sync calls and async tasks flow while the node that
  leads the busiest queue gets ``kill -9`` and is started again; every task id is counted in the
  service's execution log. Then :func:`rejoin`: the leader of a queue stopped cleanly and
  started again, and what it holds. :class:`NodeLossRun` holds all of it.
* :func:`quorum_specifics`: what quorum queues change for a Celery platform, read on the broker:
  a classic queue redeclared as quorum, the queues Celery declares for countdown and ETA,
  per-consumer prefetch, and a poison message dead-lettered after its delivery limit.
* :func:`cost`: sync latency, async throughput and each node's memory of one configuration
  on the same nodes; :func:`cost_table` puts them side by side, as ratios to the 2014 one.
* :func:`loss_table`, :func:`longest_gap`, :func:`mirroring_note`: reporting and pure logic.

Everything a function starts (workers, vhosts, apps) is stopped or deleted before it returns,
whatever happened; a node it stopped or killed is started again.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..design import rpc_backend as _rpc_backend
from ..design.naming import KINDS, SERVICES, queue_name
from ..observe.latency import percentile, rate_over_time
from ..plumbing.cluster import Cluster
from ..plumbing.errors import LabError
from ..plumbing.util import wait_until
from ..running.cluster import proxy_url, start_broker_proxy
from ..running.haproxy import stop_haproxy
from ..running.lab import Lab
from ..running.workers import Worker, start_worker
from .faults import Tally, tally

__all__ = [
    "QueueConfig",
    "CONFIGS",
    "MIRRORING_POLICY",
    "MirroringUnavailable",
    "server_version",
    "mirroring_note",
    "check_mirroring",
    "celery_queues",
    "cluster_vhost",
    "HaSetting",
    "ha_setting_2014",
    "Call",
    "Rejoin",
    "NodeLossRun",
    "node_loss",
    "rejoin",
    "quorum_specifics",
    "TransientReplyRPC",
    "TRANSIENT_REPLY_BACKEND",
    "longest_gap",
    "loss_table",
    "CostRun",
    "cost",
    "cost_table",
    "rejoin_table",
    "plot_node_loss",
]

SERVICE = "mpledger"
SYNC_TASK = "mpledger.sync.entry_count"
ASYNC_TASK = "mpledger.async.record_entry"

#: The policy of the ``mirrored`` configuration. ``ha-sync-mode: automatic``: a mirror that
#: (re)joins copies the messages already in the queue at once, instead of holding only what
#: arrives after it joined (``manual``, the default), so a second node lost after a rejoin
#: loses nothing; the queue pauses while it syncs, which for the lab's small queues is a blink.
MIRRORING_POLICY: dict[str, Any] = {"ha-mode": "all", "ha-sync-mode": "automatic"}


@dataclass(frozen=True)
class QueueConfig:
    """One way of holding the design's queues on a cluster."""

    name: str
    what: str
    queue_arguments: Mapping[str, Any] = field(default_factory=dict)
    policy: Mapping[str, Any] | None = None  # set on the vhost, pattern: every queue


CONFIGS: dict[str, QueueConfig] = {
    "2014": QueueConfig(
        "2014", "classic queues, x-ha-policy=all (the 2014 setting)", {"x-ha-policy": "all"}
    ),
    "mirrored": QueueConfig("mirrored", "classic queues mirrored by policy", {}, MIRRORING_POLICY),
    "quorum": QueueConfig("quorum", "quorum queues", {"x-queue-type": "quorum"}),
}


class MirroringUnavailable(LabError):
    """Classic queue mirroring asked for on a RabbitMQ that no longer has it (4.0 and later)."""


# -- versions ---------------------------------------------------------------------------------
def server_version(cluster: Cluster) -> tuple[int, ...]:
    """The RabbitMQ version the cluster's management API reports, as numbers."""
    with cluster.management() as api:
        text = api.overview()["rabbitmq_version"]
    return tuple(int(p) for p in text.split("+")[0].split("-")[0].split(".") if p.isdigit())


def mirroring_note(version: Sequence[int]) -> str:
    """What classic queue mirroring is on RabbitMQ ``version``: supported, deprecated, gone."""
    shown = ".".join(map(str, version))
    if tuple(version) >= (4, 0):
        return (
            f"RabbitMQ {shown} has no classic queue mirroring: it was removed in 4.0 (ha-mode "
            "policies are ignored or refused). Use quorum queues (x-queue-type: quorum)."
        )
    if tuple(version) >= (3, 9):
        return (
            f"RabbitMQ {shown} still mirrors classic queues, but mirroring is deprecated since "
            "3.9 and removed in 4.0: use quorum queues for new work."
        )
    return f"RabbitMQ {shown} mirrors classic queues by policy (ha-mode)."


def mirroring_available(version: Sequence[int]) -> bool:
    """Whether RabbitMQ ``version`` mirrors classic queues (before 4.0)."""
    return tuple(version) < (4, 0)


def configs_for(version: Sequence[int]) -> list[str]:
    """The :data:`CONFIGS` RabbitMQ ``version`` can run: ``mirrored`` only before 4.0."""
    return [name for name in CONFIGS if name != "mirrored" or mirroring_available(version)]


def check_mirroring(version: Sequence[int]) -> str:
    """:func:`mirroring_note` if ``version`` mirrors classic queues, else
    :class:`MirroringUnavailable` with that note."""
    note = mirroring_note(version)
    if not mirroring_available(version):
        raise MirroringUnavailable(note)
    return note


# -- queues -----------------------------------------------------------------------------------
def celery_queues(
    config: QueueConfig,
    service: str = SERVICE,
    kinds: Iterable[str] = KINDS,
    extra: Iterable[str] = (),
) -> dict[str, dict[str, Any]]:
    """Celery's ``task_queues`` for ``service``'s queues of ``kinds`` held as ``config`` says,
    in the 2014 dict shape (JSON: a worker takes it in ``MPSOA_CELERY_CONFIG``). ``extra`` are
    more queue names on the service's exchange, bound with their own name."""
    queues = {}
    names = [(queue_name(service, kind), f"{queue_name(service, kind)}.#") for kind in kinds]
    names += [(name, name) for name in extra]
    for name, key in names:
        queues[name] = {
            "exchange": service,
            "exchange_type": "topic",
            "binding_key": key,
            "durable": True,
            "queue_arguments": dict(config.queue_arguments),
        }
    return queues


#: Seconds the management API may take to create or delete a vhost on every member. A creation
#: takes well under a second on a cluster whose nodes have all booted (``Cluster.start`` waits
#: for that); RabbitMQ 3.10 itself answers HTTP 500 after 45 s when the vhost does not start on
#: some node, so waiting longer than that would only hide the error.
VHOST_TIMEOUT = 60.0


@contextlib.contextmanager
def cluster_vhost(cluster: Cluster, name: str, config: QueueConfig | None = None) -> Iterator[str]:
    """A vhost of its own on ``cluster`` (with ``config``'s policy on every queue), deleted
    on the way out. A vhost starts on every member (its message stores, its queue
    supervisors); :data:`VHOST_TIMEOUT` bounds the wait."""
    try:  # a creation that failed half-way is deleted too
        with cluster.management(timeout=VHOST_TIMEOUT) as api:
            api.create_vhost(name)
            if config is not None and config.policy:
                check_mirroring(server_version(cluster))
                api.put_policy(f"{config.name}-queues", ".*", dict(config.policy), name)
        yield name
    finally:
        with contextlib.suppress(Exception), cluster.management(timeout=VHOST_TIMEOUT) as api:
            api.delete_vhost(name)


def _vhost_name(config: str) -> str:
    return f"nb10-{config}-{os.getpid()}-{time.monotonic_ns() % 100000}"


@dataclass(frozen=True)
class HaSetting:
    """The design's queues declared with the 2014 argument, as the broker reports them."""

    version: tuple[int, ...]
    queues: dict[str, dict[str, Any]]  # name -> arguments, node, slave_nodes, type
    policies: list[str]  # the policies of the vhost (none: only a policy mirrors a queue)

    @property
    def mirrored(self) -> list[str]:
        """The queues that have at least one mirror."""
        return [n for n, q in self.queues.items() if q["slave_nodes"]]


def ha_setting_2014(cluster: Cluster, services: Iterable[str] = SERVICES) -> HaSetting:
    """Declare every queue of the design (``services``, both kinds) with ``x-ha-policy: all``
    in a fresh vhost of ``cluster``, then read from the broker where each lives and whether it
    has mirrors. Since RabbitMQ 3.0 only a policy mirrors a queue; the argument is kept as an
    ordinary argument and does nothing."""
    from kombu import Connection

    from ..design.topology import platform_queues

    config = CONFIGS["2014"]
    with cluster_vhost(cluster, _vhost_name("ha2014")) as vhost:
        with Connection(cluster.failover_url(vhost), connect_timeout=5) as conn:
            channel = conn.default_channel
            for queue in platform_queues(services=tuple(services)):
                queue.queue_arguments = dict(config.queue_arguments)
                queue(channel).declare()
            names = [q.name for q in platform_queues(services=tuple(services))]
        time.sleep(0.1)
        read = {}
        for name in names:
            info = cluster.queue(name, vhost)
            read[name] = {
                "arguments": info.get("arguments", {}),
                "node": info.get("node"),
                "slave_nodes": list(info.get("slave_nodes") or []),
                "type": info.get("type", "classic"),
            }
        with cluster.management() as api:
            policies = [p["name"] for p in api.policies(vhost)]
        return HaSetting(server_version(cluster), read, policies)


# -- the load ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Call:
    """One sync call: wall-clock times it was sent and ended, and what the caller got."""

    sent: float
    ended: float
    ok: bool
    task_id: str | None
    error: str = ""


class _Load:
    """Two threads: sync calls one after the other, async tasks at ``rate`` per second."""

    def __init__(self, sync_app: Any, async_app: Any, rate: float, call_timeout: float):
        self.sync_app, self.async_app = sync_app, async_app
        self.rate, self.call_timeout = rate, call_timeout
        self.calls: list[Call] = []
        self.sent: list[tuple[float, str]] = []  # async tasks whose publish was confirmed
        self.send_errors: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._calls, daemon=True),
            threading.Thread(target=self._tasks, daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)

    def _calls(self) -> None:
        while not self._stop.is_set():
            sent, task_id = time.time(), None
            try:
                result = self.sync_app.send_task(SYNC_TASK, kwargs={"account": "nb10"})
                task_id = result.id
                result.get(timeout=self.call_timeout)
                self.calls.append(Call(sent, time.time(), True, task_id))
            except Exception as exc:  # noqa: BLE001 - what the caller gets is the observation
                self.calls.append(Call(sent, time.time(), False, task_id, _short(exc)))
                self._stop.wait(0.05)

    def _tasks(self) -> None:
        i, start = 0, time.monotonic()
        while not self._stop.is_set():
            due = start + i / self.rate
            if (wait := due - time.monotonic()) > 0 and self._stop.wait(wait):
                break
            kwargs = {"entry_id": f"nb10-{i}", "account": "nb10", "amount_cents": 1}
            try:
                task_id = self.async_app.send_task(ASYNC_TASK, kwargs=kwargs).id
                self.sent.append((time.time(), task_id))
            except Exception as exc:  # noqa: BLE001 - a publish that failed is counted apart
                self.send_errors.append((time.time(), _short(exc)))
            i += 1


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:120]}"


def _declare(url: str, config: QueueConfig, service: str = SERVICE) -> None:
    """Declare ``service``'s queues as ``config`` says, through the node at ``url``."""
    from kombu import Connection, Queue

    with Connection(url, connect_timeout=5) as conn:
        for name, options in celery_queues(config, service).items():
            Queue.from_dict(name, **options)(conn.default_channel).declare()


class TransientReplyRPC(_rpc_backend.RPCBackend):
    """The lab's mended ``rpc://`` backend with a non-durable reply queue.

    Celery declares each caller's reply queue durable (and auto-delete) on the node the caller
    is connected to. When that node dies, the queue's record stays and every redeclaration
    through another node fails with ``NOT_FOUND - home node ... is down`` until the node is
    back: the caller gets no reply for the whole outage. A non-durable queue is dropped with
    its node, so the caller declares it again on the node it fails over to.
    """

    @property
    def binding(self) -> Any:
        return self.Queue(
            self.oid, self.exchange, self.oid, durable=False, auto_delete=True, expires=self.expires
        )


#: What ``result_backend`` names to use :class:`TransientReplyRPC`.
TRANSIENT_REPLY_BACKEND = f"{__name__}:TransientReplyRPC"


def _one_address(lab: Lab, cluster: Cluster, vhost: str) -> tuple[Any, str]:
    """A TCP-mode HAProxy in front of ``cluster`` whose active server is the node leading the
    service's queues (the others its backups), and its URL at ``vhost``."""
    home = cluster.queue_leader(queue_name(SERVICE, "async"), vhost)
    proxy = start_broker_proxy(lab, cluster, active=cluster.index_of(home))
    return proxy, proxy_url(proxy, cluster, vhost)


def _edge(
    url: str, config: QueueConfig, service: str = SERVICE, backend: str | None = None
) -> tuple[Any, Any]:
    """The design's two publisher apps on ``url`` (a failover list), with ``config``'s queues,
    publisher confirms and ``backend`` (default: the lab's mended ``rpc://``) on the sync app."""
    from ..design.apps import celery_apps_factory
    from ..design.rpc_backend import BACKEND

    sync_app, async_app = celery_apps_factory("PUBLISHER", url, url, service)
    for kind, app in (("sync", sync_app), ("async", async_app)):
        app.conf.update(
            task_queues=celery_queues(config, service, (kind,)),
            broker_transport_options={"confirm_publish": True},
        )
    sync_app.conf.result_backend = backend or BACKEND
    return sync_app, async_app


# -- reading the run --------------------------------------------------------------------------
def longest_gap(times: Iterable[float], start: float, end: float) -> float:
    """The longest stretch of ``[start, end]`` with none of ``times`` in it (seconds): how long
    a stream of successes (answers, finished tasks) stopped. 0 for an empty window."""
    if end <= start:
        return 0.0
    inside = sorted(t for t in times if start <= t <= end)
    edges = [start, *inside, end]
    return max(b - a for a, b in zip(edges, edges[1:]))


@dataclass(frozen=True)
class Rejoin:
    """A queue's leader stopped cleanly and started again: what the cluster held meanwhile
    and what the rejoined node holds."""

    node: str  # the node stopped (the queue's leader, or its home for a classic queue)
    published_before: int  # persistent messages confirmed before the stop
    transient_before: int  # transient messages confirmed before the stop
    published_while_down: int  # persistent messages confirmed while the node was down
    failed_while_down: int  # publishes that raised while it was down
    first_error: str
    in_queue_while_down: int | None  # messages the queue held while the node was down
    in_queue_after: int  # messages in the queue once the node was back
    leader_after: str
    replicas_after: tuple[str, ...]
    in_sync_after: tuple[str, ...]  # mirrors in sync / quorum members online, once back
    stop_s: float
    start_s: float
    sync_s: float | None  # seconds after its start until the node held a full copy

    @property
    def holds_copy(self) -> bool:
        """Whether the rejoined node holds a full copy of the queue."""
        return self.node in self.in_sync_after


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
    transient_replies: bool = False  # the caller's reply queue was not durable

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
        }


def _qos(
    cluster: Cluster, vhost: str, expected: Iterable[str] = (), timeout: float = 15.0
) -> dict[str, dict[str, int]]:
    """Per queue: the consumers' own prefetch and their channels' global prefetch. The API
    lists a new consumer and its channel up to a statistics interval late (later on a busy
    machine): wait up to ``timeout`` s until every queue of ``expected`` has one."""
    deadline = time.monotonic() + timeout
    while True:
        with cluster.management() as api:
            consumers = api.consumers(vhost)
            channels = {c["name"]: c for c in api.channels() if c.get("vhost") == vhost}
        found: dict[str, dict[str, int]] = {}
        for c in consumers:
            channel = channels.get((c.get("channel_details") or {}).get("name"))
            if channel is None:
                continue  # its channel is not listed yet
            found[c["queue"]["name"]] = {
                "consumer prefetch": c.get("prefetch_count", 0),
                "global prefetch": channel.get("global_prefetch_count", 0),
            }
        if set(expected) <= set(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def _consumers(cluster: Cluster, vhost: str, queues: Iterable[str]) -> dict[str, int]:
    counts = {}
    for name in queues:
        try:
            counts[name] = int(cluster.queue(name, vhost).get("consumers") or 0)
        except LabError:
            counts[name] = -1  # the queue is not there (its node is down)
    return counts


def _answers(sync_app: Any, timeout: float) -> bool:
    try:
        sync_app.send_task(SYNC_TASK, kwargs={"account": "probe"}).get(timeout=timeout)
        return True
    except Exception:  # noqa: BLE001 - no answer is the observation
        return False


def _probe(
    url: str, config: QueueConfig, sync_app: Any, async_app: Any, executed: Any, timeout: float
) -> dict[str, bool]:
    """Whether, now, the run's caller is answered, a brand-new caller is answered (the sync
    worker serves) and the async worker runs a task published by the run's edge."""
    ok = {"sync caller (the run's)": _answers(sync_app, timeout)}
    fresh, other = _edge(url, config)
    try:
        ok["sync worker (a new caller)"] = _answers(fresh, timeout)
    finally:
        fresh.close()
        other.close()
    try:
        kwargs = {"entry_id": "probe", "account": "probe", "amount_cents": 1}
        tid = async_app.send_task(ASYNC_TASK, kwargs=kwargs).id
        deadline = time.monotonic() + timeout
        while tid not in executed() and time.monotonic() < deadline:
            time.sleep(0.1)
        ok["async worker"] = tid in executed()
    except Exception:  # noqa: BLE001
        ok["async worker"] = False
    return ok


#: What Celery 5.5+'s ``DelayedDelivery`` bootstep logs each time it retries a node's URL.
DELAYED_DELIVERY_RETRY = "Retrying delayed delivery setup"


def _log_count(worker: Worker, text: str) -> int:
    """How many lines of ``worker``'s log contain ``text``."""
    try:
        return worker.log_file.read_text(errors="replace").count(text)
    except OSError:
        return 0


def _critical(worker: Worker) -> str:
    """The first CRITICAL line of a worker's log (e.g. ``Unrecoverable error: ...``), or ''."""
    try:
        for line in worker.log_file.read_text(errors="replace").splitlines():
            if "CRITICAL" in line:
                return line.split("] ", 1)[-1][:200]
    except OSError:
        pass
    return ""


def _queued_ids(cluster: Cluster, vhost: str, queue: str) -> list[str]:
    try:
        info = cluster.queue(queue, vhost)
    except LabError:
        return []
    count = int(info.get("messages") or 0)
    if not count:
        return []
    with cluster.management() as api:
        messages = api.get_messages(queue, count, "ack_requeue_true", vhost)
    return [(m["properties"].get("headers") or {}).get("id") for m in messages]


def node_loss(
    lab: Lab,
    cluster: Cluster,
    config: QueueConfig | str,
    *,
    rate: float = 50.0,
    before: float = 1.5,
    down_for: float = 3.0,
    after: float = 2.0,
    call_timeout: float = 2.0,
    drain_timeout: float = 20.0,
    rejoin_messages: int = 50,
    worker_config: Mapping[str, Any] | None = None,
    clients_elsewhere: bool = False,
    one_address: bool = False,
    caller_backend: str | None = None,
    timeout: float = 60.0,
) -> NodeLossRun:
    """``config`` under the fault, in a fresh vhost of ``cluster``.

    One sync and one async ``mpledger`` worker (prefork, concurrency 1, Celery settings
    ``worker_config`` on top of ``config``'s queues) and an edge, all given the cluster's
    failover URL; sync calls (``entry_count``, ``call_timeout``) one after the other and async
    ``record_entry`` tasks at ``rate`` per second, publisher confirms on. After ``before``
    seconds the node that leads ``mpledger.async`` gets SIGKILL; ``down_for`` seconds later it
    is started again; the load goes on ``after`` seconds once the broker reports it running.
    Then every confirmed task is waited for (at most ``drain_timeout`` s), the queues' consumers
    are read, each client is probed, and :func:`rejoin` runs (unless ``rejoin_messages`` is 0).
    The node is running again and the vhost deleted when this returns.

    The queues are declared through the first node, so it leads them (a classic queue lives
    there; a quorum queue's leader is placed on the declaring client's node). Every client's
    failover list starts with that node too, so the kill takes the queues' leaders and every
    client's connection at once; ``clients_elsewhere=True`` starts the lists at the second
    node instead, so the kill takes the leaders only. ``one_address=True`` gives every client
    one URL instead, a TCP-mode HAProxy in front of the cluster
    (:func:`~mpsoa_lab.running.cluster.start_broker_proxy`) that sends every connection to the
    leaders' node while it is UP and to another node when it is not: the same placement as the
    default failover lists, behind one address. ``caller_backend`` is the sync caller's
    ``result_backend`` (default: the lab's mended ``rpc://``; :data:`TRANSIENT_REPLY_BACKEND`).
    """
    from ..design.services import mpledger

    if isinstance(config, str):
        config = CONFIGS[config]
    storage = mpledger.service.storage
    storage.reset()
    version = server_version(cluster)
    queues = [queue_name(SERVICE, kind) for kind in KINDS]
    timings: dict[str, float] = {}
    workers: list[Worker] = []
    apps: tuple[Any, ...] = ()
    killed = proxy = None
    t0 = time.monotonic()
    with cluster_vhost(cluster, _vhost_name(config.name), config) as vhost:
        urls = cluster.node_urls(vhost)
        _declare(urls[0], config)
        url = ";".join(urls[1:] + urls[:1] if clients_elsewhere else urls)
        try:
            if one_address:
                proxy, url = _one_address(lab, cluster, vhost)
            for kind in KINDS:
                settings = {"task_queues": celery_queues(config, SERVICE, (kind,))}
                settings.update(worker_config or {})
                workers.append(
                    start_worker(
                        lab, SERVICE, kind, broker_urls=(url, url), config=settings, wait=False
                    )
                )
            for worker in workers:
                worker.wait_ready(timeout)
            timings["workers ready"] = time.monotonic() - t0
            apps = sync_app, async_app = _edge(url, config, backend=caller_backend)
            sync_app.send_task(SYNC_TASK, kwargs={"account": "warm"}).get(timeout=10)
            leaders = {q: cluster.queue_leader(q, vhost) for q in queues}
            replicas = {q: cluster.queue_replicas(q, vhost) for q in queues}
            killed = leaders[queue_name(SERVICE, "async")]
            load = _Load(sync_app, async_app, rate, call_timeout)
            started_at = time.time()
            load.start()
            try:
                time.sleep(before)
                killed_at = time.time()
                cluster.kill_node(killed)
                time.sleep(down_for)
                t1 = time.monotonic()
                cluster.start_node(killed, timeout=timeout)
                timings["restart"] = time.monotonic() - t1
                back_at = time.time()
                time.sleep(after)
            finally:
                load.stop()
            ended_at = time.time()
            killed_node, killed = killed, None  # started again: nothing to restore
            ids = [tid for _, tid in load.sent]
            sync_ids = [c.task_id for c in load.calls if c.task_id]
            wanted = ids + sync_ids  # a call that timed out may still run: wait for it too
            t1 = time.monotonic()

            def executed() -> set[str]:
                return {e["task_id"] for e in storage.executions()}

            deadline, last, seen = time.monotonic() + drain_timeout, -1, 0
            while time.monotonic() < deadline:
                done = executed()
                seen = sum(1 for t in wanted if t in done)
                if seen == len(wanted) or not any(w.is_running() for w in workers):
                    break  # all ran, or no worker is left to run the rest
                if seen == last and time.monotonic() - t1 > 5:
                    break  # no progress for a while: the rest is lost or stuck
                last = seen
                time.sleep(0.5)
            time.sleep(0.5)  # a duplicate run, if any, shows now
            timings["drain"] = time.monotonic() - t1
            consumers = _consumers(cluster, vhost, queues)
            alive = {f"{w.kind} worker": w.is_running() for w in workers}
            qos = _qos(cluster, vhost)  # once: it may miss a consumer the API lists late
            # a worker that is gone serves nobody: no need to wait for its answer
            recovered = _probe(
                url,
                config,
                sync_app,
                async_app,
                executed,
                timeout=5.0 if all(alive.values()) else 1.0,
            )
            worker_errors = {f"{w.kind} worker": _critical(w) for w in workers}
            retries = {f"{w.kind} worker": _log_count(w, DELAYED_DELIVERY_RETRY) for w in workers}
            executions = storage.executions()
            queued = _queued_ids(cluster, vhost, queue_name(SERVICE, "async"))
            queued_sync = _queued_ids(cluster, vhost, queue_name(SERVICE, "sync"))
            run = NodeLossRun(
                one_address=one_address,
                transient_replies=caller_backend == TRANSIENT_REPLY_BACKEND,
                config=config.name,
                version=version,
                killed=killed_node,
                clients_elsewhere=clients_elsewhere,
                leaders=leaders,
                replicas=replicas,
                calls=load.calls,
                sent=load.sent,
                send_errors=load.send_errors,
                executions=executions,
                started_at=started_at,
                killed_at=killed_at,
                back_at=back_at,
                ended_at=ended_at,
                sync=tally(sync_ids, executions, queued=queued_sync),
                async_=tally(ids, executions, queued=queued),
                consumers_after=consumers,
                recovered=recovered,
                alive=alive,
                worker_errors=worker_errors,
                delayed_delivery_retries=retries,
                qos=qos,
                timings=timings,
            )
            if rejoin_messages:
                t1 = time.monotonic()
                run.rejoin = rejoin(
                    cluster, config, vhost, messages=rejoin_messages, timeout=timeout
                )
                timings["rejoin"] = time.monotonic() - t1
        finally:
            for app in apps:
                with contextlib.suppress(Exception):
                    app.close()
            for worker in workers:
                worker.kill()
            if proxy is not None:
                stop_haproxy(lab, proxy)
            if killed is not None and not cluster.node(killed).is_running():
                cluster.start_node(killed, timeout=timeout)
            for node in cluster.nodes:
                if not node.is_running():
                    cluster.start_node(node.index, timeout=timeout)
    timings["total"] = time.monotonic() - t0
    return run


# -- a clean stop and a rejoin ----------------------------------------------------------------
REJOIN_QUEUE = "mpledger.rejoin"


def _publish(url: str, queue: str, count: int, persistent: bool, tag: str) -> tuple[int, str]:
    """``count`` messages to ``queue`` through the default exchange with publisher confirms;
    return how many were confirmed and the first error."""
    from kombu import Connection, Producer

    confirmed, error = 0, ""
    try:
        with Connection(url, connect_timeout=3, transport_options={"confirm_publish": True}) as c:
            c.ensure_connection(max_retries=3)
            producer = Producer(c.default_channel)
            for i in range(count):
                try:
                    producer.publish(
                        {"n": i, "tag": tag},
                        routing_key=queue,
                        delivery_mode=2 if persistent else 1,
                        mandatory=True,
                    )
                    confirmed += 1
                except Exception as exc:  # noqa: BLE001 - counted, the rest is not tried
                    return confirmed, _short(exc)
    except Exception as exc:  # noqa: BLE001
        error = error or _short(exc)
    return confirmed, error


def _depth(url: str, queue: str) -> int | None:
    """Messages in ``queue`` (a passive declare through ``url``), None if it cannot be read."""
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=2)
            return conn.default_channel.queue_declare(queue, passive=True).message_count
    except Exception:  # noqa: BLE001 - a queue whose node is down cannot be read
        return None


def _in_sync(info: Mapping[str, Any]) -> tuple[str, ...]:
    if info.get("members"):
        return tuple(sorted(info.get("online") or []))
    return tuple(sorted([info["node"], *(info.get("synchronised_slave_nodes") or [])]))


def rejoin(
    cluster: Cluster,
    config: QueueConfig,
    vhost: str,
    *,
    messages: int = 50,
    timeout: float = 60.0,
) -> Rejoin:
    """In ``vhost`` (``config``'s policy already set): declare :data:`REJOIN_QUEUE` with
    ``config``'s arguments, publish ``messages`` persistent and ``messages`` transient messages,
    stop its leader (a classic queue's home) cleanly, publish ``messages`` more through another
    node, start the node again and read what the queue and the rejoined node hold."""
    from kombu import Connection, Queue

    first = cluster.node_urls(vhost)[0]
    with Connection(first, connect_timeout=5) as conn:
        Queue(REJOIN_QUEUE, durable=True, queue_arguments=dict(config.queue_arguments))(
            conn.default_channel
        ).declare()
    persistent, _ = _publish(first, REJOIN_QUEUE, messages, True, "before")
    transient, _ = _publish(first, REJOIN_QUEUE, messages, False, "before")
    node = cluster.queue_leader(REJOIN_QUEUE, vhost)
    other = next(u for n, u in zip(cluster.nodes, cluster.node_urls(vhost)) if n.nodename != node)
    t0 = time.monotonic()
    cluster.stop_node(node)
    stop_s = time.monotonic() - t0
    try:
        down, error = _publish(other, REJOIN_QUEUE, messages, True, "while down")
        depth_down = _depth(other, REJOIN_QUEUE)
    finally:
        t0 = time.monotonic()
        cluster.start_node(node, timeout=timeout)
        start_s = time.monotonic() - t0
    t0 = time.monotonic()
    sync_s = None
    while time.monotonic() - t0 < 10:
        info = cluster.queue(REJOIN_QUEUE, vhost)
        if node in _in_sync(info):
            sync_s = time.monotonic() - t0
            break
        time.sleep(0.2)
    info = cluster.queue(REJOIN_QUEUE, vhost)
    return Rejoin(
        node=node,
        published_before=persistent,
        transient_before=transient,
        published_while_down=down,
        failed_while_down=messages - down,
        first_error=error,
        in_queue_while_down=depth_down,
        in_queue_after=_depth(first, REJOIN_QUEUE) or 0,
        leader_after=info.get("leader") or info["node"],
        replicas_after=tuple(cluster.queue_replicas(REJOIN_QUEUE, vhost)),
        in_sync_after=_in_sync(info),
        stop_s=stop_s,
        start_s=start_s,
        sync_s=sync_s,
    )


# -- quorum queues and Celery -----------------------------------------------------------------
def quorum_specifics(lab: Lab, cluster: Cluster, *, delivery_limit: int = 2) -> dict[str, Any]:
    """What quorum queues change for the design, each read on the broker (fresh vhost):

    * ``redeclare``: ``mpledger.async`` exists as a classic queue; a worker configured for
      quorum queues starts on it: the error it logs (and whether it came up);
    * ``delayed queues``: the queues and exchanges a quorum worker declares for countdown and
      ETA (kombu's native delayed delivery, ``celery_delayed_*``), their type, and a task sent
      with ``countdown=2`` found in one of them, then run (per-consumer prefetch, the other
      change Celery makes for quorum queues, is read by :func:`node_loss`: ``run.qos``);
    * ``poison``: a message rejected with requeue again and again on a quorum queue with
      ``x-delivery-limit`` and a dead-letter queue: how often it came back, where it ended.
    """
    from kombu import Connection, Exchange, Queue

    from ..design.services import mpledger

    found: dict[str, Any] = {}
    quorum = CONFIGS["quorum"]
    storage = mpledger.service.storage
    workers: list[Worker] = []
    with cluster_vhost(cluster, _vhost_name("quorum-specifics")) as vhost:
        url = cluster.failover_url(vhost)
        try:
            # 1. a classic queue of the same name already there
            with Connection(url) as conn:
                Queue("mpledger.async", Exchange(SERVICE, "topic"), "mpledger.async.#")(
                    conn.default_channel
                ).declare()
                try:
                    Queue(
                        "mpledger.async", durable=True, queue_arguments={"x-queue-type": "quorum"}
                    )(conn.channel()).declare()
                    found["redeclare"] = "accepted"
                except Exception as exc:  # noqa: BLE001 - the broker's refusal is the finding
                    found["redeclare"] = _short(exc)
            with cluster.management() as api:
                api.delete_queue("mpledger.async", vhost)
            # 2. a quorum worker: delayed-delivery topology, prefetch, a countdown task
            t0 = time.monotonic()
            settings = {"task_queues": celery_queues(quorum, SERVICE, ("async",))}
            workers.append(
                start_worker(lab, SERVICE, "async", broker_urls=(url, url), config=settings)
            )
            found["worker start s"] = round(time.monotonic() - t0, 1)
            with cluster.management() as api:
                queues = api.queues(vhost)
                exchanges = api.exchanges(vhost)
            delayed = [q for q in queues if q["name"].startswith("celery_delayed_")]
            found["delayed queues"] = len(delayed)
            found["delayed queue types"] = sorted({q.get("type", "classic") for q in delayed})
            found["delayed exchanges"] = sum(
                1 for e in exchanges if e["name"].startswith("celery_delayed")
            )
            _, async_app = _edge(url, quorum)
            try:
                storage.reset()
                kwargs = {"entry_id": "later", "account": "later", "amount_cents": 1}
                sent = time.time()
                tid = async_app.send_task(ASYNC_TASK, kwargs=kwargs, countdown=2).id
                time.sleep(0.3)
                with Connection(url) as conn:
                    channel = conn.default_channel
                    holding = [
                        q["name"]
                        for q in delayed
                        if channel.queue_declare(q["name"], passive=True).message_count
                    ]
                found["countdown held in"] = holding
                deadline = time.monotonic() + 15
                ran = None
                while time.monotonic() < deadline and ran is None:
                    ran = next((e for e in storage.executions() if e["task_id"] == tid), None)
                    time.sleep(0.1)
                found["countdown ran after s"] = (
                    None if ran is None else round(ran["started"] - sent, 1)
                )
            finally:
                async_app.close()
            # 3. a poison message
            dead = Queue("poison.dead", durable=True, queue_arguments={"x-queue-type": "quorum"})
            poison = Queue(
                "poison",
                durable=True,
                queue_arguments={
                    "x-queue-type": "quorum",
                    "x-delivery-limit": delivery_limit,
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": "poison.dead",
                },
            )
            with Connection(url) as conn:
                channel = conn.default_channel
                dead(channel).declare()
                bound = poison(channel)
                bound.declare()
                conn.Producer(channel).publish(b"poison", routing_key="poison", delivery_mode=2)
                counts = []
                for _ in range(delivery_limit + 3):
                    message = None
                    for _ in range(20):
                        if (message := bound.get(no_ack=False)) is not None:
                            break
                        time.sleep(0.05)
                    if message is None:
                        break
                    counts.append((message.headers or {}).get("x-delivery-count", 0))
                    message.reject(requeue=True)
                time.sleep(0.3)
                found["poison deliveries"] = len(counts)
                found["poison x-delivery-count"] = counts
                found["poison in dead-letter queue"] = channel.queue_declare(
                    "poison.dead", passive=True
                ).message_count
        finally:
            for worker in workers:
                worker.kill()
    return found


# -- reporting --------------------------------------------------------------------------------
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


# -- what it costs ----------------------------------------------------------------------------
@dataclass(frozen=True)
class CostRun:
    """One configuration timed on the same nodes: sync latency, async throughput, memory."""

    config: str
    calls: int
    call_seconds: tuple[float, ...] = field(repr=False)
    tasks: int = 0
    publish_s: float = 0.0  # confirmed publishing of ``tasks`` async tasks
    drain_s: float = 0.0  # from the first publish until the last task ran
    memory_mib: dict[str, float] = field(default_factory=dict)  # node -> memory in use
    qos: dict[str, dict[str, int]] = field(default_factory=dict)  # queue -> prefetch counts

    @property
    def p50_ms(self) -> float:
        return percentile(self.call_seconds, 50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.call_seconds, 99) * 1000

    @property
    def publish_rate(self) -> float:
        return self.tasks / self.publish_s if self.publish_s else 0.0

    @property
    def throughput(self) -> float:
        """Async tasks run per second, publishing included."""
        return self.tasks / self.drain_s if self.drain_s else 0.0


def _memory(cluster: Cluster) -> dict[str, float]:
    with cluster.management() as api:
        return {n["name"]: round(n.get("mem_used", 0) / 2**20, 1) for n in api.nodes()}


def cost(
    lab: Lab,
    cluster: Cluster,
    config: QueueConfig | str,
    *,
    calls: int = 200,
    tasks: int = 500,
    one_address: bool = False,
    timeout: float = 60.0,
) -> CostRun:
    """``calls`` sync calls one after the other, then ``tasks`` async tasks published as fast
    as confirms allow and drained by one worker, with the design's queues held as ``config``
    says, in a fresh vhost; the nodes' memory read at the end (before the vhost goes).
    ``one_address=True``: every client through the TCP-mode HAProxy of :func:`node_loss`, which
    sends them to the queues' leader (the run is named ``<config>+proxy``)."""
    from ..design.services import mpledger

    if isinstance(config, str):
        config = CONFIGS[config]
    storage = mpledger.service.storage
    storage.reset()
    workers: list[Worker] = []
    apps: tuple[Any, ...] = ()
    proxy = None
    with cluster_vhost(cluster, _vhost_name(f"cost-{config.name}"), config) as vhost:
        urls = cluster.node_urls(vhost)
        _declare(urls[0], config)
        url = ";".join(urls)
        try:
            if one_address:
                proxy, url = _one_address(lab, cluster, vhost)
            for kind in KINDS:
                settings = {"task_queues": celery_queues(config, SERVICE, (kind,))}
                workers.append(
                    start_worker(
                        lab, SERVICE, kind, broker_urls=(url, url), config=settings, wait=False
                    )
                )
            for worker in workers:
                worker.wait_ready(timeout)
            apps = sync_app, async_app = _edge(url, config)
            for _ in range(5):  # warm up: connections, reply queue, declarations
                sync_app.send_task(SYNC_TASK, kwargs={"account": "warm"}).get(timeout=10)
            seconds = []
            for _ in range(calls):
                t0 = time.perf_counter()
                sync_app.send_task(SYNC_TASK, kwargs={"account": "cost"}).get(timeout=10)
                seconds.append(time.perf_counter() - t0)
            ids = []
            t0 = time.monotonic()
            for i in range(tasks):
                kwargs = {"entry_id": f"cost-{i}", "account": "cost", "amount_cents": 1}
                ids.append(async_app.send_task(ASYNC_TASK, kwargs=kwargs).id)
            publish_s = time.monotonic() - t0
            wanted = set(ids)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                done = {e["task_id"] for e in storage.executions(ASYNC_TASK)} & wanted
                if len(done) == len(wanted):
                    break
                time.sleep(0.05)
            drain_s = time.monotonic() - t0
            memory = _memory(cluster)
            qos = _qos(cluster, vhost, [queue_name(SERVICE, "async")])  # an undisturbed worker
        finally:
            for app in apps:
                with contextlib.suppress(Exception):
                    app.close()
            for worker in workers:
                worker.kill()
            if proxy is not None:
                stop_haproxy(lab, proxy)
    name = config.name + ("+proxy" if one_address else "")
    return CostRun(name, calls, tuple(seconds), tasks, publish_s, drain_s, memory, qos)


#: The queues of :func:`confirm_latency`, one per way of holding a queue.
CONFIRM_QUEUES = {
    "2014": "confirm.classic",
    "mirrored": "confirm.mirrored",
    "quorum": "confirm.quorum",
}


def confirm_latency(
    cluster: Cluster, *, messages: int = 300, timeout: float = 60.0
) -> dict[str, tuple[float, ...]]:
    """Seconds each publish waited for its confirm, per way of holding a queue, measured side by
    side: one classic queue (the 2014 configuration: one copy), one classic queue mirrored to
    every node by a policy (only where the server mirrors), one quorum queue, all led by the
    first node in a vhost of their own; ``messages`` persistent messages to each, published in
    turn (the order rotated every round) on one connection with confirms, so that whatever
    else the machine does falls on all of them alike."""
    from kombu import Connection

    names = [n for n in configs_for(server_version(cluster)) if n in CONFIRM_QUEUES]
    seconds: dict[str, list[float]] = {name: [] for name in names}
    with cluster_vhost(cluster, _vhost_name("confirm")) as vhost:
        url = cluster.node_urls(vhost)[0]
        if "mirrored" in names:
            with cluster.management(timeout=VHOST_TIMEOUT) as api:
                pattern = "^" + CONFIRM_QUEUES["mirrored"].replace(".", r"\.") + "$"
                api.put_policy("mirrored-queue", pattern, dict(MIRRORING_POLICY), vhost)
        with Connection(
            url, connect_timeout=5, transport_options={"confirm_publish": True}
        ) as conn:
            channel = conn.default_channel
            for name in names:
                args = dict(CONFIGS[name].queue_arguments)
                channel.queue_declare(
                    CONFIRM_QUEUES[name], durable=True, auto_delete=False, arguments=args
                )
            if "mirrored" in names:
                wait_until(
                    lambda: (
                        len(cluster.queue_replicas(CONFIRM_QUEUES["mirrored"], vhost))
                        == len(cluster.nodes)
                    ),
                    timeout,
                )
            producer = conn.Producer()
            for round_ in range(messages):
                for k in range(len(names)):
                    name = names[(round_ + k) % len(names)]
                    t0 = time.perf_counter()
                    producer.publish(b"x" * 512, routing_key=CONFIRM_QUEUES[name], delivery_mode=2)
                    seconds[name].append(time.perf_counter() - t0)
    return {name: tuple(values) for name, values in seconds.items()}


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
    leads it then and whether the rejoined node holds a full copy."""
    lines = [
        f"{'config':<10} {'before':>6} {'transient':>9} {'while down':>10} {'refused':>7} "
        f"{'after':>5} {'copy on it':>10}  leader after"
    ]
    for run in runs:
        r = run.rejoin
        if r is None:
            continue
        lines.append(
            f"{run.config:<10} {r.published_before:>6} {r.transient_before:>9} "
            f"{r.published_while_down:>10} {r.failed_while_down:>7} {r.in_queue_after:>5} "
            f"{'yes' if r.holds_copy else 'no':>10}  node {r.leader_after.split('@')[0][-1]}"
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
        ax.set_xlim(run.started_at - run.killed_at, run.ended_at - run.killed_at)
        ax.set_title(run.label, fontsize=10)
        ax.set(xlabel="seconds from the kill")
    axes[0].set(ylabel="per second")
    axes[0].legend(fontsize=8)
