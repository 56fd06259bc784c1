"""A three-node RabbitMQ cluster started by the lab, on real nodes: every member joined (read
back from the broker), queue leaders and replicas, a node killed -9 while the others serve and
restarted (it rejoins), a clean stop and start, bad input, everything stopped and nothing left,
and the reaper stopping the cluster of a process killed -9.

One cluster serves the whole module (a start is ~10 s on two cores); the tests run in order.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest
import requests
from kombu import Connection, Producer, Queue

from mpsoa_lab import NodeNameInUse
from mpsoa_lab.experiments import secured
from mpsoa_lab.plumbing.cluster import epmd_names
from mpsoa_lab.plumbing.component import process_gone
from mpsoa_lab.plumbing.ports import PortAllocator
from mpsoa_lab.plumbing.util import wait_until
from mpsoa_lab.running.cluster import clusters, start_cluster, stop_cluster

#: Asserts nothing that another test's load could change: make test runs it beside others.
pytestmark = pytest.mark.beside_others

QUORUM = "cluster-test.quorum"
CLASSIC = "cluster-test.classic"


@pytest.fixture(scope="module")
def cluster(lab):
    cluster = start_cluster(lab, "sync", 3)
    yield cluster
    stop_cluster(lab, cluster)  # nothing happens if a test stopped it already


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
        return True
    except OSError:
        return False


def served(url: str) -> bool:
    """Whether the node at ``url`` takes a connection, a declare and a confirmed publish."""
    with Connection(url, connect_timeout=5, transport_options={"confirm_publish": True}) as conn:
        queue = Queue("cluster-test.probe", exclusive=True)(conn.default_channel)
        queue.declare()
        Producer(conn.default_channel).publish(b"x", routing_key=queue.name)  # waits for the ack
        return queue.queue_declare(passive=True).message_count == 1


def vhost_runs_on_every_member(cluster, name: str) -> dict[str, str]:
    """Create vhost ``name`` through the seed and read, from every member, where it runs."""
    try:
        with cluster.management(0, timeout=30) as api:  # RabbitMQ itself gives up after 45 s
            api.create_vhost(name)
        states = {}
        for node in cluster.nodes:
            api = f"http://127.0.0.1:{node.management_port}/api"
            got = requests.get(f"{api}/vhosts/{name}", auth=("guest", "guest"), timeout=10)
            states.update(
                {f"{n} (seen from {node.index})": s for n, s in got.json()["cluster_state"].items()}
            )
            health = requests.get(
                f"{api}/health/checks/virtual-hosts", auth=("guest", "guest"), timeout=10
            )
            states[f"health of {node.nodename}"] = health.json()["status"]
        return states
    finally:
        with cluster.management(0, timeout=30) as api:
            api.delete_vhost(name)


def test_a_vhost_created_at_once_starts_on_every_member(cluster):
    """start_cluster returns once every node has booted: a vhost created on a node that serves
    but is still booting never starts there (RabbitMQ answers HTTP 500 after 45 s)."""
    states = vhost_runs_on_every_member(cluster, "cluster-test-at-once")
    assert set(states.values()) == {"running", "ok"}, states
    assert len(states) == 3 * 3 + 3


def test_every_node_joined_as_the_broker_reports_it(lab, cluster):
    assert len(cluster) == 3
    assert cluster.members() == cluster.running_members() == sorted(cluster.nodenames)
    for i in range(3):  # every member sees the same three, running
        with cluster.management(i) as api:
            assert {n["name"]: n["running"] for n in api.nodes()} == dict.fromkeys(
                cluster.nodenames, True
            )
            assert api.overview()["cluster_name"] == "mpsoa-sync"
    out = cluster.nodes[2].ctl("cluster_status", "--formatter", "json", tool="rabbitmq-diagnostics")
    status = json.loads(out)
    assert sorted(status["running_nodes"]) == sorted(cluster.nodenames)
    assert lab.sync.node.nodename not in status["disk_nodes"]  # the lab's own broker stays apart


def test_every_member_listens_on_loopback_only(cluster):
    """guest/guest never on a listener beyond loopback: every socket of every member, read from
    the operating system (AMQP, management, distribution), is on 127.0.0.0/8."""
    for node in cluster.nodes:
        found = secured.sockets_of(node)
        assert {str(node.amqp_port), str(node.management_port)} <= {
            s.rsplit(":", 1)[1] for s in found
        }, found
        assert all(secured.on_loopback(s) for s in found), found


def test_found_again_through_the_state_file(lab, cluster):
    [again] = clusters(lab, "sync")
    assert again.name == cluster.name and again.nodenames == cluster.nodenames
    assert [n.process.pid for n in again.nodes] == [n.process.pid for n in cluster.nodes]
    assert [n.owner for n in again.nodes] == [os.getpid()] * 3
    assert clusters(lab, "async") == []
    registered = epmd_names(cluster.nodes[0].epmd_port)
    assert {n.nodename.split("@")[0] for n in cluster.nodes} <= set(registered)


def test_queue_leaders_and_replicas_read_from_the_broker(cluster):
    with Connection(cluster.node_urls()[1]) as conn:  # declared through the second node
        Queue(QUORUM, durable=True, queue_arguments={"x-queue-type": "quorum"})(
            conn.default_channel
        ).declare()
        Queue(CLASSIC, durable=True)(conn.default_channel).declare()
    assert cluster.queue_replicas(QUORUM) == sorted(cluster.nodenames)
    assert cluster.queue_leader(QUORUM) in cluster.nodenames
    # a classic queue lives on the node its declaring client was connected to, unmirrored
    assert cluster.queue_leader(CLASSIC) == cluster.nodes[1].nodename
    assert cluster.queue_replicas(CLASSIC) == [cluster.nodes[1].nodename]


def test_a_node_killed_9_is_down_the_others_serve_and_it_rejoins(cluster):
    leader = cluster.index_of(cluster.queue_leader(QUORUM))
    node = cluster.nodes[leader]
    beam = node._beam()
    cluster.kill_node(leader)
    assert beam is not None and process_gone(beam)
    others = [n for n in cluster.nodes if n is not node]
    cluster.wait_members([n.nodename for n in others], timeout=30)
    assert cluster.members() == sorted(cluster.nodenames)  # still a member, not running
    assert node.nodename not in cluster.running_members()
    for other in others:
        assert served(other.url)
    # kombu's failover list skips the dead node, whichever comes first
    with Connection(cluster.failover_url(), connect_timeout=2) as conn:
        conn.ensure_connection(max_retries=len(cluster))
        assert conn.connected
    # the quorum queue elects a new leader among the two left
    new_leader = wait_until(
        lambda: (lead := cluster.queue_leader(QUORUM)) != node.nodename and lead, timeout=30
    )
    assert new_leader in {n.nodename for n in others}
    cluster.start_node(leader)  # on its ports, with its data
    assert cluster.running_members() == sorted(cluster.nodenames)
    assert served(node.url)
    states = vhost_runs_on_every_member(cluster, "cluster-test-rejoined")  # booted, not serving
    assert set(states.values()) == {"running", "ok"}, states
    wait_until(lambda: len(cluster.queue(QUORUM).get("online") or []) == 3, timeout=30)


def test_a_node_stopped_cleanly_and_restarted_rejoins_and_every_process_sees_its_pid(lab, cluster):
    pid = cluster.nodes[2].process.pid
    cluster.stop_node(2)
    assert not cluster.nodes[2].is_running()
    assert cluster.running_members() == sorted(cluster.nodenames[:2])
    assert cluster.members() == sorted(cluster.nodenames)  # a stopped member is still one
    [again] = clusters(lab, "sync")
    assert len(again) == 3 and not again.nodes[2].is_running()  # the state file keeps it
    cluster.restart_node(2)  # nothing to stop: it starts, and rejoins
    assert cluster.nodes[2].process.pid != pid
    assert cluster.running_members() == sorted(cluster.nodenames)
    [again] = clusters(lab, "sync")
    assert again.nodes[2].process.pid == cluster.nodes[2].process.pid
    assert again.nodes[2].is_running()


def test_a_second_cluster_of_the_role_or_a_name_in_use_is_refused(lab, cluster):
    with pytest.raises(NodeNameInUse, match="A sync cluster already runs.*stop_cluster"):
        start_cluster(lab, "sync", 3)
    own = lab.sync.node.nodename.split("@")[0]  # the lab's own sync broker
    with pytest.raises(NodeNameInUse, match=f"'{own}' is already in use"):
        start_cluster(lab, "sync", 3, names=["fresh1", "fresh2", own])
    assert len(clusters(lab)) == 1  # nothing started


def test_stopped_it_leaves_nothing(lab, cluster):
    beams = [n._beam() for n in cluster.nodes]
    pids = [p.pid for p in beams if p] + [n.process.pid for n in cluster.nodes]
    ports = [port for n in cluster.nodes for port in n.ports.values()]
    assert len(beams) == 3 and all(beams)
    stop_cluster(lab, cluster)
    assert not any(psutil.pid_exists(pid) for pid in pids)
    assert not set(ports) & set(PortAllocator().reserved())
    assert not any(listening(port) for port in ports)
    assert clusters(lab) == []
    registered = epmd_names(cluster.nodes[0].epmd_port)
    assert not {n.nodename.split("@")[0] for n in cluster.nodes} & set(registered)
    assert served(lab.sync.url)  # the lab's own broker is untouched


def test_the_reaper_stops_the_cluster_of_a_process_killed_9(lab):
    script = (
        "import os, signal, mpsoa_lab\n"
        "from mpsoa_lab.running.cluster import start_cluster\n"
        "lab = mpsoa_lab.up()\n"
        "c = start_cluster(lab, 'sync', 3, names=['reap1', 'reap2', 'reap3'])\n"
        "print(*(n._beam().pid for n in c.nodes), flush=True)\n"
        "print(*(p for n in c.nodes for p in n.ports.values()), flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    lines = proc.stdout.split("\n")
    beams, ports = ([int(w) for w in line.split()] for line in lines[:2])
    assert len(beams) == 3 and len(ports) == 9
    started = time.monotonic()
    wait_until(lambda: not any(psutil.pid_exists(pid) for pid in beams), timeout=40)
    print(f"reaper stopped the cluster {time.monotonic() - started:.1f} s after its owner died")
    wait_until(lambda: not set(ports) & set(PortAllocator().reserved()), timeout=10)
    assert not any(listening(port) for port in ports)
    wait_until(lambda: clusters(lab) == [], timeout=10)
    assert not {"reap1", "reap2", "reap3"} & set(epmd_names(lab.sync.node.epmd_port))
