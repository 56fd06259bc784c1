"""HAProxy in front of REST instances, the real HAProxy (2.6 on Debian 12), as a lab component.

Its life cycle (a config it accepts, start, requests through to two instances in turn, a dead
instance taken out by the health checks, stop, nothing left behind, the reaper stopping the
HAProxy of a process that died), leastconn against round robin with a slow instance, and every
runtime API call the lab uses, each checked against HAProxy's own answer.
"""

from __future__ import annotations

import collections
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
import pytest

from mpsoa_lab.plumbing.component import ComponentStartError
from mpsoa_lab.plumbing.errors import HAProxyCommandError
from mpsoa_lab.plumbing.haproxy import check_config
from mpsoa_lab.plumbing.ports import PortAllocator
from mpsoa_lab.plumbing.util import wait_until
from mpsoa_lab.running import (
    add_instance,
    haproxies,
    remove_instance,
    start_haproxy,
    start_rest,
    stop_haproxy,
    stop_rest,
)

SERVICE = "mpledger"
PATH = "/ledger/accounts/lb/balance"


@pytest.fixture
def pair(lab):
    """Two mpledger instances behind a fresh HAProxy (round robin, checks every 100 ms)."""
    instances = start_rest(lab, SERVICE, 2)
    balancer = None
    try:
        balancer = start_haproxy(lab, {SERVICE: instances}, check_inter_ms=100)
        yield balancer, instances
    finally:
        if balancer is not None:
            stop_haproxy(lab, balancer)
        stop_rest(lab, instances)


def served_by(balancer, count: int) -> list[str]:
    """The instance that answered each of ``count`` requests through the frontend."""
    with httpx.Client(base_url=balancer.url(SERVICE), timeout=30, trust_env=False) as http:
        answers = [http.get(PATH) for _ in range(count)]
    assert [a.status_code for a in answers] == [200] * count, [a.text for a in answers]
    return [a.headers["x-instance"] for a in answers]


def test_the_generated_config_is_what_haproxy_accepts(pair):
    balancer, _ = pair
    ok, said = check_config(balancer.config_path)
    assert ok, said
    assert "Configuration file is valid" in said


def test_requests_go_to_the_two_instances_in_turn(pair):
    balancer, instances = pair
    names = served_by(balancer, 10)
    assert set(names) == {i.name for i in instances}
    assert all(a != b for a, b in zip(names, names[1:], strict=False))  # strictly alternating


def test_the_runtime_api_reports_both_servers_up_and_checked(pair):
    balancer, instances = pair
    states = balancer.runtime.servers(SERVICE)
    assert [(s.server, s.port) for s in states] == [(i.name, i.ports["http"]) for i in instances]
    assert all(s.status == "UP" and s.checked for s in states)
    assert balancer.runtime.info()["Version"].startswith(("2.", "3."))


def test_a_killed_instance_is_taken_out_by_the_health_checks(pair):
    balancer, (dead, alive) = pair
    dead.kill()
    took = balancer.runtime.wait_status(SERVICE, dead.name, "DOWN", timeout=10)
    assert took < 10
    assert set(served_by(balancer, 6)) == {alive.name}
    stats = {row["svname"]: row for row in balancer.runtime.stats() if row["pxname"] == SERVICE}
    assert stats[dead.name]["status"] == "DOWN" and stats[alive.name]["status"] == "UP"


def test_disable_and_enable_server(pair):
    balancer, (first, second) = pair
    balancer.runtime.disable_server(SERVICE, first.name)
    assert balancer.runtime.server(SERVICE, first.name).status == "MAINT"
    assert set(served_by(balancer, 4)) == {second.name}
    balancer.runtime.enable_server(SERVICE, first.name)
    balancer.runtime.wait_status(SERVICE, first.name, "UP", timeout=10)
    assert set(served_by(balancer, 4)) == {first.name, second.name}


def test_set_server_state_drain_maint_ready(pair):
    balancer, (first, second) = pair
    api = balancer.runtime
    api.set_server_state(SERVICE, first.name, "drain")
    assert api.server(SERVICE, first.name).status == "DRAIN"
    assert set(served_by(balancer, 4)) == {second.name}
    api.set_server_state(SERVICE, first.name, "maint")
    assert api.server(SERVICE, first.name).status == "MAINT"
    api.set_server_state(SERVICE, first.name, "ready")
    api.wait_status(SERVICE, first.name, "UP", timeout=10)
    with pytest.raises(ValueError):
        api.set_server_state(SERVICE, first.name, "asleep")


def test_health_forced_down_until_the_next_checks_and_checks_disabled(pair):
    balancer, (first, _) = pair
    api = balancer.runtime
    api.set_server_health(SERVICE, first.name, "down")
    assert api.server(SERVICE, first.name).status == "DOWN"
    api.wait_status(SERVICE, first.name, "UP", timeout=10)  # its checks pass: back with rise 1
    api.disable_health(SERVICE, first.name)
    assert not api.server(SERVICE, first.name).checked
    api.enable_health(SERVICE, first.name)
    assert api.server(SERVICE, first.name).checked


def test_an_instance_added_and_removed_at_run_time(lab, pair):
    balancer, instances = pair
    [third] = start_rest(lab, SERVICE, 1)
    try:
        add_instance(lab, balancer, SERVICE, third)
        state = balancer.runtime.server(SERVICE, third.name)
        assert state.status == "UP" and state.checked and state.port == third.ports["http"]
        assert set(served_by(balancer, 6)) == {i.name for i in [*instances, third]}
        [recorded] = [h for h in haproxies(lab) if h.name == balancer.name]
        assert third.name in {s.name for s in recorded.servers[SERVICE]}  # the state file knows
        remove_instance(lab, balancer, SERVICE, third)
        assert third.name not in {s.server for s in balancer.runtime.servers(SERVICE)}
        assert third.name not in served_by(balancer, 4)
    finally:
        stop_rest(lab, [third])


