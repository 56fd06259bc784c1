"""The management API client and the topology diagram, against the lab's real brokers."""

from __future__ import annotations

import random
import secrets
import socket
import threading
import time
from urllib.parse import urlsplit, urlunsplit

import pytest
from kombu import Connection, Exchange, Producer, Queue
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch

import mpsoa_lab
from mpsoa_lab.design.topology import platform_queues
from mpsoa_lab.observe.diagram import draw_topology, layout
from mpsoa_lab.plumbing.errors import ManagementAPIUnavailable
from mpsoa_lab.plumbing.management import EntityNotFound, Management
from mpsoa_lab.running.lab import Broker

#: Asserts nothing that another test's load could change: make test runs it beside others.
pytestmark = pytest.mark.beside_others


@pytest.fixture
def mgmt(lab):
    with Management.for_broker(lab.sync) as client:
        yield client


@pytest.fixture
def prefix(mgmt):
    """A name prefix no other test or notebook uses; whatever carries it is deleted afterwards."""
    prefix = f"test-mgmt-{secrets.token_hex(3)}."
    yield prefix
    for queue in mgmt.queues():
        if queue["name"].startswith(prefix):
            mgmt.delete_queue(queue["name"])
    for exchange in mgmt.exchanges():
        if exchange["name"].startswith(prefix):
            mgmt.delete_exchange(exchange["name"])


def _in_vhost(amqp_url: str, vhost: str) -> str:
    return urlunsplit(urlsplit(amqp_url)._replace(path="/" + vhost))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- reads -----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["sync", "async"])
def test_overview_answers_on_both_brokers(lab, role):
    overview = Management.for_broker(lab.brokers[role]).overview()
    assert overview["rabbitmq_version"][0].isdigit()
    assert overview["management_version"] == overview["rabbitmq_version"]


def test_versions_reports_the_running_broker(lab, mgmt):
    assert mpsoa_lab.versions(lab)["rabbitmq"] == mgmt.overview()["rabbitmq_version"]


def test_declared_with_kombu_read_back_and_deleted(lab, mgmt, prefix):
    exchange_name, queue_name = f"{prefix}mplogin", f"{prefix}mplogin.sync"
    with Connection(lab.sync.url, transport_options={"confirm_publish": True}) as conn:
        channel = conn.channel()
        exchange = Exchange(exchange_name, type="topic", durable=True, channel=channel)
        exchange.declare()
        queue = Queue(queue_name, durable=True, channel=channel)
        queue.declare()
        queue.bind_to(exchange, routing_key="mplogin.sync.#")
        for method in ("register", "login"):
            Producer(channel).publish(
                {"method": method}, exchange=exchange, routing_key=f"mplogin.sync.{method}"
            )

    assert mgmt.topology(prefix=prefix) == {
        "exchanges": [
            {
                "name": exchange_name,
                "type": "topic",
                "durable": True,
                "auto_delete": False,
                "internal": False,
            }
        ],
        "queues": [
            {
                "name": queue_name,
                "type": "classic",
                "durable": True,
                "auto_delete": False,
                "exclusive": False,
                "arguments": {},
            }
        ],
        "bindings": [
            {
                "source": exchange_name,
                "destination": queue_name,
                "destination_type": "queue",
                "routing_key": "mplogin.sync.#",
                "arguments": {},
            }
        ],
    }
    assert exchange_name in {e["name"] for e in mgmt.exchanges()}
    assert mgmt.queue(queue_name)["durable"] is True
    assert {
        (b["source"], b["routing_key"]) for b in mgmt.bindings() if b["destination"] == queue_name
    } == {("", queue_name), (exchange_name, "mplogin.sync.#")}

    # Peeking with requeue leaves the messages where they were.
    peeked = mgmt.get_messages(queue_name, 5)
    assert sorted(m["routing_key"] for m in peeked) == [
        "mplogin.sync.login",
        "mplogin.sync.register",
    ]
    assert all(m["exchange"] == exchange_name for m in peeked)
    assert len(mgmt.get_messages(queue_name, 5, ackmode="ack_requeue_false")) == 2
    assert mgmt.get_messages(queue_name, 5) == []

    # A policy on the queue: applied at once, removed once, then gone.
    policy = f"{prefix}policy"
    mgmt.put_policy(policy, f"^{queue_name}$", {"max-length": 1000})
    assert policy in {p["name"] for p in mgmt.policies()}
    assert mgmt.delete_policy(policy) is True
    assert mgmt.delete_policy(policy) is False  # already gone: not an error by default
    with pytest.raises(EntityNotFound):
        mgmt.delete_policy(policy, missing_ok=False)

    assert mgmt.delete_queue(queue_name) is True
    assert mgmt.delete_exchange(exchange_name) is True
    with pytest.raises(EntityNotFound, match="does not exist"):
        mgmt.queue(queue_name)
    assert mgmt.delete_queue(queue_name) is False  # already gone: not an error by default
    with pytest.raises(EntityNotFound):
        mgmt.delete_exchange(exchange_name, missing_ok=False)
    assert mgmt.topology(prefix=prefix) == {"exchanges": [], "queues": [], "bindings": []}


