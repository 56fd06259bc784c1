"""A cluster's generated config, its bad inputs and its state-file entry, without starting a
node (tests/integration/test_cluster.py starts the real three)."""

from __future__ import annotations

import socket
import struct
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from mpsoa_lab import (
    ClusterSizeError,
    NeedsLabNode,
    NodeNameInUse,
    NodeStartError,
    RabbitMQNotInstalled,
)
from mpsoa_lab.plumbing.cluster import (
    ERL_ARGS,
    MAX_CLUSTER_SIZE,
    RAFT_WAL_MAX_BYTES,
    Cluster,
    ClusterNode,
    check_node_names,
    check_size,
    cluster_config,
    epmd_names,
)
from mpsoa_lab.plumbing.component import component_from_dict
from mpsoa_lab.plumbing.node import LOOPBACK_DIST
from mpsoa_lab.plumbing.settings import Settings
from mpsoa_lab.running.cluster import start_cluster
from mpsoa_lab.running.lab import Broker

NAMES = ["a@localhost", "b@localhost", "c@localhost"]


def lines(index: int, names: list[str] = NAMES, **extra) -> list[str]:
    return cluster_config("mpsoa-sync", names, index, extra).splitlines()


def test_the_seed_lists_only_itself_and_the_others_list_every_member_seed_first():
    assert [x for x in lines(0) if "classic_config.nodes" in x] == [
        "cluster_formation.classic_config.nodes.1 = a@localhost"
    ]
    for index in (1, 2):
        assert [x.split(" = ")[1] for x in lines(index) if "classic_config.nodes" in x] == NAMES
    for index in (0, 1, 2):
        assert "cluster_formation.peer_discovery_backend = classic_config" in lines(index)
        assert "cluster_name = mpsoa-sync" in lines(index)


def test_sized_for_one_machine_a_small_wal_and_the_memory_alarm_split_between_members():
    assert f"raft.wal_max_size_bytes = {RAFT_WAL_MAX_BYTES}" in lines(0)
    assert RAFT_WAL_MAX_BYTES < 512 * 1024 * 1024  # RabbitMQ's default
    assert "vm_memory_high_watermark.relative = 0.133" in lines(0)  # 0.4 / 3
    assert "vm_memory_high_watermark.relative = 0.400" in lines(0, ["a@localhost"])
    assert "vm_memory_high_watermark.relative = 0.080" in lines(0, [f"n{i}@x" for i in range(5)])


def test_extra_settings_come_last_so_they_win():
    out = lines(1, cluster_partition_handling="pause_minority")
    assert out[-1] == "cluster_partition_handling = pause_minority"


def test_the_config_refuses_what_start_cluster_refuses():
    with pytest.raises(ClusterSizeError):
        cluster_config("x", NAMES[:2], 0)
    with pytest.raises(IndexError):
        cluster_config("x", NAMES, 3)


@pytest.mark.parametrize("size", [1, 3, 4, MAX_CLUSTER_SIZE])
def test_sizes_the_lab_runs(size):
    assert check_size(size) == size


@pytest.mark.parametrize(
    ("size", "says"),
    [
        (0, "impossible"),
        (-1, "impossible"),
        (2, "no majority"),
        (MAX_CLUSTER_SIZE + 1, f"at most {MAX_CLUSTER_SIZE}"),
        (100, "more than this lab runs"),
        ("3", "whole number"),
        (3.0, "whole number"),
        (True, "whole number"),
    ],
)
def test_impossible_sizes_say_what_to_ask_for(size, says):
    with pytest.raises(ClusterSizeError, match=says) as err:
        check_size(size)
    assert isinstance(err.value, ValueError)
    if size not in ("3", 3.0, True):
        assert "Ask for" in str(err.value) or "ask for" in str(err.value)


def test_node_names_well_formed_unique_and_free():
    assert check_node_names(["r1", "r_2", "r-3"], taken={"other"}) == ["r1", "r_2", "r-3"]
    with pytest.raises(NodeNameInUse, match="'r1' is given twice"):
        check_node_names(["r1", "r1", "r3"], taken=())
    with pytest.raises(NodeNameInUse, match="'r2' is already in use.*stop_cluster"):
        check_node_names(["r1", "r2"], taken={"r2"})
    with pytest.raises(ValueError, match="letters, digits"):
        check_node_names(["r 1"], taken=())


def test_epmd_names_reads_epmds_own_list():
    """A stand-in epmd that answers NAMES_REQ as the real one does (tests/integration asks
    the lab's real epmd)."""
    server = socket.create_server(("127.0.0.1", 0))
    asked = []

    def serve():
        conn, _ = server.accept()
        with conn:
            asked.append(conn.recv(3))
            conn.sendall(
                struct.pack(">I", 4369)
                + b"name mpsoa-x-sync1 at port 20001\nname other at port 7\n"
            )

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        names = epmd_names(server.getsockname()[1])
    finally:
        thread.join(5)
        server.close()
    assert asked == [b"\x00\x01n"]
    assert names == {"mpsoa-x-sync1": 20001, "other": 7}


def _node(tmp_path: Path, index: int = 1) -> ClusterNode:
    return ClusterNode(
        f"mpsoa-sync-{index + 1}",
        tmp_path / f"n{index}",
        cluster="mpsoa-sync",
        role="sync",
        index=index,
        peers=NAMES,
        extra={"cluster_partition_handling": "pause_minority"},
        owner=4242,
        epmd_port=22001,
        erlang_home=tmp_path / "erlang",
        nodename=NAMES[index],
        amqp_port=22002 + index,
        management_port=22012 + index,
        dist_port=20002 + index,
        mark=str(tmp_path),
    )


