"""The reporting side of notebook 07's fault drivers: pure logic, no broker."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from mpsoa_lab.experiments.fault_scenarios import (  # noqa: E402
    CrashRun,
    OnePage,
    format_tallies,
    plot_fault_costs,
)
from mpsoa_lab.experiments.faults import Tally  # noqa: E402


def test_a_crash_is_counted_against_the_tasks_published_before_it():
    run = CrashRun(
        sent=("a", "b", "c", "d", "e"), before_kill=3, kept=frozenset({"b", "x"}), failure="E"
    )
    assert run.published_before == ("a", "b", "c")
    assert (run.lost_before, run.sent_after, run.lost_after, run.kept_unsent) == (2, 2, 2, 1)
    t = run.tally()
    assert t.row() == {"published": 3, "delivered": 0, "processed": 0, "lost": 2, "duplicated": 0}
    assert t.in_queue == 1


def test_the_tally_table_has_one_row_per_scenario_in_the_order_asked():
    results = {
        "one": Tally(published=3, delivered=3, processed=2, lost=1, duplicated=0),
        "two": Tally(published=2, delivered=2, processed=2, lost=0, duplicated=2),
    }
    lines = format_tallies(results, ["two", "one"]).splitlines()
    assert lines[0].split() == ["scenario", *Tally.COLUMNS]
    assert lines[1].split() == ["two", "2", "2", "2", "0", "2"]
    assert lines[2].split() == ["one", "3", "3", "2", "1", "0"]


def test_one_page_keeps_the_order_rows_were_added_and_replaces_by_failure():
    page = OnePage()
    page.add("worker killed", "1 of 3 lost", "0 of 3 lost", "task_acks_late = True")
    page.add("broker crash", "5 of 5 lost", "0 of 5 lost", "confirm_publish")
    page.add("worker killed", "2 of 3 lost", "0 of 3 lost", "task_acks_late = True")
    lines = str(page).splitlines()
    assert lines[0].startswith("failure") and "2014 configuration" in lines[0]
    assert [line.split("  ")[0] for line in lines[1:]] == ["worker killed", "broker crash"]
    assert "2 of 3 lost" in lines[1] and not lines[1].endswith(" ")


def test_the_cost_chart_keeps_its_legend_off_the_bars():
    results = {
        "big": Tally(published=1000, delivered=0, processed=0, lost=1000, duplicated=0),
        "dup": Tally(published=2, delivered=2, processed=2, lost=0, duplicated=2),
    }
    ax = plot_fault_costs(results)
    fig = ax.figure
    fig.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    axes = ax.get_window_extent()
    assert legend.x0 >= axes.x1  # outside the axes, to their right
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["big", "dup"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "lost",
        "run twice, effect twice",
        "run twice, effect once (idempotent)",
        "sync calls never answered",
    ]


def test_a_crash_counts_what_was_sent_before_and_after_the_kill_apart():
    run = CrashRun(sent=("a", "b", "c", "d", "e"), before_kill=3, kept=frozenset({"a", "d", "z"}))
    assert (run.tally().published, run.tally().lost, run.tally().in_queue) == (3, 2, 1)
    after = run.tally_after()
    assert (after.published, after.lost, after.in_queue) == (2, 1, 1)
    assert run.kept_unsent == 1  # "z": in the queue, though its publish raised
