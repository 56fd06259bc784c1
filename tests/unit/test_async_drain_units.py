"""Reading notebook 05's runs back: rotations, bursts, long-before-short runs, tables."""

from __future__ import annotations

import json

import pytest

from mpsoa_lab.experiments.async_drain import (
    BurstRun,
    MixedRun,
    body_bytes,
    drain_table,
    mixed_table,
    rotation_kept,
    rotation_names,
    rotation_prefix,
)
from mpsoa_lab.experiments.tracing_cost import overhead_report
from mpsoa_lab.observe.tracing import TaskTrace


def test_rotation_names_follow_the_first_messages_not_the_start_order():
    order = ["w2", "w1", "w4", "w3", "w2", "w1"]
    assert rotation_names(order) == {"w2": "A", "w1": "B", "w4": "C", "w3": "D"}
    assert rotation_names([None, "x", "x"]) == {"x": "A"}


def test_a_strict_rotation_is_kept_throughout():
    order = ["a", "b", "c"] * 4
    assert rotation_prefix(order, 3) == 12
    assert rotation_kept(order, 3) == 9  # every message after the first 3


def test_a_rotation_that_breaks_is_counted_up_to_the_break():
    order = ["a", "b", "a", "b", "b", "a", "b", "a"]
    assert rotation_prefix(order, 2) == 4  # the 5th went to b, where a's turn was
    # kept: indices 2, 3 (before the break) and 6, 7 (b a b a again, 2 places apart)
    assert rotation_kept(order, 2) == 4


def test_no_rotation_when_the_first_messages_share_a_worker():
    assert rotation_prefix(["a", "a", "b", "b"], 2) == 0
    assert rotation_prefix(["a"], 2) == 0
    assert rotation_prefix([None, "a", None, "a"], 2) == 0


def _burst(workers=("w1", "w2"), n=6) -> BurstRun:
    runs = [
        {"task_id": f"t{i}", "hostname": workers[i % len(workers)], "finished": 100.0 + 0.5 * i}
        for i in range(n)
    ]
    traces = [TaskTrace(f"t{i}", worker=workers[i % len(workers)]) for i in range(n)]
    series = {
        "t": [0.0, 0.25, 0.5, 0.75],
        "ready_now": [None, 4, 2, 0],
        "ready": [0, 0, 5, 1],
        "unacked": [0, 0, 1, 0],
    }
    return BurstRun(list(workers), 100.0, 0.01, runs, traces, series)


def test_a_burst_is_read_from_its_log_rows_traces_and_samples():
    b = _burst()
    assert (b.published, b.executions, b.distinct) == (6, 6, 6)
    assert b.shares == {"w1": 3, "w2": 3}
    assert b.drain_seconds == pytest.approx(2.5)  # last finish 102.5, first publish 100
    assert b.publish_rate == pytest.approx(600)
    assert b.drain_rate == pytest.approx(6 / 2.5)
    assert b.ms_per_task == pytest.approx(1000 * 2.5 * 2 / 6)
    assert (b.peak_ready, b.last_ready) == (4, 0)
    assert b.api_at_peak() == {"ready_now": 4, "ready": 0, "unacked": 0}
    assert b.order() == ["w1", "w2"] * 3


def test_a_task_run_twice_is_one_distinct_task():
    b = _burst()
    b.runs.append(dict(b.runs[0]))
    assert (b.executions, b.distinct) == (7, 6)


def test_the_drain_table_has_a_row_per_burst_with_the_speed_up_over_the_first():
    one, two = _burst(("w1",)), _burst()
    two.runs = [dict(r, finished=100.0 + 0.25 * i) for i, r in enumerate(two.runs)]
    table = drain_table({1: one, 2: two}, 0.02).splitlines()
    assert table[0].split()[:2] == ["workers", "publish"]
    assert table[1].split()[0] == "1" and table[1].split()[4] == "1.00"
    assert table[2].split()[0] == "2" and table[2].split()[4] == "2.00"
    assert "20 ms of it asleep" in table[-1]


def _trace(task_id, worker, published, received, started, finished) -> TaskTrace:
    return TaskTrace(
        task_id,
        worker=worker,
        published=published,
        received=received,
        started=started,
        finished=finished,
        state="SUCCESS",
        deliveries=1,
        runs=1,
    )


def test_a_mixed_run_finds_the_short_tasks_held_behind_the_long_one():
    traces = [
        _trace("long", "A", 0.0, 0.01, 0.01, 1.51),
        _trace("s0", "B", 0.0, 0.01, 0.01, 0.11),
        _trace("s1", "A", 0.0, 0.02, 1.51, 1.61),  # received while the long task ran: held
        _trace("s2", "B", 0.0, 0.02, 0.11, 0.21),
        _trace("s3", "A", 0.0, 1.52, 1.61, 1.71),  # received after it finished: not held
    ]
    m = MixedRun(traces, ["B", "A"], qos={"A": 4, "B": 4})
    assert m.long.task_id == "long" and [t.task_id for t in m.shorts] == ["s0", "s1", "s2", "s3"]
    assert m.workers == ["A", "B"]  # the long task's worker first
    assert [t.task_id for t in m.held] == ["s1"]
    assert m.total == pytest.approx(1.71)
    assert m.short_latency == pytest.approx([0.11, 1.61, 0.21, 1.71])
    assert m.per_worker == {"A": 3, "B": 2}
    row = mixed_table({"prefetch 4": m}).splitlines()[1]
    assert row.startswith("prefetch 4") and row.split()[2:] == [
        "4",
        "3",
        "+",
        "2",
        "1",
        "0.91",
        "1.71",
        "1.71",
    ]


def test_body_bytes_measures_the_json_body_celery_sends():
    from celery import Celery

    app = Celery("probe", broker="memory://", set_as_current=False)
    small = body_bytes(app, "svc.async.job", n=1)
    large = body_bytes(app, "svc.async.job", n=1, note="x" * 100)
    assert large - small == len(json.dumps({"note": "x" * 100})) - len("{}") + len(", ")


def _overhead(noise=0.98):
    mode = {"p50_ms": 5.0, "p90_ms": 8.0, "p99_ms": 10.0}
    return {
        "off": mode,
        "on": dict(mode, p50_ms=5.1),
        "paired_ratio": 1.02,
        "noise_ratio": noise,
        "noise_spread": (0.8, 1.2) if noise is not None else None,
        "record_cost_us": 6.0,
        "conditions": {
            "task": "mpledger.sync.entry_count",
            "calls_per_mode": 300,
            "block": 10,
            "workers": "1 at a time",
            "delivery_mode": "transient (sync)",
        },
    }


def test_the_overhead_report_builds_every_figure_from_the_measurement():
    lines = overhead_report(_overhead()).splitlines()
    assert lines[2].split() == ["tracing", "off", "5.00", "8.00", "10.00"]
    assert "1.020 (+2.0 %, +100 µs per call)" in lines[4]
    assert "0.980 (-2.0 %)" in lines[4] and "0.80 to 1.20" in lines[4]
    assert lines[5].endswith("4 on a caller's path: 24 µs")
    assert "no noise floor" in overhead_report(_overhead(noise=None))
