"""The 2014 setting on a cluster: the design's queues declared with ``x-ha-policy: all``.

:func:`ha_setting_2014` declares them in a vhost of their own and reads from the broker where
each lives, whether it has mirrors, and the vhost's policies (:class:`HaSetting`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ...design.naming import SERVICES
from ...plumbing.cluster import Cluster
from .queues import CONFIGS, _vhost_name, cluster_vhost
from .versions import server_version

__all__ = ["HaSetting", "ha_setting_2014"]


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

    from ...design.topology import platform_queues

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
