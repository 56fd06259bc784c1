"""The lab's brokers on real RabbitMQ nodes: reuse, external URLs, restart, kill, and cleanup.

These tests start nodes of their own (in their own lab homes) next to the session's lab, so they
can stop, kill and crash them without disturbing the notebooks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from kombu import Connection, Exchange, Producer, Queue

import mpsoa_lab
from mpsoa_lab import BrokerUnreachable, RabbitMQNotInstalled
from mpsoa_lab.plumbing.node import Epmd, RabbitMQNode, free_port
from mpsoa_lab.plumbing.processes import managed_processes
from mpsoa_lab.plumbing.settings import load
from mpsoa_lab.running.lab import running_lab_urls

#: Asserts nothing that another test's load could change: make test runs it beside others.
pytestmark = pytest.mark.beside_others


def processes_of(home: Path) -> list[psutil.Process]:
    """Every process the lab under ``home`` started: nodes, epmd, reaper, workers."""
    return managed_processes(home)


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.25)
    return predicate()


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    """One RabbitMQ node that no Lab started: a broker 'given by URL'."""
    base = tmp_path_factory.mktemp("standalone")
    epmd = Epmd(free_port(), base).start()
    node = RabbitMQNode(
        "standalone",
        base / "node",
        epmd_port=epmd.port,
        erlang_home=base / "erlang",
        nodename="mpsoa-standalone@localhost",
        mark=str(base),
    )
    try:
        node.start()
        yield node
    finally:
        # Killed, not stopped: no test here is about how this node ends (test_restart_... stops
        # it gracefully itself), and a graceful stop costs ~7 s; its files go with tmp_path.
        node.kill()
        epmd.stop()
    # Its processes carry this mark, not the session's: the session's leak check would not
    # see them, so the check is made here. (Erlang's helpers exit a moment after their beam.)
    assert wait_until(lambda: processes_of(base) == [], 10), processes_of(base)


def test_session_lab_runs_the_design_two_brokers(lab):
    assert set(lab.brokers) == {"sync", "async"}
    assert lab.sync.url != lab.async_.url
    for broker in lab.brokers.values():
        with Connection(broker.url, connect_timeout=5) as conn:
            conn.connect()
            assert conn.connected
        assert broker.node.is_running()


def test_another_process_reuses_the_running_lab(lab):
    code = (
        "import json, mpsoa_lab; l = mpsoa_lab.up(); "
        "print(json.dumps([l.started_here, l.sync.node_url, l.async_.node_url, l.space])); "
        "l.release()"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    started_here, sync_url, async_url, space = json.loads(out)
    # The same nodes, but a space of its own: another vhost on each.
    assert (started_here, sync_url, async_url) == (False, lab.sync.node_url, lab.async_.node_url)
    assert space != lab.space
    assert running_lab_urls() == {"sync": lab.sync.url, "async": lab.async_.url}


def test_brokers_given_by_url_are_used_as_they_are(standalone, tmp_path):
    env = {
        "MPSOA_LAB_HOME": str(tmp_path),
        "MPSOA_SYNC_BROKER_URL": standalone.url,
        "MPSOA_ASYNC_BROKER_URL": standalone.url,
    }
    ext = mpsoa_lab.up(load(env))
    assert ext.external and ext.nodes == {}
    assert ext.sync.url == ext.async_.url == standalone.url

    # The lab starts no node of its own: only its reaper runs under its home. (Polled: right
    # after the fork, /proc shows the parent's environment until the reaper has exec'd.)
    def lab_processes() -> list[list[str]]:
        try:
            return [p.cmdline()[2:3] for p in processes_of(tmp_path)]
        except psutil.Error:
            return []

    assert wait_until(lambda: lab_processes() == [["mpsoa_lab.running.reaper"]], 10), (
        lab_processes()
    )
    again = mpsoa_lab.up(load(env))
    assert not again.started_here and again.sync.url == standalone.url
    ext.down()  # stops what the lab started; the broker given by URL stays up
    assert standalone.is_running()
    assert wait_until(lambda: processes_of(tmp_path) == [], 10)


def test_unreachable_broker_fails_fast_without_password(tmp_path):
    port = free_port()  # nobody listens there
    env = {
        "MPSOA_LAB_HOME": str(tmp_path),
        "MPSOA_CONNECT_TIMEOUT": "2",
        "MPSOA_SYNC_BROKER_URL": f"amqp://guest:s3cret@127.0.0.1:{port}//",
        "MPSOA_ASYNC_BROKER_URL": f"amqp://guest:s3cret@127.0.0.1:{port}//",
    }
    started = time.monotonic()
    with pytest.raises(BrokerUnreachable) as err:
        mpsoa_lab.up(load(env))
    assert time.monotonic() - started < 10
    assert f"amqp://guest:***@127.0.0.1:{port}//" in str(err.value)
    assert "s3cret" not in str(err.value)


def test_missing_server_is_a_clear_error_and_starts_nothing(tmp_path):
    env = {"MPSOA_LAB_HOME": str(tmp_path), "MPSOA_RABBITMQ_SERVER": str(tmp_path / "nope")}
    with pytest.raises(RabbitMQNotInstalled, match="is not an executable file"):
        mpsoa_lab.up(load(env))
    assert processes_of(tmp_path) == []


def test_restart_keeps_durable_queues_and_persistent_messages(standalone):
    exchange = Exchange("t.restart", type="topic", durable=True)
    queue = Queue("t.restart", exchange, routing_key="t.#", durable=True)
    with Connection(standalone.url) as conn:
        producer = Producer(conn.channel())
        producer.publish(
            {"n": 1}, exchange=exchange, routing_key="t.kept", declare=[queue], delivery_mode=2
        )
        producer.publish({"n": 2}, exchange=exchange, routing_key="t.lost", delivery_mode=1)
    old_pid = standalone.process.pid
    standalone.restart()
    assert standalone.process.pid != old_pid
    with Connection(standalone.url) as conn:
        channel = conn.channel()
        message = queue(channel).get(no_ack=True)
        assert message is not None and message.payload == {"n": 1}
        assert queue(channel).get(no_ack=True) is None  # the transient one did not survive
        queue(channel).delete()
        exchange(channel).delete()


def test_kill_is_a_crash_and_start_recovers(standalone):
    beam = standalone._beam()
    assert beam is not None
    standalone.kill()
    assert not standalone.is_running()
    assert not psutil.pid_exists(beam.pid) or beam.status() == psutil.STATUS_ZOMBIE
    standalone.start()
    with Connection(standalone.url) as conn:
        conn.connect()


def test_a_crashed_holder_leaves_nothing_behind(tmp_path):
    """A notebook kernel that dies (kill -9) is the lab's last holder: the reaper stops it all."""
    env = {**os.environ, "MPSOA_LAB_HOME": str(tmp_path), "MPSOA_LAB_GRACE": "1"}
    code = "import mpsoa_lab, time; mpsoa_lab.up(); print('up', flush=True); time.sleep(600)"
    holder = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "up"
        names = {p.name() for p in processes_of(tmp_path)}
        assert any(n.startswith("beam") for n in names) and "epmd" in names
    finally:
        holder.kill()
        holder.wait()
    assert wait_until(lambda: processes_of(tmp_path) == [], 60), [
        p.cmdline()[:3] for p in processes_of(tmp_path)
    ]
    assert not (tmp_path / "lab.json").exists()


