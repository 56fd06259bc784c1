"""A RabbitMQ cluster of N lab nodes on one machine: its config, its nodes, its membership.

Each :class:`ClusterNode` is a :class:`~mpsoa_lab.plumbing.node.RabbitMQNode` (own ports, data
and logs, the lab's epmd and Erlang cookie) whose ``rabbitmq.conf`` also lists every member:

* **Formation by config file** (``cluster_formation.peer_discovery_backend = classic_config``),
  not ``rabbitmqctl stop_app; join_cluster; start_app``: a blank node reads its peers from
  its own config and joins the first one that runs, so no CLI call is needed (each
  ``rabbitmqctl`` boots an Erlang VM: one to two seconds of CPU on a busy 2-core machine, four
  per joining node), and the config file shows the reader the cluster in one place. The seed
  (the first node) lists only itself and starts alone; the others list every member and start
  together once it serves (:meth:`Cluster.start` says why not all at once).
* **Sized for one small machine** (:func:`cluster_config`): the Raft write-ahead log of
  quorum queues rolls over at 8 MiB instead of 512 MiB (``raft.wal_max_size_bytes``: the WAL
  is kept in memory until it rolls over, so the default lets each node grow by half a GiB under
  a flood); the memory alarm of each node is at ``0.4 / size`` of the machine's RAM
  (``vm_memory_high_watermark.relative``), so the whole cluster may use what one stock node
  would; the Erlang VM's schedulers do not busy-wait for work
  (``+sbwt none +sbwtdcpu none +sbwtdio none``, RabbitMQ's advice for shared hosts): five
  VMs share two cores, and a scheduler spinning for work in one node burns CPU another node
  needs. One scheduler per node (``+S 1:1``) was tried and not kept: it saves ~8 MiB per node
  and makes a 3-node start ~2 s slower (one of ~12 s), with the same idle CPU.

  Measured on the 2-core development machine, beside the lab's two nodes (RabbitMQ 3.10.8,
  Erlang 25): a 3-node cluster starts in 10.5-17 s (seed ~4 s, then the other two together
  ~6 s), a graceful stop of all three takes ~6 s; each node holds 135-150 MiB RSS and <1 % of
  a core when idle. All three started at once took 15-17 s with every node listing every
  member (the seed tries the others for 5 s first), and hung on peer discovery's lock in two
  tries of three with the seed listing only itself (see :meth:`Cluster.start`).
* Everything else is RabbitMQ's default, ``cluster_partition_handling = ignore`` included (a
  node killed on one machine is *down*, not partitioned); ``extra`` settings change any of it.
* **Started means booted**: :meth:`Cluster.start` (and :meth:`Cluster.start_node`) return once
  RabbitMQ says every node it started has finished booting (``rabbitmqctl await_startup``),
  not as soon as the node accepts AMQP and HTTP and ``/api/nodes`` lists it ``running``. In
  between, a new vhost is started on the peers that have booted only
  (``rabbit_vhost_sup_sup:start_on_all_nodes``), a booting node has already started the vhosts
  it found, and the new one never runs there: its creation waits 45 s for it and answers HTTP
  500, and the vhost stays down on that node. Measured on the
  2-core machine: a vhost created as a joining node's management listener opened took 46.2 s
  (HTTP 500) and stayed ``stopped`` on it; the window (listener open to booted) was 50-180 ms
  per node in these runs, and grows with load. After ``await_startup`` a creation takes
  0.04-0.1 s (8 of 8 starts, with 0-2 busy cores beside). The check costs ~0.5 s of CPU per
  node (one CLI VM each, all at once, the seed's while the others boot): a start returns 1-3 s
  after the last node booted on an idle machine, 8-14 s with two cores kept busy beside it
  (was 0.3-1.4 s).
* **Membership is read from the broker** (``GET /api/nodes`` of any running member, each
  node with its ``running`` flag), never assumed from the processes the lab started; queue
  leaders and replicas from ``GET /api/queues/<vhost>/<name>`` (``leader`` and ``members``
  of a quorum queue, ``node`` and ``slave_nodes`` of a classic one).

A :class:`Cluster` holds the nodes in order (``cluster.nodes[0]`` is the seed) and acts on one
of them at a time (:meth:`Cluster.kill_node`, :meth:`Cluster.stop_node`,
:meth:`Cluster.start_node`, :meth:`Cluster.restart_node`); :mod:`mpsoa_lab.running.cluster`
starts one on the lab's life cycle.
"""

