"""Fault scenarios on real nodes: the lab is restored afterwards, and the counts are exact."""

from __future__ import annotations

import os

import pytest
from kombu import Connection, Exchange, Queue

import mpsoa_lab
from mpsoa_lab.experiments.faults import (
    freeze_main_process,
    negotiated_heartbeat,
    queued_task_ids,
    restored,
    tally,
    wait_started,
)
from mpsoa_lab.observe.tracing import TaskTrace, Tracer
from mpsoa_lab.plumbing.processes import managed_commands, managed_processes, process_kind
from mpsoa_lab.plumbing.util import ready_messages, wait_until


def _run(task_id: str, ok: bool = True) -> dict:
    return {"task_id": task_id, "succeeded": int(ok)}


def test_tally_counts_task_ids_not_totals():
    runs = [_run("a"), _run("b"), _run("b"), _run("c", ok=False), _run("stranger")]
    traces = [
        TaskTrace("a", deliveries=1, runs=1),
        TaskTrace("b", deliveries=2, runs=2),
        TaskTrace("c", deliveries=1, runs=1),
        TaskTrace("d", deliveries=1, runs=1),
    ]
    t = tally(["a", "b", "c", "d", "e"], runs, traces=traces, queued=["e", "other"])
    assert t.row() == {"published": 5, "delivered": 4, "processed": 2, "lost": 2, "duplicated": 1}
    assert (t.deliveries, t.started, t.in_queue) == (5, 5, 1)
    assert t.lost_ids == ("c", "d") and t.duplicated_ids == ("b",)


def test_restored_brings_a_stopped_node_back_after_an_error(tmp_path):
    """A broker restart with messages waiting, on a lab of the test's own: persistent messages
    in a durable queue survive it, transient ones do not; the node is up again afterwards even
    though the scenario raised."""
    settings = mpsoa_lab.plumbing.settings.load({**os.environ, "MPSOA_LAB_HOME": str(tmp_path)})
    lab = mpsoa_lab.up(settings)
    try:
        # another process's handle, made before the restart
        stale = mpsoa_lab.up(settings, hold=False)
        exchange = Exchange("faults", type="direct", durable=True)
        queues = {
            mode: Queue(f"faults.{mode}", exchange, routing_key=mode, durable=True)
            for mode in ("transient", "persistent")
        }
        with Connection(lab.sync.url) as conn:
            producer = conn.Producer()
            for mode, queue in queues.items():
                queue(conn.default_channel).declare()
                for i in range(5):
                    producer.publish(
                        {"i": i},
                        exchange=exchange,
                        routing_key=mode,
                        delivery_mode=mode,
                        declare=[queue],
                    )
        assert {m: ready_messages(lab.sync.url, q.name) for m, q in queues.items()} == {
            "transient": 5,
            "persistent": 5,
        }
        with pytest.raises(RuntimeError, match="half way"), restored(lab):
            lab.sync.node.stop()
            assert not lab.sync.node.is_running()
            raise RuntimeError("the scenario failed half way")
        assert lab.sync.node.is_running() and lab.async_.node.is_running()
        assert {m: ready_messages(lab.sync.url, q.name) for m, q in queues.items()} == {
            "transient": 0,
            "persistent": 5,
        }
        assert queued_task_ids(lab.sync, "faults.persistent") == [None] * 5  # not Celery messages
        # A handle made before the restart acts on the node that runs now, not on a second one.
        with restored(stale):
            pass
        assert stale.sync.node.process.pid == lab.sync.node.process.pid
        # Counted by command line: a node's short-lived epmd starter is an Erlang VM too.
        nodes = [p for p in managed_processes(tmp_path) if process_kind(p) == "RabbitMQ node"]
        assert len(nodes) == 2
    finally:
        lab.down()


def _workers(lab) -> set[int]:
    return {pid for pid, cmd in managed_commands(lab.home).items() if "worker" in cmd}


def test_a_killed_worker_loses_its_acked_task_and_restored_stops_the_rest(lab):
    from mpsoa_lab.design.services import mpledger

    lab.prepare_topology()
    mpledger.service.storage.reset()
    _, edge = mpsoa_lab.celery_apps_factory("PUBLISHER", lab.sync.url, lab.async_.url, "mpledger")
    before = _workers(lab)
    with restored(lab) as scenario:
        worker = scenario.start_worker("mpledger", "async", trace=True, prefetch_multiplier=1)
        with Tracer(lab) as tracer:
            ids = [
                edge.send_task(
                    "mpledger.async.reconcile", kwargs={"batch_id": f"t{i}", "seconds": 3}
                ).id
                for i in range(2)
            ]
        wait_started(lab, ids[:1])
        worker.kill()  # early ack: the running task was acknowledged when it started
        queued = queued_task_ids(lab.async_, "mpledger.async")
        scenario.start_worker("mpledger", "async", trace=True, prefetch_multiplier=1)
    # leaving restored() killed the second worker with the requeued task in hand (early ack)
    assert _workers(lab) == before
    t = tally(
        ids,
        mpledger.service.storage.executions(),
        traces=tracer.collect(),
        queued=queued_task_ids(lab.async_, "mpledger.async"),
    )
    assert queued == [ids[1]]  # the prefetched, unacknowledged one went back to the queue
    assert t.processed == 0 and t.duplicated == 0 and t.lost_ids[0] == ids[0]
    lab.prepare_topology()


def test_late_acks_run_a_task_again_when_its_ack_never_left(lab):
    """Deterministic duplicates: the task's effect is committed while the worker's main process
    is frozen (so no ack is sent), then the worker is killed and the message delivered again."""
    from mpsoa_lab.design.services import mpledger

    lab.prepare_topology()
    mpledger.service.storage.reset()
    _, edge = mpsoa_lab.celery_apps_factory("PUBLISHER", lab.sync.url, lab.async_.url, "mpledger")
    late = {"config": {"task_acks_late": True}, "prefetch_multiplier": 1, "trace": True}
    with restored(lab) as scenario:
        worker = scenario.start_worker("mpledger", "async", **late)
        with mpledger.service.storage.connect():  # the task blocks on the service's database
            task_id = edge.send_task(
                "mpledger.async.record_entry",
                kwargs={"entry_id": "e1", "account": "t", "amount_cents": 5},
            ).id
            wait_started(lab, [task_id])
            freeze_main_process(worker)
        wait_until(lambda: mpledger.service.storage.executions(), timeout=10)
        worker.kill()
        assert queued_task_ids(lab.async_, "mpledger.async") == [task_id]
        scenario.start_worker("mpledger", "async", **late)
        wait_until(lambda: len(mpledger.service.storage.executions()) == 2, timeout=10)
    t = tally([task_id], mpledger.service.storage.executions())
    assert t.row() == {"published": 1, "delivered": 1, "processed": 1, "lost": 0, "duplicated": 1}
    assert mpledger.service.storage.counts()["entries"] == 1  # idempotent: stored once


def test_negotiated_heartbeat_reads_the_workers_own_connection(lab):
    """The broker agrees the worker's heartbeat: 10 s when it asks for 10, the broker's 60 s
    when it asks for Celery's default of 120 (the smaller one wins)."""
    with restored(lab) as scenario:
        design = scenario.start_worker("mpledger", "async", config={"broker_heartbeat": 10})
        default = scenario.start_worker("mpwallet", "async")
        assert negotiated_heartbeat(lab.async_, design) == 10
        assert negotiated_heartbeat(lab.async_, default) == 60