def test_topology_leaves_out_rabbitmqs_own_and_is_sorted(lab, mgmt, prefix):
    with Connection(lab.sync.url) as conn:
        channel = conn.channel()
        exchange = Exchange(f"{prefix}x", type="direct", channel=channel)
        exchange.declare()
        for name in ("c", "a", "b"):
            queue = Queue(f"{prefix}{name}", channel=channel)
            queue.declare()
            queue.bind_to(exchange, routing_key=name)
            queue.bind_to("amq.topic", routing_key=name)  # RabbitMQ's own exchange: left out
    everything = mgmt.topology()
    names = [e["name"] for e in everything["exchanges"]] + [q["name"] for q in everything["queues"]]
    assert not any(n == "" or n.startswith("amq.") for n in names)
    assert not any(
        b["source"] == "" or b["source"].startswith("amq.") for b in everything["bindings"]
    )
    mine = mgmt.topology(prefix=prefix)
    assert [q["name"] for q in mine["queues"]] == [f"{prefix}a", f"{prefix}b", f"{prefix}c"]
    assert [b["routing_key"] for b in mine["bindings"]] == ["a", "b", "c"]


def test_topology_with_prefix_lists_both_ends_of_a_binding(lab, mgmt, prefix):
    other = f"other-{prefix}"
    try:
        with Connection(lab.sync.url) as conn:
            channel = conn.channel()
            exchange = Exchange(f"{other}x", type="topic", channel=channel)
            exchange.declare()
            queue = Queue(f"{prefix}q", channel=channel)
            queue.declare()
            queue.bind_to(exchange, routing_key="k.#")
        mine = mgmt.topology(prefix=prefix)
        assert [e["name"] for e in mine["exchanges"]] == [f"{other}x"]
        assert [q["name"] for q in mine["queues"]] == [f"{prefix}q"]
        assert len(mine["bindings"]) == 1
    finally:
        mgmt.delete_exchange(f"{other}x")


def test_vhost_is_created_with_permissions_and_deleted(lab, mgmt):
    vhost = f"test-mgmt-{secrets.token_hex(3)}"
    try:
        mgmt.create_vhost(vhost)
        mgmt.create_vhost(vhost)  # idempotent
        assert vhost in mgmt.vhosts()
        url = _in_vhost(lab.sync.url, vhost)
        with Connection(url) as conn:  # the API user may use it at once
            Queue("q", channel=conn.channel()).declare()
        assert [q["name"] for q in mgmt.topology(vhost=vhost)["queues"]] == ["q"]
    finally:
        assert mgmt.delete_vhost(vhost) is True
    assert vhost not in mgmt.vhosts()
    assert mgmt.delete_vhost(vhost) is False
    with pytest.raises(EntityNotFound):
        mgmt.queues(vhost)
    with pytest.raises(ValueError):
        mgmt.delete_vhost("/")


# -- errors ----------------------------------------------------------------------------------


def test_unreachable_api_names_the_url_without_password_and_what_to_do():
    port = _free_port()
    started = time.monotonic()
    with pytest.raises(ManagementAPIUnavailable) as info:
        Management(f"http://guest:s3cret-pw@127.0.0.1:{port}/", role="sync").overview()
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert f"http://guest:***@127.0.0.1:{port}/" in message
    assert "s3cret-pw" not in message
    assert "rabbitmq_management" in message and "MPSOA_SYNC_MANAGEMENT_URL" in message


