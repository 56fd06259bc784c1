"""The one life cycle every process of the lab runs on: ports, readiness, the state file, the
reaper, spaces and exclusive sections, on real RabbitMQ nodes and real processes."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time

import psutil
import pytest
from kombu import Connection

from mpsoa_lab.plumbing.management import Management
from mpsoa_lab.plumbing.node import Epmd, RabbitMQNode
from mpsoa_lab.plumbing.ports import PortAllocator
from mpsoa_lab.plumbing.processes import managed_processes
from mpsoa_lab.plumbing.util import wait_until

#: Asserts nothing that another test's load could change: make test runs it beside others.
pytestmark = pytest.mark.beside_others


def test_a_node_whose_port_was_taken_starts_again_on_fresh_ports(tmp_path):
    epmd = Epmd(None, tmp_path, mark=str(tmp_path)).start()
    node = RabbitMQNode(
        "moved",
        tmp_path / "node",
        epmd_port=epmd.port,
        erlang_home=tmp_path / "erlang",
        nodename="mpsoa-moved@localhost",
        mark=str(tmp_path),
    )
    taken = node.amqp_port
    try:
        with socket.socket() as squatter:  # a program outside the lab binds the reserved port
            squatter.bind(("127.0.0.1", taken))
            squatter.listen()
            node.start()
            assert node.amqp_port != taken
            with Connection(node.url, connect_timeout=5) as conn:
                conn.connect()
        assert "eaddrinuse" in (tmp_path / "node" / "log" / "mpsoa-moved@localhost.log").read_text()
    finally:
        node.kill(keep_ports=False)
        epmd.stop(keep_ports=False)
    wait_until(lambda: managed_processes(tmp_path) == [], timeout=15)


def _lab_script(body: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        "import os, sys, time, mpsoa_lab\nlab = mpsoa_lab.up()\n" + textwrap.dedent(body),
    ]


def test_a_dead_owner_takes_its_components_and_its_space_with_it(lab):
    # Another process (a notebook kernel) gets its own space, starts an HTTP server on the
    # lab's life cycle (a new kind of component in a few lines: a command with a reserved port,
    # ready when HTTP answers), and dies without a word: no release, no clean-up.
    out = subprocess.run(
        _lab_script("""
        from mpsoa_lab.plumbing.component import Program, http_probe
        web = Program("web", lab.space_home / "web",
                      [sys.executable, "-m", "http.server", "{http}", "--bind", "127.0.0.1"],
                      ports=["http"], probe=http_probe("http://127.0.0.1:{http}/"),
                      owner=os.getpid(), mark=str(lab.home))
        web.start(timeout=30)
        lab.record(web)
        print(web.process.pid, web.ports["http"], lab.space, lab.sync.vhost, flush=True)
        os._exit(0)
    """),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    pid, port, space, vhost = out.split()
    assert space != lab.space and vhost == space
    assert PortAllocator().reserved().get(int(port)) == int(pid)  # the server holds its port
    with Management.for_broker(lab.sync) as api:
        wait_until(lambda: not psutil.pid_exists(int(pid)), timeout=20)
        wait_until(lambda: int(port) not in PortAllocator().reserved(), timeout=5)
        wait_until(lambda: vhost not in api.vhosts(), timeout=10)
        assert lab.sync.vhost in api.vhosts()  # this process's own space is untouched
    assert not (lab.home / "spaces" / space).exists()
    state = json.loads((lab.home / "lab.json").read_text())
    assert "program:web" not in state["components"] and space not in state["spaces"]


def test_an_exclusive_section_makes_the_next_one_wait_and_say_for_whom(lab):
    with lab.exclusive("floods the async broker"):
        waiter = subprocess.Popen(
            _lab_script("""
            started = time.monotonic()
            with lab.exclusive("restarts the sync broker"):
                print(f"got the lab after {time.monotonic() - started:.1f} s", flush=True)
            lab.release()
        """),
            stdout=subprocess.PIPE,
            text=True,
        )
        first = waiter.stdout.readline()
        time.sleep(0.5)
        assert waiter.poll() is None  # still waiting
    rest = waiter.communicate(timeout=30)[0]
    assert waiter.returncode == 0
    assert first.startswith(f"Waiting for {lab.space}: it floods the async broker")
    assert rest.startswith("got the lab after")


def test_spaces_keep_two_processes_apart_on_the_same_nodes(lab):
    script = _lab_script("""
        import json
        from mpsoa_lab.design.services import mplogin
        print(json.dumps([lab.sync.url.rsplit("/", 1)[1], str(mplogin.service.storage.path)]))
        lab.release()
    """)
    runs = [
        json.loads(
            subprocess.run(script, capture_output=True, text=True, timeout=60, check=True).stdout
        )
        for _ in range(2)
    ]
    (vhost_a, storage_a), (vhost_b, storage_b) = runs
    assert vhost_a != vhost_b and storage_a != storage_b
    assert all(str(lab.home) in path for path in (storage_a, storage_b))


def test_a_worker_that_cannot_start_says_why_from_its_log(lab):
    from mpsoa_lab import ComponentStartError
    from mpsoa_lab.running.workers import start_worker

    with pytest.raises(ComponentStartError) as err:
        start_worker(lab, "mpledger", "async", config={"task_acks_lately": True}, timeout=60)
    message = str(err.value)
    assert "exited while starting" in message
    assert "names settings Celery 5 does not have: task_acks_lately" in message  # from its log
    # nothing of the failed start is left in the state file: every worker recorded still runs
    assert all(worker.is_running() for worker in lab.components("worker"))
