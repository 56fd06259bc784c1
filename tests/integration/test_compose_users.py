"""The definitions ``python -m mpsoa_lab definitions`` writes for docker-compose.yml's brokers,
loaded into a real node (the same JSON a node loads at boot, through the management API): the
administrator logs in with the fresh password and may manage the node; the edge publishes the
tasks it calls and is refused the others; no password works but the written ones."""

from __future__ import annotations

import json

import amqp
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