def test_a_restarted_kernel_leaves_nothing_behind(tmp_path):
    """The same through Jupyter: a kernel starts the lab, then is restarted."""
    from jupyter_client.manager import start_new_kernel

    env = {**os.environ, "MPSOA_LAB_HOME": str(tmp_path), "MPSOA_LAB_GRACE": "1"}
    km, kc = start_new_kernel(kernel_name="python3", env=env)
    try:
        reply = kc.execute_interactive("import mpsoa_lab; lab = mpsoa_lab.up()", timeout=120)
        assert reply["content"]["status"] == "ok"
        assert (tmp_path / "lab.json").exists()
        km.restart_kernel(now=True)
        assert wait_until(lambda: processes_of(tmp_path) == [], 60)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert processes_of(tmp_path) == []


def test_down_stops_everything_at_once(tmp_path):
    lab = mpsoa_lab.up(load({**os.environ, "MPSOA_LAB_HOME": str(tmp_path)}))
    assert lab.started_here and len(processes_of(tmp_path)) >= 4  # epmd, 2 nodes, reaper
    lab.down()
    assert wait_until(lambda: processes_of(tmp_path) == [], 10)
    assert not (tmp_path / "lab.json").exists()


def test_a_node_never_starts_an_epmd_that_nothing_stops(tmp_path):
    """The lab's epmd killed: a node started on its port is refused with one clear line (Erlang
    would start an ``epmd -daemon`` of its own), and the lab starts its epmd again, on the same
    port and on its life cycle, before it restarts a node. Whatever RabbitMQ started meanwhile
    (its epmd monitor starts an ``epmd -daemon`` when it finds none) is gone after ``down``."""
    from mpsoa_lab.plumbing.errors import NodeStartError

    lab = mpsoa_lab.up(load({**os.environ, "MPSOA_LAB_HOME": str(tmp_path)}))
    try:
        (epmd,) = lab.components("epmd")
        lab.stop_node("async")
        epmd.kill()
        node = lab.node("async")
        with pytest.raises(NodeStartError, match=f"its epmd \\(127.0.0.1:{epmd.port}\\) does not"):
            node.start()
        lab.start_node("async")  # the lab heals its epmd first
        (healed,) = lab.components("epmd")
        assert healed.is_running() and healed.port == epmd.port
        with Connection(lab.async_.url) as conn:
            conn.connect()
    finally:
        lab.down()
    assert wait_until(lambda: processes_of(tmp_path) == [], 10)


