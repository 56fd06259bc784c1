"""Notebook 09's instance changes, their pure logic: what a run with a kill and an added
instance counts (failed, duplicated, back to normal, when the new one took its first call and
its share), answers per second over time, and a slow-instance run's percentiles and shares."""

from __future__ import annotations

import math

import pytest

from mpsoa_lab.experiments.edge_load import Request
from mpsoa_lab.experiments.instance_changes import (
    ChangeRun,
    SlowRun,
    answered_per_second,
    change_table,
    change_under_load,
    slow_table,
)


def execution(task_id: str, host: str, started: float) -> dict:
    return {"task_id": task_id, "hostname": host, "started": started}


def change_run(**extra) -> ChangeRun:
    requests = [
        Request(0.0, 1.0, 200),
        Request(1.0, 2.0, 200),
        Request(2.0, 5.0, 504),  # in hand at the kill, failed at the edge's timeout
        Request(2.5, 4.0, 200),  # answered late (over 1.5 s)
        Request(4.0, 5.0, 200),
        Request(4.5, 5.5, 200),
    ]
    executions = [
        execution("a", "w1", 0.0),
        execution("b", "w1", 1.0),
        execution("d", "w2", 3.0),
        execution("d", "w2", 3.1),  # ran twice
        execution("e", "w3", 4.0),
        execution("f", "w2", 4.5),
    ]
    fields = dict(added_at=3.5, added_ready=3.8, added_name="w3") | extra
    return ChangeRun("side", 2.0, requests, 2.0, executions, 1.5, **fields)


def test_a_change_run_counts_failed_duplicated_and_the_time_to_normal():
    run = change_run()
    assert run.failed == 1 and run.duplicated == 1
    assert run.failed_between(0.0, 2.0) == 0 and run.failed_between(2.0) == 1
    assert run.failed_between(run.added_at) == 0
    assert run.recovery_s == pytest.approx(3.0)  # the 504 came 3 s after the kill


def test_the_added_instance_first_call_and_share():
    run = change_run()
    assert run.first_work == 4.0
    assert run.added_share == pytest.approx(0.5)  # of e and f, started after it was up
    row = run.row()
    assert row["up_s"] == pytest.approx(0.3) and row["first_work_s"] == pytest.approx(0.5)
    assert row["failed_after_add"] == 0 and row["statuses"] == {200: 5, 504: 1}
    assert "50%" in change_table([run])


def test_an_added_instance_that_ran_nothing_has_no_first_call():
    run = change_run(added_name="w9")
    assert run.first_work is None and run.added_share == 0.0
    assert math.isnan(run.row()["first_work_s"])


def test_a_run_without_an_added_instance_reports_none():
    run = change_run(added_at=None, added_ready=None, added_name="")
    assert "up_s" not in run.row() and run.first_work is None
    assert change_table([run]).splitlines()[1].rstrip().endswith("|")


def test_answers_per_second_count_only_answers_by_when_they_came():
    requests = [Request(0, 0.1, 200), Request(0, 0.4, 200), Request(0, 0.6, 502)]
    requests += [Request(0, 1.2, 200)]
    assert answered_per_second(requests, 0.5) == ([0.0, 0.5, 1.0], [4.0, 0.0, 2.0])
    assert answered_per_second([Request(0, 1, 0)]) == ([], [])
    with pytest.raises(ValueError):
        answered_per_second(requests, 0)


@pytest.mark.parametrize(
    ("add_after", "add"), [(3.0, None), (None, lambda: "x"), (1.0, lambda: "x")]
)
def test_an_added_instance_needs_both_its_time_and_its_start_after_the_kill(add_after, add):
    with pytest.raises(ValueError):
        change_under_load(
            "bad",
            "http://127.0.0.1:9",
            rate=1,
            duration=1,
            kill_after=2.0,
            kill=lambda: None,
            slow_s=1.0,
            add_after=add_after,
            add=add,
        )


def test_a_slow_run_reads_percentiles_of_answers_and_the_slow_share():
    requests = [Request(i, i + 0.1, 200) for i in range(98)]
    requests += [Request(98, 100.0, 200), Request(99, 99.5, 504)]
    executions = [execution(str(i), "slow" if i % 4 == 0 else "fast", i) for i in range(100)]
    row = SlowRun("s", 10, requests, executions, "slow").row()
    assert row["failed"] == 1 and row["requests"] == 100
    assert row["p50_ms"] == pytest.approx(100, abs=1) and row["max_ms"] == pytest.approx(2000)
    assert row["slow_share"] == pytest.approx(0.25)
    assert "25%" in slow_table([SlowRun("s", 10, requests, executions, "slow")])