from __future__ import annotations

import re
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .component import stop_components
from .errors import ClusterSizeError, EntityNotFound, LabError, NodeNameInUse, NodeStartError
from .management import Management
from .netns import Network, NetworkKeeper, ip_path
from .node import RabbitMQNode
from .settings import with_vhost

__all__ = [
    "ClusterNode",
    "Cluster",
    "cluster_config",
    "check_size",
    "check_node_names",
    "epmd_names",
    "MAX_CLUSTER_SIZE",
    "RAFT_WAL_MAX_BYTES",
    "ERL_ARGS",
]

#: The largest cluster the lab starts: five nodes of ~100 MiB each on two cores is the limit
#: of what a laptop runs beside the lab's two brokers and the workers.
MAX_CLUSTER_SIZE = 5
#: Raft WAL size of each node before it rolls over to segment files (default 512 MiB).
RAFT_WAL_MAX_BYTES = 8 * 1024 * 1024
#: Erlang VM flags of every cluster node: schedulers that do not busy-wait (see the module doc).
ERL_ARGS = "+sbwt none +sbwtdcpu none +sbwtdio none"
#: The share of the machine's RAM a single stock node would alarm at; split between members.
TOTAL_WATERMARK = 0.4
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,60}$")


def check_size(size: int) -> int:
    """``size`` if the lab can start a cluster of that many nodes, else :class:`ClusterSizeError`.

    A size of 2 is refused: a quorum queue on two nodes needs both for a majority, so losing
    either stops it, and there is no majority side after a partition; RabbitMQ's clustering
    guide strongly discourages two-node clusters. One node is allowed (the baseline to compare
    a cluster with).
    """
    if isinstance(size, bool) or not isinstance(size, int):
        raise ClusterSizeError(f"A cluster size is a whole number of nodes, not {size!r}.")
    if size < 1:
        raise ClusterSizeError(
            f"A cluster of {size} nodes is impossible: ask for 1 node (the baseline), "
            f"or 3 to {MAX_CLUSTER_SIZE} (3 is the smallest that survives losing a node)."
        )
    if size == 2:
        raise ClusterSizeError(
            "A cluster of 2 nodes has no majority once either is lost: a quorum queue on two "
            "nodes stops when one of them stops, and a partition leaves no side in charge. "
            "Ask for 3 nodes (survives one lost node) or 1 (the baseline)."
        )
    if size > MAX_CLUSTER_SIZE:
        raise ClusterSizeError(
            f"A cluster of {size} nodes is more than this lab runs on one machine (at most "
            f"{MAX_CLUSTER_SIZE}: each node is an Erlang VM of ~100 MiB sharing the same cores). "
            "Ask for 3 nodes (the usual size) or 5 (survives two lost nodes)."
        )
    return size


def epmd_names(port: int, host: str = "127.0.0.1", timeout: float = 2.0) -> dict[str, int]:
    """The node names registered with the epmd on ``port`` and their distribution ports, as
    epmd itself lists them (its ``NAMES_REQ``: what ``epmd -names`` prints)."""
    with socket.create_connection((host, port), timeout) as conn:
        conn.sendall(struct.pack(">HB", 1, 110))  # length 1, NAMES_REQ ('n')
        data = b""
        while chunk := conn.recv(4096):
            data += chunk
    names = {}
    for line in data[4:].decode(errors="replace").splitlines():
        match = re.match(r"name (\S+) at port (\d+)", line)
        if match:
            names[match.group(1)] = int(match.group(2))
    return names


