"""A RabbitMQ cluster on demand, as one of the lab's components: ``start_cluster(lab)``.

``start_cluster(lab, "sync", 3)`` starts three :class:`~mpsoa_lab.plumbing.cluster.ClusterNode`
processes from the installed ``rabbitmq-server``, on the lab's epmd and with its Erlang cookie,
each on reserved ports of 127.0.0.1 with its data under ``<lab home>/nodes/clusters/``; the
first alone, the others together once it serves; it returns once the broker itself reports
every node running. Each node is recorded in the state file with this process as its owner,
so :func:`clusters` finds the cluster again from another process and the reaper stops it as
soon as this process is gone; :func:`stop_cluster` stops every node and releases its ports.

The cluster stands beside the lab's two brokers (``lab.sync`` and ``lab.async_`` stay single
nodes, shared with every other notebook): it is for the sync role, the calls that wait, and a
notebook points its Celery apps at it with :meth:`~mpsoa_lab.plumbing.cluster.Cluster.failover_url`.
The async role stays one node: what a cluster changes for fire-and-forget work (a message
kept or lost when its node dies) shows on the same three nodes, and two clusters would double
the memory and the start time on a 2-core machine.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from typing import Any

from ..plumbing.cluster import (
    Cluster,
    ClusterNode,
    check_node_names,
    check_size,
    epmd_names,
)
from ..plumbing.errors import NeedsLabNode, NodeNameInUse
from ..plumbing.haproxy import BalancerOptions, HAProxy, Server
from ..plumbing.install import find_epmd, find_rabbitmq_server
from ..plumbing.netns import NetworkError, NetworkKeeper, unavailable
from ..plumbing.settings import with_vhost
from .haproxy import launch_haproxy
from .lab import Lab

__all__ = ["start_cluster", "stop_cluster", "clusters", "start_broker_proxy", "proxy_url"]


def _node_names(lab: Lab, role: str, size: int, names: Sequence[str] | None) -> list[str]:
    if names is None:
        return [f"mpsoa-{lab.id}-{role}{i}" for i in range(1, size + 1)]
    names = [n.split("@")[0] for n in names]
    if len(names) != size:
        raise ValueError(f"{len(names)} node names given for a cluster of {size} nodes.")
    return names


def start_cluster(
    lab: Lab,
    role: str = "sync",
    size: int = 3,
    *,
    names: Sequence[str] | None = None,
    config: Mapping[str, Any] | None = None,
    start_timeout: float | None = None,
    hosts: bool = False,
    ticktime: int | None = None,
) -> Cluster:
    """Start a cluster of ``size`` nodes for the ``role`` broker; return it once the broker
    reports every node running.

    ``names`` are the nodes' short names (default ``mpsoa-<lab id>-<role>1`` ...), ``config``
    more ``rabbitmq.conf`` settings for every node (e.g. ``{"cluster_partition_handling":
    "pause_minority"}``). ``hosts=True`` runs each node on a host of its own (a network
    namespace the lab makes, :mod:`~mpsoa_lab.plumbing.netns`), so that
    :meth:`~mpsoa_lab.plumbing.cluster.Cluster.split` can cut the network between them; it
    needs root (:func:`~mpsoa_lab.plumbing.netns.unavailable` says why not).
    ``ticktime`` sets the Erlang distribution's ``net_ticktime`` (60 s by default) of every
    node: how long a silent peer takes to be declared down.

    Errors: :class:`~mpsoa_lab.NeedsLabNode` on brokers given by URL,
    :class:`~mpsoa_lab.ClusterSizeError` for a size the lab cannot run,
    :class:`~mpsoa_lab.NodeNameInUse` for a node name already taken (a cluster of this role
    still runs), :class:`~mpsoa_lab.RabbitMQNotInstalled` without ``rabbitmq-server``.
    """
    if role not in lab.brokers:
        raise ValueError(f"no broker role {role!r}; the design has {', '.join(lab.brokers)}")
    if lab.external:
        raise NeedsLabNode(
            f"Cannot start a {role} cluster: the lab runs on brokers given by URL "
            f"({lab.brokers[role].safe_url}), and a cluster is made of RabbitMQ nodes the lab "
            "starts itself (on its epmd, with its Erlang cookie). Unset MPSOA_SYNC_BROKER_URL "
            "and MPSOA_ASYNC_BROKER_URL to let the lab start its own nodes."
        )
    check_size(size)
    find_rabbitmq_server(lab.settings.rabbitmq_server)  # a clear error before anything starts
    base = lab.node(role, "start a cluster beside")
    short = _node_names(lab, role, size, names)
    recorded = {n.nodename.split("@")[0]: n for c in clusters(lab) for n in c.nodes}
    taken = set(epmd_names(base.epmd_port)) | set(recorded)
    if names is None and set(short) & taken:
        owner = next((recorded[n].owner for n in short if n in recorded), None)
        raise NodeNameInUse(
            f"A {role} cluster already runs on this lab (nodes {', '.join(short)}"
            + (f", started by process {owner}" if owner else "")
            + "). Use clusters(lab) to get it, stop it with stop_cluster(lab, cluster), or "
            "give other node names (names=[...])."
        )
    check_node_names(short, taken)
    name = f"mpsoa-{role}" if names is None else f"mpsoa-{short[0]}"
    home = lab.home / "nodes" / "clusters" / short[0]
    shutil.rmtree(home, ignore_errors=True)  # a fresh cluster: no data of an earlier one
    keeper = _start_network(lab, name, home, size, base.epmd_port) if hosts else None
    network = keeper.network if keeper is not None else None
    nodenames = [
        f"{n}@{network.hostname(i + 1) if network else 'localhost'}" for i, n in enumerate(short)
    ]
    placement: list[dict[str, Any]] = [
        {"netns": network.namespace(i + 1), "address": network.address(i + 1),
         "inetrc": str(keeper.inetrc_file)} if network else {}
        for i in range(size)
    ]  # fmt: skip
    nodes = [
        ClusterNode(
            f"{name}-{index + 1}",
            home / n,
            cluster=name,
            role=role,
            index=index,
            peers=nodenames,
            extra=config,
            owner=os.getpid(),
            epmd_port=base.epmd_port,
            erlang_home=base.erlang_home,
            nodename=nodename,
            server=lab.settings.rabbitmq_server,
            mark=str(lab.home),
            ticktime=ticktime,
            **placement[index],
        )
        for index, (n, nodename) in enumerate(zip(short, nodenames, strict=True))
    ]
    cluster = Cluster(
        name,
        nodes,
        role=role,
        on_change=lab.record,
        start_timeout=start_timeout or lab.settings.start_timeout,
        keeper=keeper,
    )
    try:
        cluster.start()
    except BaseException:
        stop_cluster(lab, cluster, timeout=10.0)
        raise
    return cluster


def _start_network(lab: Lab, name: str, home: Any, size: int, epmd_port: int) -> NetworkKeeper:
    """The namespaces of a cluster on hosts of its own, on the lab's life cycle."""
    reason = unavailable()
    if reason:
        raise NetworkError(
            f"Cannot run the {name} cluster on hosts of its own: {reason}. Start it without "
            "hosts=True (one host: nodes can be killed or suspended, not split)."
        )
    keeper = NetworkKeeper(
        f"{name}-network",
        home / "network",
        range(1, size + 1),
        home=lab.home,
        epmd_port=epmd_port,
        epmd=find_epmd(),
        owner=os.getpid(),
        mark=str(lab.home),
    )
    try:
        keeper.start(timeout=30.0)
    except BaseException:
        keeper.stop(5.0, keep_ports=False)
        raise
    lab.record(keeper)
    return keeper


