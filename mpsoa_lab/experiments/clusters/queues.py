"""The three ways of holding the design's queues on a cluster, and a vhost to hold them in.

* :data:`CONFIGS`: each a :class:`QueueConfig`: ``2014`` (classic queues declared with the
  ``x-ha-policy: all`` argument that ``CELERY_QUEUE_HA_POLICY = 'all'`` produced), ``mirrored``
  (classic queues mirrored by a policy, :data:`MIRRORING_POLICY`) and ``quorum``
  (``x-queue-type: quorum``, the way Celery 5.5+ declares them); :func:`configs_for` says which
  of them a server version runs.
* :func:`celery_queues` turns one into Celery's ``task_queues`` (the 2014 dict shape, JSON, so
  a worker takes it in ``MPSOA_CELERY_CONFIG``).
* :func:`cluster_vhost`: a vhost of its own on the cluster, with a configuration's policy,
  deleted on the way out.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...design.naming import KINDS, queue_name
from ...plumbing.cluster import Cluster
from .versions import check_mirroring, mirroring_available, server_version

__all__ = [
    "SERVICE",
    "SYNC_TASK",
    "ASYNC_TASK",
    "MIRRORING_POLICY",
    "QueueConfig",
    "CONFIGS",
    "configs_for",
    "celery_queues",
    "VHOST_TIMEOUT",
    "cluster_vhost",
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


def configs_for(version: Sequence[int]) -> list[str]:
    """The :data:`CONFIGS` RabbitMQ ``version`` can run: ``mirrored`` only before 4.0."""
    return [name for name in CONFIGS if name != "mirrored" or mirroring_available(version)]


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