def test_silent_api_gives_up_after_its_timeout():
    """A port that accepts connections but never answers (a hung node, a wrong service)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        with pytest.raises(ManagementAPIUnavailable, match="did not answer") as info:
            Management(f"http://guest:s3cret-pw@127.0.0.1:{port}/", timeout=1.0).overview()
        assert time.monotonic() - started < 10
        assert "s3cret-pw" not in str(info.value)
        assert "MPSOA_SYNC_MANAGEMENT_URL / MPSOA_ASYNC_MANAGEMENT_URL" in str(info.value)
    finally:
        for sock in accepted:
            sock.close()
        server.close()


def test_wrong_password_is_refused_without_showing_it(lab):
    parts = urlsplit(lab.sync.management_url)
    user = parts.username or "guest"
    url = urlunsplit(
        parts._replace(netloc=f"{user}:not-the-password@{parts.hostname}:{parts.port}")
    )
    with pytest.raises(ManagementAPIUnavailable, match=f"refused user '{user}'") as info:
        Management(url, role="async").overview()
    assert "not-the-password" not in str(info.value)
    assert "MPSOA_ASYNC_MANAGEMENT_URL" in str(info.value)


def test_broker_without_management_url_says_which_variable_to_set(lab):
    broker = Broker("async", lab.async_.url, None)
    with pytest.raises(ManagementAPIUnavailable, match="MPSOA_ASYNC_MANAGEMENT_URL") as info:
        Management.for_broker(broker)
    assert "guest:guest" not in str(info.value)


def test_not_a_management_url():
    with pytest.raises(ValueError, match="not a management API URL"):
        Management("amqp://guest:s3cret@localhost:5672//")


# -- diagram ---------------------------------------------------------------------------------


def _arrows(fig: Figure) -> list[FancyArrowPatch]:
    return [p for p in fig.axes[0].patches if isinstance(p, FancyArrowPatch)]


def _texts(fig: Figure) -> list[str]:
    return [t.get_text() for t in fig.axes[0].texts]


def test_diagram_of_the_design_read_back_from_the_broker(lab, mgmt):
    vhost = f"test-diagram-{secrets.token_hex(3)}"
    mgmt.create_vhost(vhost)
    try:
        url = _in_vhost(lab.sync.url, vhost)
        with Connection(url) as conn:
            channel = conn.channel()
            for queue in platform_queues():
                queue(channel).declare()
        topology = mgmt.topology(vhost=vhost)
    finally:
        mgmt.delete_vhost(vhost)

    fig = draw_topology(topology, title="the design")
    assert isinstance(fig, Figure) and fig.dpi == 100
    assert len(_arrows(fig)) == len(topology["bindings"]) == 6
    texts = _texts(fig)
    for service in mpsoa_lab.SERVICES:
        assert f"{service}\n(topic)" in texts
        for kind in mpsoa_lab.KINDS:
            assert f"{service}.{kind}" in texts and f"{service}.{kind}.#" in texts
    width, height = fig.get_size_inches()
    assert width * fig.dpi <= 1000 and height * fig.dpi <= 1000  # small enough to read on GitHub


def test_diagram_layout_is_deterministic_and_groups_queues_by_exchange():
    bindings = [
        {"source": ex, "destination": q, "destination_type": "queue", "routing_key": key}
        for ex, q, key in [
            ("b", "b.1", "x"),
            ("a", "a.2", "y"),
            ("a", "a.1", "z"),
            ("b", "a.2", "w"),
        ]
    ]
    topology = {
        "exchanges": [{"name": "b", "type": "direct"}, {"name": "a", "type": "topic"}],
        "queues": [{"name": q} for q in ("b.1", "a.2", "a.1", "lonely")],
        "bindings": bindings,
    }
    shuffled = {k: random.sample(v, len(v)) for k, v in topology.items()}
    exchanges, queues = layout(topology)
    assert (exchanges, queues) == layout(shuffled)
    assert sorted(queues, key=queues.get) == ["a.1", "a.2", "b.1", "lonely"]
    assert sorted(exchanges, key=exchanges.get) == ["a", "b"]
    fig = draw_topology(topology)
    assert len(_arrows(fig)) == 4


def test_diagram_draws_repeated_and_exchange_to_exchange_bindings():
    topology = {
        "exchanges": [{"name": "in", "type": "topic"}, {"name": "out", "type": "fanout"}],
        "queues": [{"name": "q"}],
        "bindings": [
            {"source": "in", "destination": "q", "destination_type": "queue", "routing_key": "a"},
            {"source": "in", "destination": "q", "destination_type": "queue", "routing_key": "b"},
            {
                "source": "in",
                "destination": "out",
                "destination_type": "exchange",
                "routing_key": "#",
            },
            {"source": "out", "destination": "q", "destination_type": "queue", "routing_key": ""},
        ],
    }
    fig = draw_topology(topology)
    assert len(_arrows(fig)) == 4
    assert {"a", "b", "#", '""'} <= set(_texts(fig))
    assert len(_arrows(draw_topology({"exchanges": [], "queues": [], "bindings": []}))) == 0


def test_nodes_and_connections_report_memory_alarms_and_flow_state(lab):
    with Management.for_broker(lab.sync) as api:
        node = api.nodes()[0]
        assert node["mem_used"] > 0 and node["mem_limit"] > node["mem_used"]
        assert node["mem_alarm"] is False and node["disk_free_alarm"] is False
        connections = api.connections()  # listed once the agent has collected their statistics
        assert isinstance(connections, list)
        assert {c.get("state") for c in connections} <= {
            "running",
            "flow",
            "blocking",
            "blocked",
            "starting",
            None,
        }