def test_a_member_found_again_through_the_state_file(tmp_path):
    node = _node(tmp_path)
    again = component_from_dict(node.to_dict())
    assert isinstance(again, ClusterNode) and again.key == "cluster_node:b@localhost"
    assert (again.cluster, again.role, again.index, again.peers) == ("mpsoa-sync", "sync", 1, NAMES)
    assert again.owner == 4242 and again.extra == {"cluster_partition_handling": "pause_minority"}
    assert again.ports == node.ports and again.erlang_home == tmp_path / "erlang"
    assert again.KEEP_WHEN_STOPPED  # a killed member stays a member in the state file


def test_a_members_config_and_environment(tmp_path):
    node = _node(tmp_path)
    node.write_config()
    conf = (tmp_path / "n1" / "rabbitmq.conf").read_text()
    assert "listeners.tcp.1 = 127.0.0.1:22003" in conf  # a lab node's own settings first
    assert conf.endswith(cluster_config("mpsoa-sync", NAMES, 1, node.extra))
    assert node.env()["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"] == (
        f"-start_epmd false {LOOPBACK_DIST} {ERL_ARGS}"
    )


def test_a_cluster_names_its_members_by_index_or_name_and_joins_their_urls(tmp_path):
    cluster = Cluster("mpsoa-sync", [_node(tmp_path, i) for i in (2, 0, 1)])
    assert cluster.nodenames == NAMES  # in index order, the seed first
    assert cluster.node("c@localhost").index == 2 and cluster.node("b").index == 1
    assert cluster.index_of("a@localhost") == 0
    assert cluster.node_urls("space-1")[0] == "amqp://guest:guest@127.0.0.1:22002/space-1"
    assert cluster.failover_url() == ";".join(
        f"amqp://guest:guest@127.0.0.1:{p}//" for p in (22002, 22003, 22004)
    )
    with pytest.raises(IndexError, match="nodes 0 to 2"):
        cluster.node(3)
    with pytest.raises(LookupError, match="No node 'z'"):
        cluster.node("z")


def _stub_lab(tmp_path: Path, external: bool, server: str | None = None) -> SimpleNamespace:
    url = "amqp://u:secret@broker.example:5672//"
    return SimpleNamespace(
        external=external,
        brokers={"sync": Broker("sync", url, None), "async": Broker("async", url, None)},
        settings=Settings(home=tmp_path, rabbitmq_server=server),
    )


def test_a_cluster_on_brokers_given_by_url_is_a_clear_needs_lab_node(tmp_path):
    with pytest.raises(NeedsLabNode, match="brokers given by URL") as err:
        start_cluster(_stub_lab(tmp_path, external=True))
    assert "secret" not in str(err.value) and "MPSOA_SYNC_BROKER_URL" in str(err.value)


def test_bad_input_is_refused_before_anything_starts(tmp_path):
    lab = _stub_lab(tmp_path, external=False, server=str(tmp_path / "no-rabbitmq-server"))
    with pytest.raises(ClusterSizeError):
        start_cluster(lab, size=2)
    with pytest.raises(ValueError, match="no broker role 'edge'"):
        start_cluster(lab, role="edge")
    with pytest.raises(RabbitMQNotInstalled, match="not an executable file"):
        start_cluster(lab)
    assert not (tmp_path / "nodes").exists()


def test_a_member_is_booted_when_rabbitmq_says_so_else_a_clear_start_error(tmp_path, monkeypatch):
    node = _node(tmp_path)
    asked = []
    monkeypatch.setattr(node, "ctl", lambda *args, **kw: asked.append((args, kw["timeout"])) or "")
    node.await_startup(30.0)
    assert asked == [(("await_startup", "--timeout", "30"), 45)]

    def fails(*args, **kw):
        raise RuntimeError("rabbitmqctl await_startup failed (69): timed out")

    monkeypatch.setattr(node, "ctl", fails)
    with pytest.raises(NodeStartError, match=r"b@localhost .* not report it booted within 5 s"):
        node.await_startup(5.0)


def test_a_cluster_starts_when_every_member_has_booted_not_when_it_first_serves(tmp_path):
    """A node accepts AMQP and HTTP (``wait_ready``) before RabbitMQ marks it booted; a vhost
    created in between never starts on it. ``start`` returns only after each node's
    ``await_startup``, and a joining node is checked after it serves."""
    nodes = [_node(tmp_path, i) for i in range(3)]
    events: list[tuple[str, str]] = []
    lock = threading.Lock()

    def record(what, node):
        def call(*args, **kwargs):
            with lock:
                events.append((what, node.nodename))

        return call

    for node in nodes:
        node.start = record("start", node)
        node.wait_ready = record("serves", node)
        node.await_startup = record("booted", node)
    cluster = Cluster("mpsoa-sync", nodes)
    cluster.wait_members = record("members", SimpleNamespace(nodename="*"))
    cluster.start(timeout=30)
    assert {n for what, n in events if what == "booted"} == set(NAMES)
    assert events[-1] == ("members", "*")
    for name in NAMES[1:]:
        assert events.index(("serves", name)) < events.index(("booted", name))
    assert events.index(("booted", NAMES[0])) > events.index(("start", NAMES[2]))

    def never(*args, **kwargs):
        raise NodeStartError("c@localhost accepts connections but RabbitMQ did not report it")

    nodes[2].await_startup = never
    with pytest.raises(NodeStartError, match="c@localhost"):
        cluster.start(timeout=30)