def stop_cluster(lab: Lab, cluster: Cluster, timeout: float = 30.0) -> None:
    """Stop every node of ``cluster`` at once (graceful, killed after ``timeout``), release
    their ports, forget them and delete their data."""
    cluster.stop(timeout)
    for node in cluster.nodes:
        lab.forget(node)
    if cluster.keeper is not None:
        cluster.keeper.stop(10.0, keep_ports=False)
        lab.forget(cluster.keeper)
    if cluster.nodes:
        shutil.rmtree(cluster.nodes[0].base_dir.parent, ignore_errors=True)


def clusters(lab: Lab, role: str | None = None) -> list[Cluster]:
    """The clusters the state file records (started by any process on this lab), of one
    ``role`` or all; their nodes running or not."""
    groups: dict[str, list[ClusterNode]] = {}
    for component in lab.components("cluster_node"):
        if isinstance(component, ClusterNode) and role in (None, component.role):
            groups.setdefault(component.cluster, []).append(component)
    keepers = {k.name: k for k in lab.components("netns") if isinstance(k, NetworkKeeper)}
    return [
        Cluster(
            name,
            nodes,
            role=nodes[0].role,
            on_change=lab.record,
            start_timeout=lab.settings.start_timeout,
            keeper=keepers.get(f"{name}-network"),
        )
        for name, nodes in groups.items()
    ]