def test_refused_commands_raise_with_haproxys_answer(pair):
    balancer, (first, _) = pair
    api = balancer.runtime
    with pytest.raises(HAProxyCommandError, match="No such server"):
        api.disable_server(SERVICE, "nobody")
    with pytest.raises(HAProxyCommandError, match="No such backend"):
        api.enable_server("nothing", first.name)
    with pytest.raises(HAProxyCommandError, match="Already exists"):
        api.add_server(SERVICE, first.name, "127.0.0.1", 1)
    with pytest.raises(HAProxyCommandError, match="Unknown command"):
        api._ok("make coffee")


def test_leastconn_sends_less_to_a_slow_instance_than_round_robin(lab):
    """One of two instances sleeps 300 ms a call; 4 callers, 32 calls. Round robin gives
    each instance half; leastconn gives the slow one fewer (it holds its connections longer)."""
    fast, slow = start_rest(lab, SERVICE, 2, delay_ms=[0, 300])
    counts = {}
    try:
        for balance in ("roundrobin", "leastconn"):
            balancer = start_haproxy(lab, {SERVICE: [fast, slow]}, balance=balance)
            try:

                def call(_: int, url: str = balancer.url(SERVICE)) -> str:
                    with httpx.Client(base_url=url, timeout=30, trust_env=False) as http:
                        resp = http.get(PATH)
                    assert resp.status_code == 200
                    return resp.headers["x-instance"]

                with ThreadPoolExecutor(4) as pool:
                    counts[balance] = collections.Counter(pool.map(call, range(32)))
            finally:
                stop_haproxy(lab, balancer)
    finally:
        stop_rest(lab, [fast, slow])
    assert counts["roundrobin"][slow.name] == 16
    assert counts["leastconn"][slow.name] < 16, counts


def test_a_config_haproxy_refuses_is_a_start_error_with_its_words(lab):
    with pytest.raises(ComponentStartError, match="retry-on"):
        start_haproxy(lab, {SERVICE: []}, retry_on="whenever-you-like")
    assert not [h for h in haproxies(lab) if not h.is_running()]


def test_stopped_it_leaves_nothing(lab, pair):
    balancer, _ = pair
    pid, ports = balancer.process.pid, list(balancer.ports.values())
    stop_haproxy(lab, balancer)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert balancer.name not in {h.name for h in haproxies(lab)}
    assert not set(ports) & set(PortAllocator().reserved())
    with pytest.raises(httpx.TransportError):
        httpx.get(balancer.url(SERVICE) + PATH, timeout=2, trust_env=False)


def test_the_reaper_stops_the_haproxy_and_instances_of_a_process_that_died(lab):
    script = (
        "import os, mpsoa_lab\n"
        "from mpsoa_lab.running import start_haproxy, start_rest\n"
        "lab = mpsoa_lab.up()\n"
        f"instances = start_rest(lab, {SERVICE!r}, 2)\n"
        f"balancer = start_haproxy(lab, {{{SERVICE!r}: instances}})\n"
        "print(balancer.process.pid, *(i.process.pid for i in instances), flush=True)\n"
        "print(*balancer.ports.values(), *(i.ports['http'] for i in instances), flush=True)\n"
        "os._exit(0)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    ).stdout.split("\n")
    pids, ports = ([int(w) for w in line.split()] for line in out[:2])
    started = time.monotonic()
    wait_until(lambda: not any(psutil.pid_exists(pid) for pid in pids), timeout=30)
    assert time.monotonic() - started < 30
    wait_until(lambda: not set(ports) & set(PortAllocator().reserved()), timeout=10)
    assert not {pids[0]} & {h.process.pid for h in haproxies(lab) if h.process}


def test_tcp_mode_relays_amqp_to_the_backup_when_the_active_server_is_down(lab):
    """In TCP mode, with an active server that refuses connections (a bound socket that does
    not listen) and the lab's sync node as its backup: the active one is marked DOWN by its
    connect checks, and an AMQP client connects through the frontend to the backup."""
    import socket

    from kombu import Connection

    from mpsoa_lab.plumbing.haproxy import BalancerOptions, Server
    from mpsoa_lab.running import launch_haproxy

    node = lab.node("sync", "relay AMQP to")
    with socket.socket() as refusing:
        refusing.bind(("127.0.0.1", 0))
        servers = [
            Server("dead", "127.0.0.1", refusing.getsockname()[1]),
            Server("node", "127.0.0.1", node.amqp_port, backup=True),
        ]
        options = BalancerOptions(mode="tcp", check_inter_ms=100)
        balancer = launch_haproxy(lab, {"amqp": servers}, options)
        try:
            states = lambda: {s.server: s.status for s in balancer.runtime.servers("amqp")}  # noqa: E731
            wait_until(lambda: states() == {"dead": "DOWN", "node": "UP"}, timeout=10)
            host, port = balancer.address("amqp")
            url = node.url.replace(f":{node.amqp_port}", f":{port}")
            with Connection(url, connect_timeout=5) as conn:
                conn.connect()
                product = conn.connection.server_properties["product"]
            assert product in ("RabbitMQ", b"RabbitMQ")
        finally:
            stop_haproxy(lab, balancer)
    assert balancer not in haproxies(lab) and not balancer.is_running()
