"""Queue depth from the broker: a queue filled with no consumer, then drained by a real worker."""

from __future__ import annotations

import itertools
import time

import pytest

from mpsoa_lab.observe.monitor import QueueMonitor
from mpsoa_lab.running.workers import start_worker

#: Asserts nothing that another test's load could change: make test runs it beside others.
pytestmark = pytest.mark.beside_others

QUEUE = "mpledger.async"


def test_the_monitor_sees_a_queue_fill_and_a_worker_drain_it(lab):
    from mpsoa_lab.design.services import mpledger

    lab.prepare_topology()
    n = 40
    with QueueMonitor(lab.async_, [QUEUE], interval=0.25) as mon:
        for i in range(n):
            mpledger.async_app.send_task(
                "mpledger.async.reconcile", kwargs={"batch_id": f"m{i}", "seconds": 0.01}
            )
        full = mon.wait_for(lambda s: s["ready_now"] == n, timeout=5)
        assert full["consumers_now"] == 0
        # the management API reports the same count once its statistics catch up
        mon.wait_for(lambda s: s["ready"] == n and s["consumers"] == 0, timeout=15)
        worker = start_worker(lab, "mpledger", "async")
        try:
            empty = mon.wait_for(
                lambda s: s["ready_now"] == 0 and s["consumers_now"] == 1, timeout=20
            )
        finally:
            worker.stop()
    assert not mon.running and mon.errors == []
    series = mon.series(QUEUE)
    first_full = series["ready_now"].index(n)
    last = len(series["ready_now"]) - 1 - series["ready_now"][::-1].index(0)
    assert first_full < last
    # between full and empty the exact count only went down: nothing was added or put back
    draining = [v for v in series["ready_now"][first_full : last + 1] if v is not None]
    assert all(a >= b for a, b in itertools.pairwise(draining))
    assert mon.peak(QUEUE) == n and mon.peak(QUEUE, "ready") <= n
    assert empty["t"] > full["t"]
    assert series["t"] == sorted(series["t"])


def test_the_thread_stops_when_the_block_raises(lab):
    with pytest.raises(ZeroDivisionError):
        with QueueMonitor(lab.async_, [QUEUE], interval=0.05) as mon:
            mon.wait_for(lambda s: True, timeout=5)
            raise ZeroDivisionError("raised inside the block")
    assert not mon.running
    count = len(mon.samples)
    time.sleep(0.3)
    assert len(mon.samples) == count


def test_errors_are_kept_and_the_thread_keeps_polling(lab):
    mon = QueueMonitor(lab.async_, ["no.such.queue"], interval=0.05).start()
    try:
        deadline = time.monotonic() + 5
        while len(mon.samples) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert mon.running
    finally:
        mon.stop()
    assert len(mon.samples) >= 3
    assert all(s["ready"] is None and s["ready_now"] is None for s in mon.samples)
    sources = {e["source"] for e in mon.errors}
    assert sources == {"management API", "queue.declare"}
    assert any("EntityNotFound" in e["error"] for e in mon.errors)
    assert not mon.running
