"""Notebook 06's harness on real nodes: a small flood counted exactly, and a memory alarm."""

from __future__ import annotations

from kombu import Connection

from mpsoa_lab.design import declare, platform_queues
from mpsoa_lab.experiments.memory_alarm import alarm_phases, node_memory, run_alarm
from mpsoa_lab.experiments.two_brokers import reset_storage, run_flood
from mpsoa_lab.plumbing.processes import managed_commands


def _workers(lab) -> set[int]:
    return {pid for pid, cmd in managed_commands(lab.home).items() if "worker" in cmd}


def _shared_queues(lab, declared: bool) -> None:
    """The async queues on the sync broker too (the shared set-up), or gone again."""
    with Connection(lab.sync.url) as conn:
        if declared:
            declare(conn, platform_queues(kinds=("async",)))
        else:
            for queue in platform_queues(kinds=("async",)):
                conn.default_channel.queue_delete(queue.name)


def test_a_small_flood_is_counted_exactly_and_its_workers_are_gone(lab):
    lab.prepare_topology()
    reset_storage()
    before = _workers(lab)
    run = run_flood(lab, "split", lab.sync, lab.async_, flood=600, baseline_s=0.5, window_s=1.0)
    # the warm stop finished the tasks in hand and gave the prefetched ones back: none lost
    assert (run.lost, run.duplicated) == (0, 0), run
    assert run.processed + run.left == 600 and run.processed > 0
    assert run.calls and all(ok for *_, ok in run.calls)
    assert run.flood_start < run.flood_published <= run.flood_end
    assert set(run.broker) == {"sync", "async"} and all(run.broker.values())
    assert run.cpu_s["async"] is not None and run.cpu_s["async"] > 0
    assert _workers(lab) == before


def test_a_memory_alarm_on_a_shared_broker_stops_the_sync_calls_and_is_undone(lab):
    lab.prepare_topology()
    _shared_queues(lab, declared=True)
    reset_storage()
    try:
        run = run_alarm(
            lab, "shared", lab.sync, lab.sync, flood=1500, at_backlog=300, hold_s=2.0,
            call_timeout=1.0, baseline_s=1.0,
        )  # fmt: skip
    finally:
        _shared_queues(lab, declared=False)
    phases = alarm_phases(run)
    assert run.sync_node_alarm and run.in_queue == 1500
    assert run.lowered_at <= run.alarm_at < run.reset_at <= run.cleared_at
    assert not any(ok for *_, ok in phases["during"])  # nothing answered while it held
    assert any(ok for *_, ok in phases["after"])  # and calls came back afterwards
    _, limit, alarm = node_memory(lab.sync)
    assert limit == run.limit and not alarm  # the node's own limit is back
