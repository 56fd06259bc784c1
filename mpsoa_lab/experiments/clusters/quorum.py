"""What quorum queues change for a Celery platform, read on the broker: :func:`quorum_specifics`.

A classic queue redeclared as quorum, the queues Celery declares for countdown and ETA, and a
poison message dead-lettered after its delivery limit (per-consumer prefetch is read by
:func:`~.node_loss_driver.node_loss`).
"""

from __future__ import annotations

import time
from typing import Any

from ...plumbing.cluster import Cluster
from ...running.lab import Lab
from ...running.workers import Worker, start_worker
from .clients import _edge, _short
from .queues import ASYNC_TASK, CONFIGS, SERVICE, _vhost_name, celery_queues, cluster_vhost

__all__ = ["quorum_specifics"]


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

    from ...design.services import mpledger

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
