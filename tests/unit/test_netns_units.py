"""Hosts of their own, without making any: names, addresses, the Erlang inetrc, a member's
environment on its host, the cut's arguments, and why namespaces are unavailable."""

from __future__ import annotations

import pytest

from mpsoa_lab.plumbing import netns
from mpsoa_lab.plumbing.cluster import ERL_ARGS, Cluster, ClusterNode
from mpsoa_lab.plumbing.component import component_from_dict
from mpsoa_lab.plumbing.errors import LabError
from mpsoa_lab.plumbing.netns import Network, NetworkError, NetworkKeeper, lab_tag


def network() -> Network:
    return Network("ab12070f", 7, [1, 2, 3], epmd_port=4400, epmd="/usr/bin/epmd")


def test_names_and_addresses_stay_in_the_loopback_range_and_within_linux_limits():
    net = network()
    assert [net.address(h) for h in net.hosts] == ["127.77.7.1", "127.77.7.2", "127.77.7.3"]
    assert net.gateway == "127.77.7.254" and net.subnet == "127.77.7.0/24"
    assert net.namespace(2) == "mpsoa-ab12070f-n2" and net.hostname(2) == "n7h2"
    assert net.bridge == "mpab12070fbr" and net.outside(3) == "mpab12070fh3"
    assert all(len(name) <= 15 for name in (net.bridge, net.outside(3)))  # IFNAMSIZ - 1


def test_the_inetrc_names_every_host_for_erlang():
    assert network().inetrc().splitlines() == [
        '{host, {127,77,7,1}, ["n7h1"]}.',
        '{host, {127,77,7,2}, ["n7h2"]}.',
        '{host, {127,77,7,3}, ["n7h3"]}.',
        "{lookup, [file, native]}.",
    ]


def test_a_network_kept_in_the_state_file_comes_back_whole(tmp_path):
    net = network()
    assert Network.from_json(net.to_json()) == net
    keeper = NetworkKeeper(
        "k", tmp_path / "k", [1, 2, 3], home=tmp_path, epmd_port=4400, epmd="/usr/bin/epmd"
    )
    keeper.network, keeper.spec = net, net.to_json()
    again = component_from_dict(keeper.to_dict())
    assert isinstance(again, NetworkKeeper) and again.network == net
    assert NetworkKeeper.STOP_ORDER > ClusterNode.STOP_ORDER  # nodes leave their hosts first


def test_one_lab_home_one_tag():
    assert lab_tag("/tmp/a") == lab_tag("/tmp/a/") != lab_tag("/tmp/b")
    assert len(lab_tag("/tmp/a")) == 4


def test_a_host_cannot_be_on_both_sides_of_a_cut(monkeypatch):
    calls = []
    monkeypatch.setattr(netns, "_ip", lambda *args, **kw: calls.append(args))
    net = network()
    with pytest.raises(NetworkError, match="host 1 cannot be on both sides"):
        net.cut([1], [1, 2])
    calls.clear()
    net.cut([1], [2])
    # both directions, each a permanent entry pointing at a hardware address nobody has
    assert calls == [
        ("-n", "mpsoa-ab12070f-n1", "neigh", "replace", "127.77.7.2", "lladdr",
         netns.NOWHERE_MAC, "dev", "eth0", "nud", "permanent"),
        ("-n", "mpsoa-ab12070f-n2", "neigh", "replace", "127.77.7.1", "lladdr",
         netns.NOWHERE_MAC, "dev", "eth0", "nud", "permanent"),
    ]  # fmt: skip


def test_why_namespaces_are_unavailable_in_one_line(monkeypatch):
    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    assert netns.unavailable() == "making network namespaces needs root, and the lab runs as a user"
    monkeypatch.setattr(netns.sys, "platform", "darwin")
    assert "Linux's" in netns.unavailable()


