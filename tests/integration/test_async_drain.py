"""Notebook 05's harness on real workers: groups that consume and always stop, a burst read
back from the log, the traces and the queue's samples, and a long task before short ones."""

from __future__ import annotations

import time

import pytest

from mpsoa_lab.experiments.async_drain import (
    BurstRun,
    MixedRun,
    consumer_count,
    wait_processed,
    worker_group,
)
from mpsoa_lab.observe.monitor import QueueMonitor
from mpsoa_lab.observe.tracing import Tracer

QUEUE = "mpledger.async"


@pytest.fixture
def mpledger(lab):
    from mpsoa_lab.design.services import mpledger

    lab.prepare_topology()  # the design's queues exist and are empty
    mpledger.service.storage.reset()
    return mpledger


def test_a_worker_group_consumes_reports_its_qos_and_stops_on_error(lab, mpledger):
    with pytest.raises(RuntimeError, match="half way"):
        with worker_group(lab, "mpledger", "async", 2, queue=QUEUE, prefetch_multiplier=1) as g:
            assert consumer_count(lab.async_.url, QUEUE) == 2
            assert sorted(g.qos) == sorted(g.hostnames)
            assert {q["prefetch_count"] for q in g.qos.values()} == {1}
            assert {q["concurrency"] for q in g.qos.values()} == {1}
            raise RuntimeError("the experiment failed half way")
    assert not any(w.is_running() for w in g.workers)
    assert consumer_count(lab.async_.url, QUEUE) == 0


def test_a_burst_is_counted_from_the_log_the_traces_and_the_queue(lab, mpledger):
    burst, task = 24, "mpledger.async.reconcile"
    with QueueMonitor(lab.async_, [QUEUE], interval=0.1) as monitor:
        with worker_group(lab, "mpledger", "async", 2, queue=QUEUE, trace=True) as g:
            with Tracer(lab) as tracer:
                first, t0 = time.time(), time.perf_counter()
                for i in range(burst):
                    mpledger.async_app.send_task(
                        task, kwargs={"batch_id": f"b{i}", "seconds": 0.02}
                    )
                publish_seconds = time.perf_counter() - t0
            done = wait_processed(mpledger.service.storage, task, burst, desc="test burst")
            time.sleep(0.3)  # a sample of the empty queue
            storage = mpledger.service.storage
            run = BurstRun.read(g.workers, tracer, storage, monitor, first, publish_seconds)
    assert run.published == run.executions == run.distinct == burst
    assert set(run.shares) == set(g.hostnames) and sum(run.shares.values()) == burst
    assert first < run.first_publish + run.drain_seconds <= done
    assert run.peak_ready >= 1 and run.last_ready == 0
    assert len(set(run.order()[:2])) == 2  # the first two messages: one to each worker
    assert run.publish_rate > 0 and run.ms_per_task >= 20


def test_late_acks_and_prefetch_1_hold_no_short_task_behind_a_long_one(lab, mpledger):
    task = "mpledger.async.reconcile"
    options = {"config": {"task_acks_late": True}, "prefetch_multiplier": 1, "trace": True}
    with worker_group(lab, "mpledger", "async", 2, queue=QUEUE, **options) as g:
        with Tracer(lab) as tracer:
            mpledger.async_app.send_task(task, kwargs={"batch_id": "long", "seconds": 1.0})
            for i in range(4):
                mpledger.async_app.send_task(task, kwargs={"batch_id": f"s{i}", "seconds": 0.05})
        run = MixedRun(
            tracer.collect(wait=15),
            g.hostnames,
            {h: q["prefetch_count"] for h, q in g.qos.items()},
        )
    assert set(run.qos.values()) == {1}
    assert run.long.task_id == tracer.task_ids[0] and len(run.shorts) == 4
    assert run.held == []  # the busy worker took nothing while its long task ran
    assert run.per_worker[run.workers[1]] >= 4  # the other worker ran every short task
    assert max(run.short_latency) < run.long.run
