"""The clients of a run on a cluster: the design's publisher apps, the queues they declare,
one HAProxy address in front of the cluster, and the prefetch the broker reports for them.

* :class:`TransientReplyRPC` (:data:`TRANSIENT_REPLY_BACKEND`): the lab's mended ``rpc://``
  backend with an exclusive reply queue, so a caller fails over with its node.
* The package's own helpers: ``_edge`` (the two publisher apps, publisher confirms on),
  ``_declare`` (a configuration's queues declared through one node), ``_one_address`` (a
  TCP-mode HAProxy whose active server leads the queues), ``_qos`` (each queue's consumer and
  global prefetch, read from the management API) and ``_short`` (an exception in one line).
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterable
from typing import Any

from celery._state import task_join_will_block

from ...design import rpc_backend as _rpc_backend
from ...design.naming import queue_name
from ...plumbing.cluster import Cluster
from ...running.cluster import proxy_url, start_broker_proxy
from ...running.haproxy import stop_haproxy
from ...running.lab import Lab
from .queues import SERVICE, QueueConfig, celery_queues

__all__ = ["TransientReplyRPC", "TRANSIENT_REPLY_BACKEND"]

#: How long the reply consumer's connection is read before each publish, in seconds: long
#: enough to be a blocking read that times out (a zero timeout makes the socket non-blocking,
#: and its ``EAGAIN`` would pass for a lost connection), short enough not to show in a call.
_LIVENESS_READ = 0.001


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:120]}"


def _declare(url: str, config: QueueConfig, service: str = SERVICE) -> None:
    """Declare ``service``'s queues as ``config`` says, through the node at ``url``."""
    from kombu import Connection, Queue

    with Connection(url, connect_timeout=5) as conn:
        for name, options in celery_queues(config, service).items():
            Queue.from_dict(name, **options)(conn.default_channel).declare()


class TransientReplyRPC(_rpc_backend.RPCBackend):
    """The lab's mended ``rpc://`` backend with an exclusive reply queue.

    Celery declares each caller's reply queue durable (and auto-delete) on the node the caller
    is connected to. When that node dies, the queue's record stays and every redeclaration
    through another node fails with ``NOT_FOUND - home node ... is down`` until the node is
    back: the caller gets no reply for the whole outage. An exclusive queue (RabbitMQ's own
    advice for reply queues) is not durable: it goes with its connection and its node, and the
    caller declares it again on the node it fails over to. A queue that is neither durable nor
    exclusive would do the same, but RabbitMQ 4.3 refuses those by default.

    An exclusive queue belongs to the connection that declares it, so it is declared by the
    reply consumer on its own connection, never on the producer's channel as Celery does.
    Before each publish the consumer's connection is read once without waiting: a connection
    the broker closed (its node died) is then replaced, and the queue declared on the new
    node, before the worker can answer to it.
    """

    @property
    def binding(self) -> Any:
        return self.Queue(
            self.oid, self.exchange, self.oid, durable=False, exclusive=True, expires=self.expires
        )

    def on_task_call(self, producer: Any, task_id: str) -> None:
        if task_join_will_block():
            return
        consumer = self.result_consumer
        if consumer._consumer is None:
            consumer.start(task_id)  # declares the reply queue on the consumer's connection
            return
        with contextlib.suppress(socket.timeout):
            consumer.drain_events(timeout=_LIVENESS_READ)  # reconnects if the broker closed it


#: What ``result_backend`` names to use :class:`TransientReplyRPC`: the package, which exports
#: it (``mpsoa_lab.experiments.clusters:TransientReplyRPC``, as before the package was split).
TRANSIENT_REPLY_BACKEND = f"{__package__}:TransientReplyRPC"


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
    from ...design.apps import celery_apps_factory
    from ...design.rpc_backend import BACKEND

    sync_app, async_app = celery_apps_factory("PUBLISHER", url, url, service)
    for kind, app in (("sync", sync_app), ("async", async_app)):
        app.conf.update(
            task_queues=celery_queues(config, service, (kind,)),
            broker_transport_options={"confirm_publish": True},
        )
    sync_app.conf.result_backend = backend or BACKEND
    return sync_app, async_app


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


def _stop_clients(lab: Lab, apps: Iterable[Any], workers: Iterable[Any], proxy: Any) -> None:
    """Close a run's Celery apps, kill its workers and stop its HAProxy, whatever happened."""
    for app in apps:
        with contextlib.suppress(Exception):
            app.close()
    for worker in workers:
        worker.kill()
    if proxy is not None:
        stop_haproxy(lab, proxy)
