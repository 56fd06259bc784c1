"""The definitions ``python -m mpsoa_lab definitions`` writes for docker-compose.yml's brokers,
loaded into a real node (the same JSON a node loads at boot, through the management API): the
administrator logs in with the fresh password and may manage the node; the edge publishes the
tasks it calls and is refused the others; no password works but the written ones."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import amqp
import psutil
import pytest

from mpsoa_lab.plumbing.management import Management
from mpsoa_lab.running import compose_users

#: Outcomes, no timings: make test runs it beside others.
pytestmark = pytest.mark.beside_others


def _env(path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def _connect(node, user: str, password: str) -> amqp.Connection:
    conn = amqp.Connection(f"{node.address}:{node.amqp_port}", userid=user, password=password,
                           virtual_host="/", connect_timeout=5)  # fmt: skip
    conn.connect()
    return conn


def _publish(conn: amqp.Connection, exchange: str, key: str) -> str:
    channel = conn.channel()
    channel.confirm_select()
    try:
        channel.basic_publish(amqp.Message(b"{}"), exchange=exchange, routing_key=key)
        channel.basic_qos(0, 1, False)  # one round trip more: a refusal arrives before it
        return "published"
    except amqp.exceptions.AccessRefused as exc:
        return f"refused: {exc}"


def test_the_written_definitions_work_on_a_real_node(lab, tmp_path):
    if lab.external:
        pytest.skip("loads broker-wide users: on the lab's own nodes only")
    node = lab.node("sync")
    written = compose_users.write(tmp_path / "secrets")
    defs = json.loads(written.definitions.read_text())
    admin = _env(written.compose_env)["MPSOA_ADMIN_PASSWORD"]
    passwords = {k: v for k, v in _env(written.host_env).items() if k.endswith("_PASSWORD")}
    api = Management.for_broker(lab.sync)
    with api, _connect(node, "guest", "guest") as setup:  # the topology, as a deployment would
        channel = setup.channel()
        for exchange in ("mpledger", "mpwallet"):
            channel.exchange_declare(exchange, "topic", durable=True, auto_delete=False)
        try:
            api.import_definitions(defs)
            with _connect(node, "mpsoa", admin):
                pass
            url = f"http://mpsoa:{admin}@{node.address}:{node.management_port}/"
            with Management(url) as as_admin:  # the administrator tag: it may manage users
                assert {"mpsoa", "edge"} <= {u["name"] for u in as_admin.users()}
            with _connect(node, "edge", passwords["MPSOA_EDGE_PASSWORD"]) as edge:
                assert _publish(edge, "mpledger", "mpledger.async.record_entry") == "published"
                refused = _publish(edge, "mpwallet", "mpwallet.async.credit")
            assert refused.startswith("refused") and "mpwallet.async.credit" in refused
            with pytest.raises(amqp.exceptions.AccessRefused):
                _connect(node, "mpsoa", "mpsoa")  # the compose file's lab password: not here
        finally:
            for user in (u["name"] for u in defs["users"]):
                api.delete_user(user)
            for exchange in ("mpledger", "mpwallet"):
                channel.exchange_delete(exchange)


def test_a_node_that_loads_them_at_boot_has_no_default_user(lab, tmp_path):
    if lab.external:
        pytest.skip("starts a node of the lab's own")
    written = compose_users.write(tmp_path / "secrets")
    admin = compose_users.admin_password(written)
    passwords = {k: v for k, v in _env(written.host_env).items() if k.endswith("_PASSWORD")}
    with compose_users.booted_with(lab, written) as node:
        assert [c.key for c in lab.components("rabbitmq_definitions")] == [node.key]
        with pytest.raises(amqp.exceptions.AccessRefused):
            _connect(node, "guest", "guest")  # the default user was never created
        url = f"http://mpsoa:{admin}@{node.address}:{node.management_port}/"
        with Management(url) as api:
            defined = [u["name"] for u in json.loads(written.definitions.read_text())["users"]]
            assert sorted(u["name"] for u in api.users()) == sorted(defined)  # and no guest
            assert api.vhosts() == ["/"]
        with _connect(node, "mpwallet", passwords["MPSOA_MPWALLET_PASSWORD"]) as worker:
            said = _publish(worker, "", "mpledger.sync")  # the default exchange: not for it
            assert said.startswith("refused") and "amq.default" in said
        base_dir = node.base_dir
    assert not lab.components("rabbitmq_definitions") and not base_dir.exists()
    assert not node.is_running()


HOLDER = """
import sys, time
from pathlib import Path
import mpsoa_lab
from mpsoa_lab.running import compose_users
lab = mpsoa_lab.up(space=sys.argv[1])
written = compose_users.write(Path(lab.space_home) / "secrets")  # goes with the space
held = compose_users.booted_with(lab, written)  # kept: its exit would stop the node
node = held.__enter__()
print(node.process.pid, node.base_dir, written.folder, flush=True)
time.sleep(600)
"""


def test_the_node_goes_with_a_killed_kernel(lab, holder):
    if lab.external:
        pytest.skip("starts a node of the lab's own")
    pid, base_dir, secrets = holder(HOLDER, f"defs-{os.getpid()}").split()
    node, base_dir, secrets = psutil.Process(int(pid)), Path(base_dir), Path(secrets)
    assert node.is_running() and base_dir.exists() and secrets.exists()
    holder.kill()
    deadline = time.monotonic() + 90
    while (node.is_running() or base_dir.exists()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not node.is_running(), "the reaper left the node running"
    assert not base_dir.exists() and not secrets.exists(), "its data outlived the kernel"
