"""A node lost under load: :func:`node_loss`.

One sync and one async ``mpledger`` worker and an edge (publisher confirms on), all on the
cluster's failover URL (or on one HAProxy address); sync calls and async tasks flow while the
node that leads the busiest queue gets ``kill -9`` and is started again; every task id is
counted in the service's execution log, each client is probed, the workers' logs are read,
and :func:`~.clean_stop.rejoin` runs. :class:`~.node_loss_run.NodeLossRun` holds all of it.

The vhost, workers, apps and proxy it starts are deleted or stopped before it returns,
whatever happened; the node it killed is started again.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from ...design.naming import KINDS, queue_name
from ...plumbing.cluster import Cluster
from ...plumbing.errors import LabError
from ...running.lab import Lab
from ...running.workers import Worker, start_worker
from ..faults import tally
from .clean_stop import rejoin
from .clients import TRANSIENT_REPLY_BACKEND, _declare, _edge, _one_address, _qos, _stop_clients
from .load import _Load
from .node_loss_run import NodeLossRun
from .queues import (
    ASYNC_TASK,
    CONFIGS,
    SERVICE,
    SYNC_TASK,
    QueueConfig,
    _vhost_name,
    celery_queues,
    cluster_vhost,
)
from .versions import server_version

__all__ = ["DELAYED_DELIVERY_RETRY", "node_loss"]


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
    from ...design.services import mpledger

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
            _stop_clients(lab, apps, workers, proxy)
            if killed is not None and not cluster.node(killed).is_running():
                cluster.start_node(killed, timeout=timeout)
            for node in cluster.nodes:
                if not node.is_running():
                    cluster.start_node(node.index, timeout=timeout)
    timings["total"] = time.monotonic() - t0
    return run
