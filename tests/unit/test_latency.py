"""Latency figures: percentiles as numpy defines them, summaries, ECDF points, overlap."""

from __future__ import annotations

import random
import threading
import time

import pytest

from mpsoa_lab.observe.latency import ecdf, max_overlap, percentile, run_callers, summarize


def test_percentile_interpolates_between_ranks():
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 99) == 5.0
    assert percentile([3.0, 1.0, 2.0], 0) == 1.0
    assert percentile([3.0, 1.0, 2.0], 100) == 3.0


def test_percentile_agrees_with_numpy():
    numpy = pytest.importorskip("numpy")
    rng = random.Random(4)
    samples = [rng.expovariate(200) for _ in range(301)]
    for q in (1, 50, 90, 99, 99.9):
        assert percentile(samples, q) == pytest.approx(float(numpy.percentile(samples, q)))


@pytest.mark.parametrize("samples,q", [([], 50), ([1.0], -1), ([1.0], 101)])
def test_percentile_refuses_what_has_no_answer(samples, q):
    with pytest.raises(ValueError):
        percentile(samples, q)


def test_summarize_reports_milliseconds():
    row = summarize([0.001 * i for i in range(1, 101)])
    assert row["calls"] == 100
    assert row["p50_ms"] == pytest.approx(50.5)
    assert row["p90_ms"] == pytest.approx(90.1)
    assert row["p99_ms"] == pytest.approx(99.01)
    assert set(summarize([0.1], percentiles=(75,))) == {"calls", "p75_ms"}


def test_ecdf_is_sorted_and_ends_at_one():
    xs, ys = ecdf([0.3, 0.1, 0.2, 0.2])
    assert xs == [0.1, 0.2, 0.2, 0.3]
    assert ys == [0.25, 0.5, 0.75, 1.0]


def test_max_overlap():
    assert max_overlap([]) == 0
    assert max_overlap([(0, 1), (1, 2), (2, 3)]) == 1  # back to back: one at a time
    assert max_overlap([(0, 10), (1, 2), (1.5, 3), (2.5, 4)]) == 3
    assert max_overlap([(0, 1), (0, 1), (0, 1)]) == 3
    with pytest.raises(ValueError):
        max_overlap([(2, 1)])


def test_run_callers_prepares_and_works_in_the_same_thread():
    threads = {}

    def prepare(i):
        return {"caller": i, "thread": threading.get_ident()}

    def work(i, state):
        threads[i] = (state["thread"], threading.get_ident())
        return [i] * (i + 1)

    run = run_callers(3, prepare, work)
    assert run.samples == [0, 1, 1, 2, 2, 2]
    assert run.ended_at == run.started_at + run.wall_s
    assert all(prepared == worked for prepared, worked in threads.values())
    assert len({worked for _, worked in threads.values()}) == 3  # one thread per caller
    assert run.wall_s > 0 and run.per_second == pytest.approx(6 / run.wall_s)


def test_run_callers_raises_a_callers_error():
    def prepare(i):
        if i == 1:
            raise KeyError("caller 1 could not prepare")
        return i

    with pytest.raises(KeyError):
        run_callers(2, prepare, lambda i, state: [state], timeout=10)
    with pytest.raises(ZeroDivisionError):
        run_callers(2, lambda i: i, lambda i, state: [1 / state])
    with pytest.raises(ValueError):
        run_callers(0, lambda i: i, lambda i, state: [])


def test_run_callers_clock_starts_between_prepare_and_work():
    prepared, began = [], []

    def prepare(i):
        time.sleep(0.01 * i)  # callers get ready at different times
        prepared.append(time.time())

    def work(i, state):
        began.append(time.time())
        return []

    run = run_callers(4, prepare, work)
    assert max(prepared) <= run.started_at <= min(began)


def test_rate_over_time_counts_events_in_bins_from_zero_with_empty_bins_kept():
    from mpsoa_lab.observe.latency import rate_over_time

    xs, ys = rate_over_time([100.1, 100.2, 101.7, 99.9], zero=100.0, step=0.5)
    assert xs == [-0.5, 0.0, 0.5, 1.0, 1.5] and ys == [2.0, 4.0, 0.0, 0.0, 2.0]
    assert rate_over_time([1.2], since=0.0) == ([0.0, 0.5, 1.0], [0.0, 0.0, 2.0])
    assert rate_over_time([], zero=0.0) == ([], [])
    with pytest.raises(ValueError):
        rate_over_time([1.0], step=0)
