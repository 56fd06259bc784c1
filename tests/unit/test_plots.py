"""The lab's pictures cannot mislead: failures are never drawn as latencies, ratios are compared
on linear axes from zero, harmless re-runs and unanswered calls are told apart from losses."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from mpsoa_lab.experiments.edge_load import Request, plot_answered  # noqa: E402
from mpsoa_lab.experiments.fault_scenarios import plot_fault_costs  # noqa: E402
from mpsoa_lab.experiments.faults import Tally  # noqa: E402
from mpsoa_lab.experiments.rest_vs_amqp import plot_throughput  # noqa: E402


@pytest.fixture
def ax():
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


def test_requests_given_up_are_counted_not_drawn(ax):
    requests = [Request(0.0, 0.010 * (i + 1), 200) for i in range(6)]
    requests += [Request(0.0, 7.0, 0)] * 4  # given up at a 7 s deadline
    plot_answered(ax, requests, "event loop")
    line = ax.get_lines()[0]
    assert max(line.get_xdata()) == pytest.approx(60.0)  # the slowest answered, not 7000 ms
    assert max(line.get_ydata()) == pytest.approx(0.6)  # 6 of 10 answered: stops below 1.0
    assert "4 of 10 failed or given up" in line.get_label()


def test_a_side_with_every_request_answered_reaches_one(ax):
    plot_answered(ax, [Request(0.0, 0.01, 200), Request(0.0, 0.02, 201)], "shared")
    line = ax.get_lines()[0]
    assert max(line.get_ydata()) == 1.0 and line.get_label() == "shared"


class _Run:
    def __init__(self, rps: float):
        self.wrk_rps = rps


def test_throughput_bars_start_at_zero_on_a_linear_axis_with_their_ratio(ax):
    plot_throughput({"AMQP": _Run(200.0), "REST + HAProxy": _Run(244.0)}, ax)
    assert ax.get_xscale() == "linear" and ax.get_xlim()[0] == 0
    labels = [t.get_text() for t in ax.texts]
    assert labels == ["200/s", "244/s (1.22x AMQP)"]


def _tally(lost=0, duplicated=0):
    return Tally(published=2, delivered=2, processed=2, lost=lost, duplicated=duplicated)


def test_fault_chart_tells_harm_from_harmless_reruns_and_draws_unanswered_calls(ax):
    results = {
        "ledger, late acks": _tally(duplicated=2),
        "wallet, late acks": _tally(duplicated=2),
        "rpc:// after an outage": _tally(),
        "all well": _tally(),
    }
    plot_fault_costs(
        results, harmless=["ledger, late acks"], no_reply={"rpc:// after an outage": 2}, ax=ax
    )
    drawn = {
        (round(p.get_y() + p.get_height() / 2), p.get_facecolor(), p.get_hatch())
        for p in ax.patches
        if p.get_width() > 0
    }
    rows = {row for row, *_ in drawn}
    assert rows == {0, 1, 2}  # "all well" has no bar ...
    assert any("nothing lost" in t.get_text() for t in ax.texts)  # ... and says so
    hatch = {row: h for row, _, h in drawn}
    assert hatch[0] == "///" and not hatch[1]  # the idempotent re-runs look different


def test_fault_chart_refuses_a_scenario_it_does_not_have(ax):
    with pytest.raises(ValueError, match="no such scenario"):
        plot_fault_costs({"a": _tally()}, harmless=["b"], ax=ax)