#: How HAProxy relays AMQP: idle timeouts of an hour (an AMQP connection stays open, and one
#: without heartbeats may be idle for long); a connect check every 200 ms, DOWN after 2
#: failures; a refused connection retried twice, the last time on another server, after
#: HAProxy's turn-around of ``timeout connect``; a stop that does not wait for the clients'
#: connections to end (they do not end by themselves). We tried a faster proxy (a refused
#: connection marking its server DOWN at once: ``observe layer4``, ``on-error mark-down``): a
#: worker was back through it within 10 ms of a kill -9 and, in one of two runs, died on its
#: remote-control queue (``NOT_FOUND - no queue '...celery.pidbox'``, unrecoverable for Celery),
#: which the cluster was still removing with the dead node. These settings gave it a few seconds.
PROXY_OPTIONS = BalancerOptions(
    mode="tcp",
    balance="leastconn",
    timeout_client_ms=3_600_000,
    timeout_server_ms=3_600_000,
    hard_stop_after_ms=500,
)


def start_broker_proxy(
    lab: Lab, cluster: Cluster, *, active: int | None = None, start_timeout: float = 30.0
) -> HAProxy:
    """One AMQP address in front of ``cluster``: HAProxy in TCP mode with the cluster's nodes
    as the servers of one backend (named after the cluster), on the lab's life cycle (stop it
    with :func:`~mpsoa_lab.running.haproxy.stop_haproxy`).

    ``active=None``: every node takes connections (``balance leastconn``: long-lived
    connections spread by count). ``active=i``: node ``i`` takes every connection while it is
    UP and the others are its backups, as a failover list that starts at node ``i`` would do.
    A client connects to :func:`proxy_url`; when its node dies, its connection is closed and it
    reconnects to the same address, which leads to a node that is UP.
    """
    if active is not None:
        cluster.node(active)  # an IndexError naming the cluster's nodes
    servers = [
        Server(
            f"node{n.index + 1}", "127.0.0.1", n.amqp_port, active is not None and n.index != active
        )
        for n in cluster.nodes
    ]
    return launch_haproxy(lab, {cluster.name: servers}, PROXY_OPTIONS, start_timeout)


def proxy_url(proxy: HAProxy, cluster: Cluster, vhost: str = "/") -> str:
    """The AMQP URL of ``proxy``'s frontend for ``cluster`` at ``vhost``, with the cluster's
    credentials: one address instead of a failover list."""
    from urllib.parse import urlsplit, urlunsplit

    host, port = proxy.address(cluster.name)
    parts = urlsplit(cluster.nodes[0].url)
    credentials = parts.netloc.rpartition("@")[0]
    return with_vhost(urlunsplit(parts._replace(netloc=f"{credentials}@{host}:{port}")), vhost)
