"""Hosts of their own for a cluster's nodes (network namespaces the lab makes): made, cut
silently, healed, and removed, after a normal stop and after a kill -9 of the keeper or of
the process that holds it; then a real three-node cluster on them, split and healed.

Needs root and ``ip netns``; where the lab cannot make namespaces, every test here is skipped
with the one-line reason :func:`~mpsoa_lab.plumbing.netns.unavailable` gives.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from mpsoa_lab.experiments.partitions.split import fault_run, partition_cluster, set_mode
from mpsoa_lab.experiments.partitions.views import agreed, read_views
from mpsoa_lab.plumbing.install import find_epmd
from mpsoa_lab.plumbing.netns import NetworkKeeper, lab_tag, leftovers, unavailable
from mpsoa_lab.plumbing.util import wait_until
from mpsoa_lab.running.cluster import start_cluster, stop_cluster

REASON = unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"no network namespaces: {REASON}")

#: A TCP server that answers every connection with b"ok", run inside a namespace.
SERVER = (
    "import socket, sys\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind((sys.argv[1], 7777)); s.listen(); print('up', flush=True)\n"
    "while True:\n    c, _ = s.accept(); c.sendall(b'ok'); c.close()\n"
)
#: Connect to argv[1]:7777 within argv[2] seconds; print what happened and how long it took.
CLIENT = (
    "import socket, sys, time\n"
    "t = time.monotonic()\n"
    "try:\n    c = socket.create_connection((sys.argv[1], 7777), float(sys.argv[2]))\n"
    "    print(c.recv(9).decode(), round(time.monotonic() - t, 2))\n"
    "except Exception as e:\n    print(type(e).__name__, round(time.monotonic() - t, 2))\n"
)


@pytest.fixture
def keeper(lab):
    keeper = NetworkKeeper(
        "test-network",
        lab.home / "test-network",
        [1, 2, 3],
        home=lab.home,
        epmd_port=lab.sync.node.epmd_port,
        epmd=find_epmd(),
        owner=os.getpid(),
        mark=str(lab.home),
    )
    keeper.start(timeout=30)
    lab.record(keeper)
    yield keeper
    keeper.stop(10, keep_ports=False)
    lab.forget(keeper)


def connect(network, host: int | None, to: int, timeout: float = 2.0) -> tuple[str, float]:
    """Connect from ``host``'s namespace (None: from the machine) to ``to``'s server."""
    prefix = network.exec_prefix(host) if host else []
    out = subprocess.run(
        [*prefix, sys.executable, "-c", CLIENT, network.address(to), str(timeout)],
        capture_output=True,
        text=True,
        timeout=timeout + 20,
    ).stdout.split()
    return out[0], float(out[1])


def test_a_network_is_made_cut_silently_healed_and_removed(lab, keeper):
    network = keeper.network
    assert sorted(leftovers(lab_tag(lab.home))) == sorted(
        [*(network.namespace(h) for h in (1, 2, 3)), network.bridge]
        + [network.outside(h) for h in (1, 2, 3)]
    )
    for host in (1, 2, 3):  # each namespace's epmd, reached from the machine
        socket.create_connection((network.address(host), keeper.network.epmd_port), 2).close()
    server = subprocess.Popen(
        [*network.exec_prefix(2), sys.executable, "-c", SERVER, network.address(2)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout.readline().strip() == "up"
        assert connect(network, 1, 2)[0] == "ok"
        network.cut([1], [2, 3])
        assert network.cut_pairs() == [(1, 2), (1, 3)]
        answer, seconds = connect(network, 1, 2, timeout=2.0)
        # Silent: no refusal, no "no route"; the connection attempt runs into its time-out.
        assert answer in ("TimeoutError", "timeout"), answer
        assert seconds >= 1.9
        assert connect(network, 3, 2)[0] == "ok"  # the other side is untouched
        assert connect(network, None, 2)[0] == "ok"  # and so is the machine's way to each
        network.heal()
        assert network.cut_pairs() == []
        assert connect(network, 1, 2)[0] == "ok"
    finally:
        server.kill()
        server.wait()
    keeper.stop(10, keep_ports=False)
    assert leftovers(lab_tag(lab.home)) == []
    local = subprocess.run(
        ["ip", "route", "show", "table", "local"], capture_output=True, text=True
    )
    assert network.subnet not in local.stdout


def test_a_keeper_killed_9_leaves_what_its_stop_removes(lab, keeper):
    tag = lab_tag(lab.home)
    os.kill(keeper.process.pid, signal.SIGKILL)
    time.sleep(0.5)
    assert leftovers(tag)  # the kernel keeps namespaces and links: nobody removed them yet
    keeper.stop(10, keep_ports=False)  # what the reaper does with a dead keeper
    assert leftovers(tag) == []


def test_the_reaper_removes_the_network_of_a_holder_killed_9(lab):
    script = (
        "import os, signal, mpsoa_lab\n"
        "from mpsoa_lab.plumbing.install import find_epmd\n"
        "from mpsoa_lab.plumbing.netns import NetworkKeeper\n"
        "lab = mpsoa_lab.up()\n"
        "k = NetworkKeeper('reap-network', lab.home / 'reap-network', [1, 2, 3], home=lab.home,\n"
        "    epmd_port=lab.sync.node.epmd_port, epmd=find_epmd(), owner=os.getpid(),\n"
        "    mark=str(lab.home))\n"
        "k.start(timeout=30); lab.record(k)\n"
        "print(k.network.namespace(1), flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    namespace = proc.stdout.split()[0]
    started = time.monotonic()
    wait_until(lambda: leftovers(lab_tag(lab.home)) == [], timeout=40)
    print(f"the reaper removed {namespace} and the rest {time.monotonic() - started:.1f} s later")


def test_a_cluster_on_hosts_of_its_own_splits_and_heals(lab):
    config = {"cluster_partition_handling": "pause_minority"}
    cluster = start_cluster(lab, "sync", 3, hosts=True, ticktime=6, config=config)
    try:
        assert cluster.running_members() == sorted(cluster.nodenames)
        assert [n.address for n in cluster.nodes] == [cluster.network.address(h) for h in (1, 2, 3)]
        cluster.split([0])
        split = time.monotonic()
        # The majority declares node 1 down once its ticks stop (net_ticktime 6 s: 4.5 to
        # 7.5 s), each node asked on its own (the cluster-wide API waits for node 1 meanwhile);
        # pause_minority then pauses node 1, which closes its listeners.
        wait_until(
            lambda: [str(v) for v in read_views(cluster)[1:]] == ["sees 2,3 running"] * 2, 60
        )
        print(f"node 1 seen down {time.monotonic() - split:.1f} s after the split")
        wait_until(lambda: not _serves(cluster.nodes[0].url), timeout=60)
        cluster.heal()
        healed = time.monotonic()
        wait_until(lambda: agreed(read_views(cluster), 3), timeout=90)
        print(f"all three running again {time.monotonic() - healed:.1f} s after healing")
        assert _serves(cluster.nodes[0].url)
    finally:
        stop_cluster(lab, cluster)
    assert leftovers(lab_tag(lab.home)) == []


def _serves(url: str) -> bool:
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=2) as conn:
            conn.connect()
        return True
    except Exception:  # noqa: BLE001 - anything but a connection is "does not serve"
        return False


def test_a_suspended_node_and_a_split_counted_under_pause_minority(lab):
    """One cluster, two faults of node 1 under load (publisher confirms, every message by id):
    its VM suspended, then its network cut; every confirmed message looked for afterwards."""
    with partition_cluster(lab, "pause_minority") as cluster:
        suspended = fault_run(cluster, "suspend")
        split = fault_run(cluster, "split")
        set_mode(cluster, "ignore")  # read back from every node, or LabError
        assert all(node.extra["cluster_partition_handling"] == "ignore" for node in cluster.nodes)
        with pytest.raises(ValueError, match="the lab runs ignore, pause_minority, autoheal"):
            set_mode(cluster, "pause_if_all_down")
    for run in (suspended, split):
        print(run.fault, "normal after", run.normal_after_s, *run.counts, sep="\n  ")
        assert run.lost("quorum") == 0  # a quorum queue never loses a confirmed message here
        assert run.normal_after_s is not None  # served normally again within the run
    # Suspended: node 1 never saw the others vanish (it may pause once their connections close,
    # depending on timing); the split outlived the resume until the operator's restart
    # (RabbitMQ's partitions guide: pause_minority does not defend against a suspended node).
    # On 3.10.8 in every run; on 4.0.5 in 8 of 9 runs on 2026-12-06 (once the cluster served
    # normally 1.1 s after the resume, by itself): asserted on 3.x only.
    if suspended.version.startswith("3."):
        assert suspended.t_restart is not None
    # Split: node 1 paused itself and closed its clients' connections; nothing was lost, and
    # the cluster healed by itself.
    assert split.t_restart is None
    assert all(split.lost(kind) == 0 for kind in {c.kind for c in split.counts})
    for count in split.counts:
        assert ("closed" in count.told) == (count.side == "minority"), count
        if count.side == "majority":  # went on: every message confirmed (the last few late)
            assert count.confirmed_split + count.confirmed_late == count.published_split, count
