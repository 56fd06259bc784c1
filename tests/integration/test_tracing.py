"""Per-message tracing on real workers: every event recorded, in order, by the process that saw it."""

from __future__ import annotations

import itertools
import json
import os
import uuid

from mpsoa_lab.experiments import tracing_cost
from mpsoa_lab.observe import tracing
from mpsoa_lab.observe.tracing import Tracer, collect, trace_dir
from mpsoa_lab.running.workers import start_worker


def test_async_tasks_are_traced_in_order_by_the_worker_that_ran_them(lab):
    from mpsoa_lab.design.services import mpledger

    lab.prepare_topology()
    worker = start_worker(lab, "mpledger", "async", trace=True)
    try:
        with Tracer(lab) as tracer:
            sent = [
                mpledger.async_app.send_task(
                    "mpledger.async.reconcile", kwargs={"batch_id": f"t{i}", "seconds": 0.01}
                ).id
                for i in range(8)
            ]
        traces = tracer.collect(wait=15)
    finally:
        worker.stop()
    assert [t.task_id for t in traces] == sent  # publish order, one trace per message
    for t in traces:
        assert t.task == "mpledger.async.reconcile"
        assert t.published <= t.received <= t.started <= t.finished
        assert t.worker == worker.hostname
        assert (t.deliveries, t.runs, t.state) == (1, 1, "SUCCESS")
        assert t.returned is None  # nobody waits for an async task's result
        assert t.run >= 0.01
    # the pool process that ran each task is the one the service's own execution log names
    log = {e["task_id"]: e for e in mpledger.service.storage.executions("mpledger.async.reconcile")}
    for t in traces:
        assert log[t.task_id]["hostname"] == t.worker
        assert log[t.task_id]["pid"] == t.pid
    # a single-process worker runs them one after the other
    assert all(a.finished <= b.started for a, b in itertools.pairwise(traces))


def test_sync_call_trace_ends_when_the_result_reaches_the_caller(lab):
    from mpsoa_lab.design.services import mpledger

    lab.prepare_topology()
    worker = start_worker(lab, "mpledger", "sync", trace=True)
    try:
        with Tracer(lab) as tracer:
            values = [
                tracer.get(mpledger.sync_app.send_task("mpledger.sync.entry_count"), timeout=10)
                for _ in range(3)
            ]
        traces = tracer.collect(wait=10)
    finally:
        worker.stop()
    assert all(isinstance(v, int) for v in values)
    assert len(traces) == 3
    for t in traces:
        assert t.published <= t.received <= t.started <= t.finished
        # task_postrun fires after the result was sent: the caller may have it before "finished"
        assert t.started <= t.returned and t.round_trip > 0
        assert t.worker == worker.hostname


def test_the_publish_time_travels_in_the_message(lab):
    """A worker's ``received`` record carries the header, so a publisher without a trace file
    of its own still gets its messages' publish times."""
    from mpsoa_lab.design.services import mpledger

    lab.prepare_topology()
    worker = start_worker(lab, "mpledger", "async", trace=True)
    try:
        with Tracer(lab) as tracer:
            task_id = mpledger.async_app.send_task(
                "mpledger.async.record_entry",
                kwargs={"entry_id": uuid.uuid4().hex, "account": "trace", "amount_cents": 1},
            ).id
        publisher_file = tracer.writer.directory / f"publisher-{os.getpid()}.jsonl"
        [trace] = tracer.collect(wait=10)
    finally:
        worker.stop()
    received = [
        r
        for r in tracing.read_records(trace_dir(lab))
        if r["id"] == task_id and r["e"] == "received"
    ]
    assert len(received) == 1 and received[0]["published"] == trace.published
    # without the publisher's own records, collect() falls back on the header
    kept = publisher_file.read_text().splitlines()
    publisher_file.write_text("".join(line + "\n" for line in kept if task_id not in line))
    [again] = collect(lab, task_ids=[task_id])
    assert again.published == trace.published


def test_an_untraced_worker_records_nothing(lab):
    from mpsoa_lab.design.services import mpledger

    lab.prepare_topology()
    worker = start_worker(lab, "mpledger", "sync")
    try:
        with Tracer(lab) as tracer:
            tracer.get(mpledger.sync_app.send_task("mpledger.sync.entry_count"), timeout=10)
        [trace] = tracer.collect()
    finally:
        worker.stop()
    assert trace.published is not None and trace.returned is not None
    assert (trace.received, trace.started, trace.finished, trace.worker) == (None, None, None, None)
    assert not [r for r in tracing.read_records(trace_dir(lab)) if r.get("host") == worker.hostname]


def test_collect_keeps_the_last_delivery_and_skips_a_torn_line(tmp_path):
    """A message redelivered after its first worker died: one trace, two deliveries."""
    rows = [
        {"e": "published", "id": "a", "task": "x.async.y", "host": None, "pid": 1, "t": 1.0},
        {"e": "received", "id": "a", "task": "x.async.y", "host": "w1@h", "pid": 2, "t": 1.1},
        {"e": "started", "id": "a", "task": "x.async.y", "host": "w1@h", "pid": 3, "t": 1.2},
        {"e": "received", "id": "a", "task": "x.async.y", "host": "w2@h", "pid": 4, "t": 5.0},
        {"e": "started", "id": "a", "task": "x.async.y", "host": "w2@h", "pid": 5, "t": 5.1},
        {
            "e": "finished",
            "id": "a",
            "task": "x.async.y",
            "host": "w2@h",
            "pid": 5,
            "t": 5.3,
            "state": "SUCCESS",
        },
    ]
    (tmp_path / "mixed-1.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows) + '{"e": "star'
    )
    [trace] = collect(tmp_path)
    assert (trace.deliveries, trace.runs, trace.worker, trace.pid) == (2, 2, "w2@h", 5)
    assert (trace.received, trace.started, trace.finished) == (5.0, 5.1, 5.3)
    assert abs(trace.queue_wait - 4.0) < 1e-9 and abs(trace.run - 0.2) < 1e-9


def test_measure_overhead_compares_both_modes(lab):
    lab.prepare_topology()
    result = tracing_cost.measure_overhead(lab, calls=30, block=10, warmup=5)
    assert result["traced_calls"] == result["complete_traces"] == 30
    assert result["misrouted"] == 0  # no untraced call reached the traced worker
    assert len(result["timings_ms"]["off"]) == len(result["timings_ms"]["on"]) == 30
    assert result["p50_ratio"] > 0 and result["record_cost_us"] > 0
    assert result["conditions"]["calls_per_mode"] == 30
