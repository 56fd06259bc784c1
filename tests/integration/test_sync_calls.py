"""Notebook 04's harness on real nodes: workers that take turns consuming, blocks run in turns,
a thin edge's view of a service's error, and the broker's own counters."""

from __future__ import annotations

import pytest
from kombu import Connection

import mpsoa_lab
from mpsoa_lab.experiments.sync_calls import (
    consume_with,
    consumers,
    counted_by_broker,
    sync_workers,
    take_turns,
    thin_edge_error,
    worker_settings,
)
from mpsoa_lab.observe.events import SpaceEvents
from mpsoa_lab.observe.latency import run_callers
from mpsoa_lab.plumbing.errors import EventExchangeMissing
from mpsoa_lab.plumbing.processes import managed_commands


def _workers(lab) -> set[int]:
    return {pid for pid, cmd in managed_commands(lab.home).items() if "worker" in cmd}


def test_settings_take_turns_with_exactly_n_consumers(lab):
    lab.prepare_topology()
    before = _workers(lab)
    seen = []

    def run_block(callers, tag):
        seen.append((tag, consumers(lab.sync.url, "mpledger.sync")))

        def work(i, app):
            return [app.send_task("mpledger.sync.balance", kwargs={"account": tag}).get(timeout=10)]

        def edge(i):  # an app of the caller's own: its rpc:// backend belongs to its thread
            return mpsoa_lab.celery_apps_factory(
                "PUBLISHER", lab.sync.url, lab.async_.url, "mpledger"
            )[0]

        return run_callers(callers, edge, work)

    with sync_workers(lab, ["mpledger"], 2) as workers:
        assert worker_settings(workers[0]) == {"pool": "prefork", "concurrency": 1, "prefetch": 4}
        consume_with(workers, 1, lab.sync.url)
        assert consumers(lab.sync.url, "mpledger.sync") == 1
        blocks = take_turns(workers, lab.sync.url, (1, 2), (1,), 2, run_block)
    assert _workers(lab) == before  # stopped when the block ended
    # another order each round; each block ran with its own number of consumers
    assert [(b.workers, b.round) for b in blocks] == [(1, 0), (2, 0), (2, 1), (1, 1)]
    assert [n for _tag, n in seen] == [1, 2, 2, 1]
    assert len({tag for tag, _n in seen}) == 4
    assert all(b.run.samples == [0] and 0 <= b.cpu.machine <= 1 for b in blocks)


def test_a_thin_edge_gets_a_look_alike_exception(lab):
    from mpsoa_lab.design.services import mplogin

    lab.prepare_topology()
    mplogin.service.storage.reset()
    with sync_workers(lab, ["mplogin"], 1):
        mplogin.sync_app.send_task(
            "mplogin.sync.register", kwargs={"username": "ada", "password": "pw"}
        ).get(timeout=10)
        thin = thin_edge_error(lab, "mplogin.sync.register", {"username": "ada", "password": "x"})
        fine = thin_edge_error(
            lab, "mplogin.sync.authenticate", {"username": "ada", "password": "pw"}
        )
    assert thin == {
        "type": "celery.exceptions.UsernameTaken",
        "message": "username 'ada' is already registered",
        "is_value_error": False,
        "service_imported": False,
    }
    assert fine is None  # a call that succeeds: nothing caught


def test_counted_reads_what_the_broker_counted_for_each_run(lab):
    def connect(n):
        for _ in range(n):
            with Connection(lab.sync.url) as conn:
                conn.default_channel.queue_declare(
                    "mpsoa.counted.probe", durable=True, auto_delete=False
                )
        with Connection(lab.sync.url) as conn:
            conn.default_channel.queue_delete("mpsoa.counted.probe")

    found = counted_by_broker(lab.sync, {"one": lambda: connect(1), "three": lambda: connect(3)})
    # one queue created per run (deleted at its end), declared once per connection
    assert found["one"] == {
        "connection.created": 2,
        "channel.created": 2,
        "queue.created": 1,
        "queue.declare-ok": 1,
    }
    assert found["three"] == {
        "connection.created": 4,
        "channel.created": 4,
        "queue.created": 1,
        "queue.declare-ok": 3,
    }


def test_counts_are_the_space_s_own_while_another_space_works(lab):
    """What another vhost does on the same node at the same time is not in the counts."""
    import threading

    other = lab.sync.node_url  # the node's default vhost: another space than this process's
    stop = threading.Event()

    def churn():
        while not stop.is_set():
            with Connection(other) as conn:
                conn.default_channel.queue_declare("", exclusive=True)

    def mine():
        for _ in range(5):
            with Connection(lab.sync.url) as conn:
                conn.default_channel.queue_declare("", exclusive=True)

    beside = threading.Thread(target=churn, daemon=True)
    beside.start()
    try:
        found = counted_by_broker(lab.sync, {"mine": mine})
    finally:
        stop.set()
        beside.join(timeout=10)
    assert found["mine"] == {
        "connection.created": 5,
        "channel.created": 5,
        "queue.created": 5,
        "queue.declare-ok": 5,
    }


def test_a_broker_without_the_event_exchange_is_told_how_to_enable_it(lab):
    class NoEvents:
        """A broker whose events would be read in the space's own vhost: the plugin declares
        its exchange in the node's default vhost only, so there it is missing, as on a broker
        without the plugin."""

        url = node_url = lab.sync.url
        vhost = lab.sync.vhost

    with pytest.raises(
        EventExchangeMissing, match="rabbitmq-plugins enable rabbitmq_event_exchange"
    ):
        with SpaceEvents(NoEvents()):
            pass