def _member(tmp_path, on_host: bool) -> ClusterNode:
    net = network()
    where = (
        {"netns": net.namespace(2), "address": net.address(2), "inetrc": "/x/inetrc"}
        if on_host
        else {}
    )
    return ClusterNode(
        "mpsoa-sync-2", tmp_path / "n2", cluster="mpsoa-sync", index=1,
        peers=["a@n7h1", "b@n7h2", "c@n7h3"], epmd_port=4400, erlang_home=tmp_path / "e",
        nodename="b@n7h2", amqp_port=22002, management_port=22012, dist_port=20002,
        ticktime=6, **where,
    )  # fmt: skip


def test_a_member_on_a_host_of_its_own_listens_there_and_runs_there(tmp_path):
    node = _member(tmp_path, on_host=True)
    env = node.env()
    assert node.url == "amqp://guest:guest@127.77.7.2:22002//"
    assert node.management_url.startswith("http://guest:guest@127.77.7.2:22012")
    assert env["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"] == (
        f"-start_epmd false -kernel inet_dist_use_interface {{127,77,7,2}} {ERL_ARGS} "
        "-kernel net_ticktime 6"
    )
    assert env["RABBITMQ_CTL_ERL_ARGS"].endswith("-kernel net_ticktime 6")
    assert env["ERL_INETRC"] == "/x/inetrc"
    assert node.exec_prefix()[-3:] == ["netns", "exec", "mpsoa-ab12070f-n2"]
    node.write_config()
    conf = (tmp_path / "n2" / "rabbitmq.conf").read_text()
    assert "listeners.tcp.1 = 127.77.7.2:22002" in conf and "management.tcp.ip = 127.77.7.2" in conf
    again = component_from_dict(node.to_dict())
    assert (again.netns, again.address, again.ticktime) == (node.netns, node.address, 6)


def test_a_member_on_this_machine_is_unchanged(tmp_path):
    node = _member(tmp_path, on_host=False)
    assert node.address == "127.0.0.1" and node.exec_prefix() == []
    assert "ERL_INETRC" not in node.env()
    old = component_from_dict({**node.to_dict(), "address": None})  # an older state file
    assert old.address == "127.0.0.1"


def test_only_a_cluster_on_hosts_of_its_own_can_be_split(tmp_path):
    cluster = Cluster("mpsoa-sync", [_member(tmp_path, on_host=False)])
    assert not cluster.on_hosts
    with pytest.raises(LabError, match="runs on one host"):
        cluster.split([0])
    keeper = NetworkKeeper("k", tmp_path / "k", [1], home=tmp_path, epmd_port=1, epmd="epmd")
    assert not Cluster("mpsoa-sync", cluster.nodes, keeper=keeper).on_hosts  # not made yet
    keeper.network = network()
    assert Cluster("mpsoa-sync", cluster.nodes, keeper=keeper).on_hosts


def test_a_cell_that_splits_a_network_is_skipped_with_one_line_where_it_cannot(
    monkeypatch, capsys, tmp_path
):
    from IPython.core.interactiveshell import InteractiveShell

    from mpsoa_lab.running import notebook as nb_magic

    monkeypatch.setenv("MPSOA_LAB_HOME", str(tmp_path))
    for name in ("MPSOA_SYNC_BROKER_URL", "MPSOA_ASYNC_BROKER_URL"):
        monkeypatch.delenv(name, raising=False)
    shell = InteractiveShell.instance()
    try:
        nb_magic.register(shell)
        monkeypatch.setattr(netns, "unavailable", lambda: "making network namespaces needs root")
        for _ in range(2):
            assert shell.run_cell("%%needs_hosts (s) split\nran = 'yes'").success
        assert "ran" not in shell.user_ns
        assert capsys.readouterr().out == (
            "Skipped (s) split: it splits a cluster's network, and making network namespaces "
            "needs root.\n"
        )  # once per section
        monkeypatch.setattr(netns, "unavailable", lambda: None)
        assert shell.run_cell("%%needs_hosts (s) split\nran = 'yes'").success
        assert shell.user_ns["ran"] == "yes"
    finally:
        InteractiveShell.clear_instance()