def check_node_names(names: Iterable[str], taken: Iterable[str]) -> list[str]:
    """``names`` (short node names, the part before ``@``) if each is well formed, unique and
    not in ``taken``; else :class:`NodeNameInUse` or :class:`ValueError` saying which."""
    names = list(names)
    for name in names:
        if not _NAME.match(name):
            raise ValueError(
                f"{name!r} is not a node name the lab can use: letters, digits, '-' and '_' "
                "only, at most 60 (the lab adds '@localhost')."
            )
    doubles = sorted({n for n in names if names.count(n) > 1})
    if doubles:
        raise NodeNameInUse(
            f"Node name {doubles[0]!r} is given twice; every node of a cluster needs a name "
            "of its own."
        )
    busy = [n for n in names if n in set(taken)]
    if busy:
        raise NodeNameInUse(
            f"Node name {busy[0]!r} is already in use by a running Erlang node on the lab's "
            "epmd. Stop that cluster first (stop_cluster), or choose other names."
        )
    return names


def cluster_config(
    cluster: str,
    nodenames: list[str],
    index: int,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """The ``rabbitmq.conf`` lines member ``index`` of ``cluster`` adds to a lab node's config:
    its peers, the sizing for one machine (see the module doc), and ``extra`` settings
    (``{"cluster_partition_handling": "pause_minority"}``) last.

    The seed (index 0) lists only itself, so it forms the cluster at once instead of trying the
    others for 5 s (10 tries 500 ms apart) while they are not up; every other member lists the
    whole cluster, seed first, and joins the seed, which already runs when they start.
    """
    check_size(len(nodenames))
    if not 0 <= index < len(nodenames):
        raise IndexError(f"no member {index} in a cluster of {len(nodenames)}")
    peers = nodenames[:1] if index == 0 else nodenames
    lines = [
        f"cluster_name = {cluster}",
        "cluster_formation.peer_discovery_backend = classic_config",
        *(f"cluster_formation.classic_config.nodes.{i} = {n}" for i, n in enumerate(peers, 1)),
    ]
    lines += [
        f"raft.wal_max_size_bytes = {RAFT_WAL_MAX_BYTES}",
        f"vm_memory_high_watermark.relative = {TOTAL_WATERMARK / len(nodenames):.3f}",
    ]
    lines += [f"{key} = {value}" for key, value in (extra or {}).items()]
    return "\n".join(lines) + "\n"


class ClusterNode(RabbitMQNode):
    """One member of a :class:`Cluster`: a lab node whose config names its peers."""

    TYPE = "cluster_node"
    FIELDS = (
        *RabbitMQNode.FIELDS,
        *("cluster", "role", "index", "peers", "extra", "netns", "address", "inetrc", "ticktime"),
    )
    #: A member that is down (killed, stopped) stays in the state file while its owner lives:
    #: it is still a member of its cluster, and its restart takes the same ports and data.
    KEEP_WHEN_STOPPED = True

    def __init__(
        self,
        name: str,
        base_dir: Path,
        *,
        cluster: str,
        role: str = "sync",
        index: int,
        peers: list[str],
        extra: Mapping[str, Any] | None = None,
        owner: int | None = None,
        netns: str | None = None,
        address: str = "127.0.0.1",
        inetrc: str | None = None,
        ticktime: int | None = None,
        **node: Any,
    ):
        super().__init__(name, base_dir, **node)
        self.owner = owner
        self.cluster = cluster
        self.role = role
        self.index = index
        self.peers = list(peers)
        self.extra = dict(extra or {})
        self.netns = netns
        self.address = address
        self.inetrc = inetrc
        self.ticktime = ticktime

    def _restored(self) -> None:
        super()._restored()
        self.index = int(self.index)
        self.peers = list(self.peers or [])
        self.extra = dict(self.extra or {})
        self.address = self.address or "127.0.0.1"

    def exec_prefix(self) -> list[str]:
        """``ip netns exec <namespace>`` for a node on a host of its own
        (:mod:`~mpsoa_lab.plumbing.netns`), else nothing."""
        if not self.netns:
            return []
        return [ip_path() or "ip", "netns", "exec", self.netns]

    def env(self) -> dict[str, str]:
        env = super().env()
        env["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"] += f" {ERL_ARGS}"
        if self.ticktime:
            for key in ("RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS", "RABBITMQ_CTL_ERL_ARGS"):
                env[key] += f" -kernel net_ticktime {int(self.ticktime)}"
        if self.netns:
            # On a host of its own: its distribution listens on its own address, and node
            # names resolve through the network's inetrc (the CLI runs in its namespace too).
            erl = "{" + self.address.replace(".", ",") + "}"
            env["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"] = env[
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"
            ].replace("{127,0,0,1}", erl)
            if self.inetrc:
                env["ERL_INETRC"] = self.inetrc
        return env

    def write_config(self) -> None:
        super().write_config()
        with open(self.base_dir / "rabbitmq.conf", "a") as conf:
            conf.write(cluster_config(self.cluster, self.peers, self.index, self.extra))

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"<ClusterNode {self.index} {self.nodename} amqp={self.amqp_port} {state}>"

    def await_startup(self, timeout: float = 60.0) -> float:
        """Wait until RabbitMQ says this node has booted (``rabbitmqctl await_startup``: its boot
        state is ``ready``, what a peer asks before starting a new vhost on it); return the
        seconds it took, or raise :class:`NodeStartError`.

        A node accepts AMQP and answers its management API a little before that (its listeners
        start last, then it marks itself booted): tens of ms on an idle machine, more on a busy
        one.
        """
        started = time.monotonic()
        seconds = max(1, round(timeout))
        try:
            self.ctl("await_startup", "--timeout", str(seconds), timeout=seconds + 15)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            raise NodeStartError(
                f"{self.nodename} accepts connections but RabbitMQ did not report it booted "
                f"within {seconds} s (rabbitmqctl await_startup: {str(exc).strip()[:300]}). "
                f"Its log: {self.log_file}. Raise MPSOA_START_TIMEOUT on a slow machine."
            ) from None
        return time.monotonic() - started


class Cluster:
    """The nodes of one cluster, in order, and what the broker says about them.

    ``on_change(node)`` is called after a node's process changed (started again), so that the
    lab's state file names the new pid.
    """

    def __init__(
        self,
        name: str,
        nodes: list[ClusterNode],
        *,
        role: str = "sync",
        on_change: Callable[[ClusterNode], None] | None = None,
        start_timeout: float = 90.0,
        keeper: NetworkKeeper | None = None,
    ):
        self.keeper = keeper
        self.name = name
        self.role = role
        self.nodes = sorted(nodes, key=lambda n: n.index)
        self.on_change = on_change
        self.start_timeout = start_timeout

    def __repr__(self) -> str:
        up = sum(n.is_running() for n in self.nodes)
        return f"<Cluster {self.name} ({self.role}): {up}/{len(self.nodes)} nodes running>"

    def __len__(self) -> int:
        return len(self.nodes)

    @property
    def nodenames(self) -> list[str]:
        return [n.nodename for n in self.nodes]

    def node(self, which: int | str) -> ClusterNode:
        """A member by index (0 is the seed) or by node name (``mpsoa-...@localhost``)."""
        if isinstance(which, str):
            for node in self.nodes:
                if which in (node.nodename, node.nodename.split("@")[0]):
                    return node
            raise EntityNotFound(
                f"No node {which!r} in cluster {self.name}; its nodes are "
                f"{', '.join(self.nodenames)}."
            )
        if not 0 <= which < len(self.nodes):
            raise IndexError(
                f"Cluster {self.name} has nodes 0 to {len(self.nodes) - 1}, not node {which}."
            )
        return self.nodes[which]

    def index_of(self, nodename: str) -> int:
        """The index of a member given its node name (as ``/api/nodes`` or a queue's ``leader``
        names it)."""
        return self.node(nodename).index

    # -- addresses ---------------------------------------------------------------------------
    def node_urls(self, vhost: str = "/") -> list[str]:
        """Every member's AMQP URL at ``vhost``, in order."""
        return [with_vhost(n.url, vhost) for n in self.nodes]

    def failover_url(self, vhost: str = "/") -> str:
        """Every member's URL joined with ``;``: kombu's (and Celery's ``broker_url``) failover
        list, tried in turn (``failover_strategy``, round robin by default)."""
        return ";".join(self.node_urls(vhost))

    def management(self, which: int | str | None = None, timeout: float = 5.0) -> Management:
        """The management API of one member, or of the first one that runs."""
        if which is not None:
            return Management(self.node(which).management_url, timeout=timeout)
        for node in self.nodes:
            if node.is_running():
                return Management(node.management_url, timeout=timeout)
        raise LabError(
            f"No node of cluster {self.name} runs: start one again with start_node(i), "
            "the one stopped last first."
        )

    # -- what the broker says ----------------------------------------------------------------
    def _ask(self, call: Callable[[Management], Any]) -> Any:
        """``call`` on the first running member whose management API answers."""
        errors = []
        for node in self.nodes:
            if not node.is_running():
                continue
            try:
                with Management(node.management_url, timeout=3.0) as api:
                    return call(api)
            except (LabError, OSError) as exc:
                if isinstance(exc, EntityNotFound):
                    raise
                errors.append(f"{node.nodename}: {exc}")
        raise LabError(
            f"No member of cluster {self.name} answered on its management API"
            + (": " + "; ".join(errors) if errors else " (none runs).")
        )

    def status(self) -> dict[str, bool]:
        """Every node the broker counts as a member, and whether it runs (``/api/nodes``)."""
        return {n["name"]: bool(n.get("running")) for n in self._ask(lambda api: api.nodes())}

    def members(self) -> list[str]:
        """The node names the broker counts as members, running or not."""
        return sorted(self.status())

    def running_members(self) -> list[str]:
        """The members the broker reports running."""
        return sorted(name for name, running in self.status().items() if running)

    def wait_members(self, expected: Iterable[str] | None = None, timeout: float = 60.0) -> float:
        """Wait until the broker reports exactly ``expected`` (default: every node) running;
        return the seconds it took."""
        want = sorted(expected if expected is not None else self.nodenames)
        started = time.monotonic()
        seen: Any = None
        while time.monotonic() - started < timeout:
            try:
                seen = self.status()
                if sorted(n for n, up in seen.items() if up) == want:
                    return time.monotonic() - started
            except LabError as exc:
                seen = exc
            time.sleep(0.2)
        raise NodeStartError(
            f"Cluster {self.name}: the broker did not report {want} running within "
            f"{timeout:.0f} s; last it said {seen}. A node's log: {self.nodes[0].log_file}"
        )

    def queue(self, name: str, vhost: str = "/") -> dict[str, Any]:
        """What the broker says of one queue (``/api/queues/<vhost>/<name>``)."""
        return self._ask(lambda api: api.queue(name, vhost))

    def queue_leader(self, name: str, vhost: str = "/") -> str | None:
        """The node that leads a queue: a quorum queue's Raft ``leader``, a classic queue's
        ``node`` (its master, when mirrored); None while the broker names none (just after its
        leader's node died, until the queue's statistics show the new one)."""
        info = self.queue(name, vhost)
        return info.get("leader") or info.get("node")

    def queue_replicas(self, name: str, vhost: str = "/") -> list[str]:
        """The nodes that hold a copy of a queue: a quorum queue's ``members``, a classic
        queue's ``node`` and its mirrors (``slave_nodes``)."""
        info = self.queue(name, vhost)
        if info.get("members"):
            return sorted(info["members"])
        return sorted(n for n in [info.get("node"), *(info.get("slave_nodes") or [])] if n)

    # -- life cycle --------------------------------------------------------------------------
    def start(self, timeout: float | None = None) -> float:
        """Start the seed, then every other node at once when it serves; wait until the broker
        reports all of them running and each says it has booted. Returns the seconds it took.

        Not all at once: in 3.10 a blank node holds a cluster-wide lock while it tries its
        peers (10 tries, 500 ms apart), so a seed booting beside them waits for the lock, and a
        seed that is not up yet makes them give up and form clusters of their own.

        Booted, not only serving: a vhost created on a cluster whose last node accepts
        connections but has not finished booting never starts on that node (see the module doc).
        """
        timeout = timeout or self.start_timeout
        started = time.monotonic()
        seed, rest = self.nodes[0], self.nodes[1:]
        seed.start(wait=False)
        self._changed(seed)
        seed.wait_ready(timeout)
        self._changed(seed)  # its ports may have moved ("address in use")
        for node in rest:
            node.start(wait=False)
            self._changed(node)
        left = max(5.0, timeout - (time.monotonic() - started))

        def booted(node: ClusterNode) -> None:  # the seed's check runs while the others boot
            if node is not seed:
                node.wait_ready(left)
            node.await_startup(left)

        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(booted, self.nodes))
        for node in rest:
            self._changed(node)
        self.wait_members(timeout=max(5.0, timeout - (time.monotonic() - started)))
        return time.monotonic() - started

    def _changed(self, node: ClusterNode) -> None:
        if self.on_change is not None:
            self.on_change(node)

    def kill_node(self, which: int | str) -> ClusterNode:
        """SIGKILL to one node's Erlang VM: a crash. Its ports stay reserved for its restart."""
        node = self.node(which)
        node.kill()
        return node

    def suspend_node(self, which: int | str) -> ClusterNode:
        """SIGSTOP to one node's Erlang VM: it stops dead, as a virtual machine paused by its
        hypervisor, with every connection left open; :meth:`resume_node` lets it go on."""
        node = self.node(which)
        beam = node._beam()
        if beam is None:
            raise LabError(f"{node.nodename} does not run: there is nothing to suspend.")
        beam.send_signal(signal.SIGSTOP)
        return node

    def resume_node(self, which: int | str) -> ClusterNode:
        """SIGCONT to a node :meth:`suspend_node` stopped: it goes on where it was."""
        node = self.node(which)
        beam = node._beam()
        if beam is not None:
            beam.send_signal(signal.SIGCONT)
        return node

    def stop_node(self, which: int | str, timeout: float = 30.0) -> ClusterNode:
        """Graceful stop of one node (``rabbitmqctl stop``): its peers see it leave."""
        node = self.node(which)
        node.stop(timeout)
        return node

    def start_node(self, which: int | str, timeout: float | None = None) -> ClusterNode:
        """Start a stopped or killed node on its ports, with its data: it rejoins the cluster
        from its own records. Returns once it has booted and the broker reports it running."""
        node = self.node(which)
        node.start(wait=False)
        self._changed(node)
        node.wait_ready(timeout or self.start_timeout)
        self._changed(node)
        node.await_startup(timeout or self.start_timeout)  # booted: a new vhost starts on it
        running = [n.nodename for n in self.nodes if n.is_running()]
        self.wait_members(running, timeout=timeout or self.start_timeout)
        return node

    def restart_node(self, which: int | str, timeout: float | None = None) -> ClusterNode:
        """Stop a node gracefully (if it runs) and start it again: it rejoins."""
        self.stop_node(which)
        return self.start_node(which, timeout)

    # -- the network between the nodes (on hosts of their own) -------------------------------
    @property
    def on_hosts(self) -> bool:
        """Whether the nodes run on hosts of their own (a network the lab can split)."""
        return self.keeper is not None and self.keeper.network is not None

    @property
    def network(self) -> Network:
        """The network between the nodes; only for a cluster started on hosts of its own."""
        if not self.on_hosts:
            raise LabError(
                f"Cluster {self.name} runs on one host: there is no network between its nodes "
                "to split. Start it with start_cluster(lab, ..., hosts=True)."
            )
        return self.keeper.network

    def split(self, side: Iterable[int | str], other: Iterable[int | str] | None = None) -> None:
        """Cut the network between the nodes of ``side`` and those of ``other`` (default: every
        other node), silently: packets dropped, nothing refused (see
        :mod:`~mpsoa_lab.plumbing.netns`). Both sides keep running."""
        side_a = {self.node(n).index for n in side}
        side_b = (
            {self.node(n).index for n in other}
            if other is not None
            else {n.index for n in self.nodes} - side_a
        )
        self.network.cut([i + 1 for i in sorted(side_a)], [i + 1 for i in sorted(side_b)])

    def heal(self) -> None:
        """Undo every :meth:`split`: the nodes reach each other again."""
        self.network.heal()

    def is_running(self) -> bool:
        """Whether any member's process runs."""
        return any(n.is_running() for n in self.nodes)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every node at once (graceful, killed after ``timeout``); release their ports."""
        stop_components(self.nodes, timeout)
