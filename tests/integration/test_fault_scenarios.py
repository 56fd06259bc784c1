"""Notebook 07's fault drivers on real nodes: what each counts, and that the lab is whole after."""

from __future__ import annotations

import mpsoa_lab
from mpsoa_lab.design import BACKEND as MENDED_RPC
from mpsoa_lab.experiments.fault_scenarios import (
    crash_while_publishing,
    freeze_and_watch,
    kill_mid_task,
    publish_unbound,
    sync_call,
    sync_calls_through_outage,
)
from mpsoa_lab.plumbing.util import ready_messages


def _edges(lab, service="mpledger"):
    return mpsoa_lab.celery_apps_factory("PUBLISHER", lab.sync.url, lab.async_.url, service)


def test_no_queue_bound_plain_drops_silently_and_confirms_with_mandatory_tell(lab):
    plain = publish_unbound(lab, {}, {}, count=3)
    assert (plain["dropped silently"], plain["publisher errors"]) == (3, 0)
    assert not plain["queue exists"]
    both = publish_unbound(lab, {"mandatory": True}, {"confirm_publish": True}, count=3)
    assert both["publisher errors"] == 1 and "NO_ROUTE" in both["first error"]
    assert both["dropped silently"] == 0 and both["kept in a queue"] == 2
    # py-amqp's warnings are collected, not printed: each names the method it ignored
    assert all("during closing channel" in w for w in both["amqp warnings"])
    assert ready_messages(lab.async_.url, "mpledger.async") == 0  # the queue is declared again


def test_a_sync_call_with_no_worker_times_out_on_its_own_timeout(lab):
    lab.prepare_topology()
    edge, _ = _edges(lab)
    (what, _), seconds = sync_call(edge, timeout=1)
    assert what == "TimeoutError" and 1 <= seconds < 3
    lab.prepare_topology()  # the unanswered call leaves its message in mpledger.sync


def test_a_worker_killed_mid_task_loses_it_with_early_acks_only(lab):
    lab.prepare_topology()
    _, edge = _edges(lab)
    early = kill_mid_task(lab, edge, {}, tasks=2, seconds=2)
    assert early.first not in early.requeued
    assert early.tally.lost == 1 and early.tally.processed == 1
    # the kill waited for the first task's ack: the worker held the second one, requeued
    assert len(early.requeued) == 1 and early.tally.deliveries == 3
    late = kill_mid_task(lab, edge, {"task_acks_late": True}, tasks=2, seconds=2)
    assert late.first in late.requeued
    assert late.tally.lost == 0 and late.tally.processed == 2 and late.tally.duplicated == 0


def test_a_crash_loses_no_confirmed_task_and_the_node_is_back(lab):
    run = crash_while_publishing(lab, {"confirm_publish": True}, crash_after=100)
    assert run.before_kill >= 100 and run.failure != "none"
    assert run.lost_before == 0 and run.kept_unsent <= 1
    assert lab.async_.node.is_running()


def test_the_mended_backend_fails_fast_while_down_and_answers_after(lab):
    moments, counts = sync_calls_through_outage(lab, MENDED_RPC, restart_delay=2)
    assert moments["in flight"][0][0] == "OperationalError"
    assert moments["while down"][0][0] == "OperationalError" and moments["while down"][1] < 2
    assert moments["after"][0][0] == "answer"
    assert counts.processed == 1 and counts.lost == 0
    assert lab.sync.node.is_running()


def test_a_frozen_worker_with_a_10_s_heartbeat_releases_its_prefetched_messages(lab):
    from mpsoa_lab.design.services import mpledger

    _, edge = _edges(lab)
    setups = {
        "10 s": (
            mpledger,
            edge,
            "mpledger.async.record_entry",
            lambda i: {"entry_id": f"hb-{i}", "account": "hb", "amount_cents": 1},
            {"broker_heartbeat": 10, "broker_heartbeat_checkrate": 2},
        )
    }
    run = freeze_and_watch(lab, setups, after=0.5, limit=45)
    assert run.negotiated == {"10 s": 10}
    assert run.settings == {"10 s": {"broker_heartbeat": 10, "broker_heartbeat_checkrate": 2}}
    assert run.released_at["10 s"] is not None and 20 <= run.released_at["10 s"] <= 35
    assert run.samples["10 s"][-1][1] == 5  # 4 prefetched back beside the 1 that waited
    lab.prepare_topology()
