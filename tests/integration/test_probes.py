"""Notebook 03's broker harness (mpsoa_lab.legacy.probes) on the lab's sync broker."""

from __future__ import annotations

import pytest
from kombu import Connection, Exchange, Producer, Queue

from mpsoa_lab.legacy.probes import (
    exchanges_of,
    messages_per_queue,
    queue_details,
    scratch_vhost,
    sync_queues_consumed,
    wait_for_messages,
)
from mpsoa_lab.plumbing.management import Management

#: Asserts nothing that another test's load could change: make test runs it beside others.
pytestmark = pytest.mark.beside_others


@pytest.fixture()
def mgmt(lab):
    api = Management.for_broker(lab.sync)
    yield api
    api.close()


def test_scratch_vhost_counts_exactly_and_is_deleted_also_after_an_error(lab, mgmt):
    vhost = "test-probes-scratch"
    with pytest.raises(RuntimeError), scratch_vhost(mgmt, lab.sync.url, vhost) as url:
        assert url.endswith("/" + vhost)
        exchange = Exchange("probes", type="topic", durable=True)
        with Connection(url) as conn:
            queue = Queue("probes.q", exchange, "probes.#", durable=True)(conn.default_channel)
            queue.declare()
            producer = Producer(conn.default_channel, exchange=exchange)
            for i in range(3):
                producer.publish({"i": i}, routing_key="probes.x")
        assert wait_for_messages(mgmt, vhost, url, 3) == {"probes.q": 3}
        assert messages_per_queue(mgmt, vhost, url) == {"probes.q": 3}
        assert exchanges_of(mgmt, vhost) == {"probes": "topic"}
        assert queue_details(mgmt, vhost, "probes.q", "policy")["type"] == "classic"
        raise RuntimeError("a cell that fails half way")
    assert vhost not in mgmt.vhosts()


def test_sync_daemons_consume_the_three_sync_queues():
    assert sync_queues_consumed() == {"mplogin.sync", "mpwallet.sync", "mpledger.sync"}
