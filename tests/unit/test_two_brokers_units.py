"""Notebook 06's pure helpers: calls by phase, the latency table, memory growth, alarm phases."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from mpsoa_lab.experiments.memory_alarm import alarm_phases
from mpsoa_lab.experiments.two_brokers import (
    PHASES,
    FloodRun,
    broker_rows,
    entry_kwargs,
    latency_table,
    mem_growth,
    phase_calls,
)


def _flood_run(setup: str, scale: float = 1.0) -> FloodRun:
    # baseline [0, 10), publishing [10, 20), draining [20, 30); one call starting each second
    calls = [(float(t), t + 0.001 * scale * (1 + t // 10), True) for t in range(30)]
    calls.append((5.5, 8.0, False))  # a failed call is not a latency sample
    sample = {"mem_used": 100 * 2**20, "mem_limit": 2**30, "mem_alarm": False, "disk_alarm": False}
    sample["flow"] = 0
    return FloodRun(
        setup=setup, flood=100, calls=calls, start=0.0, flood_start=10.0, flood_published=20.0,
        flood_end=30.0, series={}, peak=80, processed=60, processed_in_window=55, left=40,
        executions={"n": 61, "distinct_ids": 60}, cpu_s={"sync": 1.25, "async": None},
        broker={
            "sync": [sample, {"error": "Timeout"}, {**sample, "flow": 1, "mem_used": 300 * 2**20}],
            "async": [{**sample, "flow": 0}],
        },
    )  # fmt: skip


def test_phase_calls_takes_answered_calls_by_their_start():
    run = _flood_run("split")
    assert len(phase_calls(run, "baseline")) == 10  # the failed call at 5.5 s is left out
    assert phase_calls(run, "publishing") == pytest.approx([0.002] * 10)
    assert phase_calls(run, "draining") == pytest.approx([0.003] * 10)
    assert len(phase_calls(run, "flood")) == 20


def test_latency_table_and_the_shared_over_split_ratio():
    table, ratio = latency_table({"split": _flood_run("split"), "shared": _flood_run("shared", 2)})
    assert set(table) == {(s, p) for s in ("split", "shared") for p in PHASES}
    assert table["split", "baseline"]["calls"] == 10
    assert table["split", "publishing"]["p50_ms"] == pytest.approx(2.0)
    assert ratio["draining", 50] == pytest.approx(2.0) and ratio["flood", 99] == pytest.approx(2.0)


def test_counts_and_memory_growth():
    run = _flood_run("split")
    assert run.lost == 0 and run.duplicated == 1
    assert mem_growth(run.broker["sync"]) == 200 * 2**20  # errors skipped, peak over first


def test_broker_rows_keep_the_columns_the_external_brokers_test_reads():
    sync, async_ = broker_rows(_flood_run("split"))
    assert sync.split() == ["split", "sync", "sync", "300", "0", "1", "1.2", "200"]
    assert async_.split() == ["split", "async", "async", "100", "0", "0", "-", "0"]


def test_alarm_phases_use_the_window_the_plot_shades():
    calls = [
        (0.0, 0.5, True),  # before the flood
        (1.0, 2.5, True),  # ended before the alarm was reported
        (2.8, 4.8, False),  # timed out inside the window
        (3.5, 9.0, True),  # blocked through the window, answered after it: longest
        (9.5, 9.6, True),  # after the alarm was seen cleared
    ]
    run = SimpleNamespace(
        calls=calls, flood_start=1.0, alarm_at=3.0, reset_at=8.0, cleared_at=9.2, window=(3.0, 8.0)
    )
    phases = alarm_phases(run)
    assert phases["before"] == calls[:1]
    assert phases["during"] == [calls[2]]
    assert phases["after"] == calls[4:]
    assert phases["longest"] == pytest.approx(5.5)


def test_entry_kwargs_are_unique_per_setup_and_index():
    assert entry_kwargs("split", 7) == {
        "entry_id": " split-000007",
        "account": "split",
        "amount_cents": 100,
    }
    assert entry_kwargs("shared", 7)["entry_id"] != entry_kwargs("split", 7)["entry_id"]
