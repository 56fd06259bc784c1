"""What each way of holding the queues costs.

* :func:`cost`: sync latency, async throughput and each node's memory of one configuration on
  the same nodes (:class:`CostRun`), optionally through one HAProxy address;
* :func:`confirm_latency`: how long each publish waits for its confirm, per kind of queue
  (:data:`CONFIRM_QUEUES`), measured in turn on one connection.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ...design.naming import KINDS, queue_name
from ...observe.latency import percentile
from ...plumbing.cluster import Cluster
from ...plumbing.util import wait_until
from ...running.lab import Lab
from ...running.workers import Worker, start_worker
from .clients import _declare, _edge, _one_address, _qos, _stop_clients
from .queues import (
    ASYNC_TASK,
    CONFIGS,
    MIRRORING_POLICY,
    SERVICE,
    SYNC_TASK,
    VHOST_TIMEOUT,
    QueueConfig,
    _vhost_name,
    celery_queues,
    cluster_vhost,
    configs_for,
)
from .versions import server_version

__all__ = ["CostRun", "cost", "CONFIRM_QUEUES", "confirm_latency"]


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
    from ...design.services import mpledger

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
            _stop_clients(lab, apps, workers, proxy)
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
