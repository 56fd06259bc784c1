"""The pure parts of notebook 04's harness: each setting's row, round-by-round ratios,
the table, alternating blocks, the CPU meter and the plot; no broker."""

from __future__ import annotations

import time

import matplotlib
import pytest

from mpsoa_lab.experiments.sync_calls import (
    Block,
    CpuUse,
    alternate,
    format_table,
    measure_cpu,
    plot_ecdfs,
    round_ratios,
    setting_logs,
    setting_rows,
)
from mpsoa_lab.observe.latency import CallerRun

matplotlib.use("Agg")


def _entry(host: str, started: float, finished: float, task_id: str = "") -> dict:
    return {"hostname": host, "started": started, "finished": finished, "task_id": task_id}


def _block(callers: int, workers: int, rnd: int, samples: list[float], start: float, wall: float):
    return Block(callers, workers, rnd, CallerRun(samples, wall, start), CpuUse(0.5, 0.25))


def test_setting_logs_keep_only_the_tasks_inside_each_settings_blocks():
    blocks = [_block(1, 1, 0, [0.1], 10.0, 5.0), _block(1, 2, 0, [0.1], 20.0, 5.0)]
    log = [
        _entry("a", 11.0, 11.5, "in-1"),
        _entry("a", 17.0, 18.0, "between"),
        _entry("b", 21.0, 22.0, "in-2"),
    ]
    logs = setting_logs(blocks, {"mpledger": log})
    assert [e["task_id"] for e in logs[1, 1]["mpledger"]] == ["in-1"]
    assert [e["task_id"] for e in logs[1, 2]["mpledger"]] == ["in-2"]


def test_setting_rows_pool_the_blocks_and_compare_with_one_worker():
    blocks = [
        _block(1, 1, 0, [0.010, 0.010], 0.0, 1.0),
        _block(1, 2, 0, [0.005, 0.005], 10.0, 0.5),
        _block(1, 1, 1, [0.010, 0.010], 20.0, 1.0),
        _block(1, 2, 1, [0.005, 0.005], 30.0, 0.5),
    ]
    log = [
        _entry("a", 0.1, 0.102),
        _entry("a", 0.2, 0.202),  # worker a busy 4 ms of the setting's 2 s
        _entry("a", 10.1, 10.101),
        _entry("b", 10.1005, 10.1015),  # two at once, on two workers: 2 ms of 2 x 1 s
    ]
    rows = setting_rows(blocks, setting_logs(blocks, {"mpledger": log}))
    one, two = rows[1, 1], rows[1, 2]
    assert one["calls"] == 4 and one["p50_ms"] == pytest.approx(10.0)
    assert one["calls/s"] == pytest.approx(2.0) and two["calls/s"] == pytest.approx(4.0)
    assert two["p50/1w"] == pytest.approx(0.5) and two["calls/s/1w"] == pytest.approx(2.0)
    assert one["at once"] == 1 and two["at once"] == 2
    assert one["idle"] == pytest.approx(1 - 0.004 / 2.0)
    assert two["idle"] == pytest.approx(1 - 0.002 / 2.0)  # two workers: twice the time to fill
    assert one["in task"] == pytest.approx(0.004 / 0.04)
    assert (one["cpu"], one["caller cpu"]) == (0.5, 0.25)


def test_round_ratios_compare_blocks_of_the_same_round():
    blocks = [
        _block(4, 1, 0, [0.02] * 10, 0.0, 1.0),
        _block(4, 4, 0, [0.01] * 10, 1.0, 0.5),
        _block(4, 1, 1, [0.02] * 10, 2.0, 2.0),
        _block(4, 4, 1, [0.04] * 10, 4.0, 4.0),
    ]
    assert round_ratios(blocks, (4, 4), (4, 1)) == pytest.approx([2.0, 0.5])
    assert round_ratios(blocks, (4, 4), (4, 1), "p50") == pytest.approx([0.5, 2.0])
    with pytest.raises(ValueError, match="figure"):
        round_ratios(blocks, (4, 4), (4, 1), "p99")


def test_format_table_has_a_row_per_setting_and_a_legend():
    blocks = [_block(1, 1, 0, [0.01, 0.02], 0.0, 1.0), _block(4, 1, 0, [0.02, 0.03], 2.0, 1.0)]
    rows = setting_rows(blocks, setting_logs(blocks, {"mpledger": [_entry("a", 0.1, 0.2)]}))
    lines = format_table(rows).splitlines()
    assert lines[0].split()[:3] == ["callers", "workers", "calls"]
    assert lines[1].split()[:3] == ["1", "1", "2"] and lines[2].split()[:3] == ["4", "1", "2"]
    assert any(line.startswith("at once:") for line in lines)


def test_alternate_reverses_the_order_every_other_round():
    order = []

    def run(setting):
        order.append(setting)
        return [float(len(order))]

    samples, medians = alternate((10, 0), 3, run)
    assert order == [10, 0, 0, 10, 10, 0]
    assert samples == {10: [1.0, 4.0, 5.0], 0: [2.0, 3.0, 6.0]}
    assert medians == samples  # one sample per block: its own median


def _spin(seconds: float) -> int:
    # Busy for a wall-clock time, long enough for the kernel's 10 ms CPU ticks to count it even
    # when other processes take most of the cores (a fixed sum of squares sometimes got 0 ticks).
    end, n = time.perf_counter() + seconds, 0
    while time.perf_counter() < end:
        n += 1
    return n


def test_measure_cpu_returns_the_result_and_shares():
    result, cpu = measure_cpu(lambda: _spin(0.3))
    assert result > 0
    assert 0.0 <= cpu.machine <= 1.0 and cpu.here > 0.0


def test_plot_ecdfs_draws_one_panel_per_number_of_callers():
    blocks = [
        _block(c, n, 0, [0.001 * (i + 1) for i in range(50)], 0.0, 1.0)
        for c in (1, 4)
        for n in (1, 2)
    ]
    fig = plot_ecdfs(blocks, "title")
    assert [ax.get_title() for ax in fig.axes] == [
        "one caller, one call at a time",
        "4 callers at once",
    ]
    assert len(fig.axes[0].get_legend_handles_labels()[0]) == 2  # one curve per number of workers