def test_two_lab_nodes_form_a_cluster(tmp_path):
    """Nodes that share the lab's epmd and cookie can be clustered (later notebooks need it)."""
    import requests

    epmd = Epmd(free_port(), tmp_path).start()
    nodes = [
        RabbitMQNode(
            f"c{i}",
            tmp_path / f"c{i}",
            epmd_port=epmd.port,
            erlang_home=tmp_path / "erlang",
            nodename=f"mpsoa-c{i}@localhost",
            mark=str(tmp_path),
        )
        for i in (1, 2)
    ]
    try:
        for node in nodes:
            node.start(wait=False)
        for node in nodes:
            node.wait_ready()
        assert len(processes_of(tmp_path)) >= 3  # epmd and two nodes, found by their mark
        nodes[1].join_cluster(nodes[0])
        running = requests.get(
            f"http://127.0.0.1:{nodes[1].management_port}/api/nodes",
            auth=("guest", "guest"),
            timeout=5,
        ).json()
        assert sorted(n["name"] for n in running if n["running"]) == sorted(
            n.nodename for n in nodes
        )
        with Connection(nodes[0].url) as conn:  # declared on one node, seen from the other
            Queue("t.cluster", durable=True)(conn.channel()).declare()
        with Connection(nodes[1].url) as conn:
            assert (
                conn.default_channel.queue_declare("t.cluster", passive=True).queue == "t.cluster"
            )
    finally:
        for node in nodes:
            node.kill()
        epmd.stop()
    # erl_child_setup and inet_gethost exit a moment after their beam: polled, nothing may stay.
    assert wait_until(lambda: processes_of(tmp_path) == [], 10), processes_of(tmp_path)


def test_cli_up_ends_when_the_lab_is_stopped_from_elsewhere(tmp_path):
    """``python -m mpsoa_lab up`` in one terminal, ``down`` in another: the first one ends too."""
    env = {**os.environ, "MPSOA_LAB_HOME": str(tmp_path)}
    env.pop("MPSOA_SPACE", None)
    holder = subprocess.Popen(
        [sys.executable, "-m", "mpsoa_lab", "up"], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "The lab is up."
        down = subprocess.run(
            [sys.executable, "-m", "mpsoa_lab", "down"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert down.returncode == 0 and "Lab stopped." in down.stdout
        rest = holder.communicate(timeout=20)[0]
    finally:
        holder.kill()
        holder.wait()
    assert holder.returncode == 0 and "stopped from elsewhere" in rest
    assert wait_until(lambda: processes_of(tmp_path) == [], 20)
