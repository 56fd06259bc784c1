"""A space with nodes of its own: what a notebook that restarts, kills or floods its brokers
does to them never reaches the notebooks beside it, and the nodes go with their process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from kombu import Connection

from mpsoa_lab.plumbing.processes import managed_commands
from mpsoa_lab.plumbing.settings import load
from mpsoa_lab.plumbing.state import running_lab_urls

#: Asserts nothing that another test's load could change: make test runs it beside others.
pytestmark = pytest.mark.beside_others

# A process with a space and nodes of its own: it kills its sync node, starts it again, says
# what it has, and holds its lab until its stdin closes.
OWNER = """
import json, sys
import mpsoa_lab
import pytest
from kombu import Connection
lab = mpsoa_lab.up(space=sys.argv[1], own_nodes=True)
lab.kill_node("sync")
lab.start_node("sync")
with Connection(lab.sync.url) as conn:
    conn.connect()
print(json.dumps({
    "urls": {role: b.url for role, b in lab.brokers.items()},
    "nodes": {role: b.node.nodename for role, b in lab.brokers.items()},
    "again": {role: b.url for role, b in mpsoa_lab.up(space=sys.argv[1], own_nodes=True).brokers.items()},
}), flush=True)
sys.stdin.read()
"""


def _nodes_running(home: str, nodename: str) -> bool:
    return any(nodename in cmd for cmd in managed_commands(home).values())


def test_own_nodes_are_the_space_s_alone_and_go_with_its_process(lab):
    space = f"own-{os.getpid()}"
    shared_pid = lab.sync.node.process.pid
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, space],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "MPSOA_SPACE": ""},
    )
    try:
        line = owner.stdout.readline()
        assert line, f"the owner process ended early (exit {owner.poll()})"
        got = json.loads(line)
        # its brokers are nodes of its own, not the shared ones, and stay the same on a second up()
        assert set(got["urls"]) == {"sync", "async"}
        assert all(url != lab.brokers[r].url for r, url in got["urls"].items())
        assert got["again"] == got["urls"]
        assert all(space in name for name in got["nodes"].values())
        # its kill and start did nothing to the shared node, which every other notebook uses
        assert lab.sync.node.process.pid == shared_pid
        with Connection(lab.sync.url) as conn:
            conn.connect()
        # workers and edges of that space resolve the same brokers from the state file
        assert running_lab_urls(load({**os.environ, "MPSOA_SPACE": space})) == got["urls"]
    finally:
        owner.stdin.close()
        owner.wait(timeout=60)
    home = os.environ["MPSOA_LAB_HOME"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(
        _nodes_running(home, n) for n in got["nodes"].values()
    ):
        time.sleep(0.5)
    assert not any(_nodes_running(home, n) for n in got["nodes"].values())
    assert lab.sync.node.process.pid == shared_pid
