"""Notebook 09's instance changes on real processes: a REST instance and a Celery worker each
killed under load and replaced, counted and timed; one slow REST instance under HAProxy's
round robin and leastconn; and nothing left behind by any of them."""

from __future__ import annotations

import os

import httpx
import pytest

from mpsoa_lab.experiments import instance_changes
from mpsoa_lab.running import haproxies, rest_instances, rest_url, start_rest, stop_rest


@pytest.fixture
def wallet(lab):
    """Wallet 1 of this space, opened through a REST instance (the load reads it)."""
    (opener,) = start_rest(lab, "mpwallet", 1)
    try:
        httpx.put(rest_url(opener) + "/wallets/1", trust_env=False).raise_for_status()
    finally:
        stop_rest(lab, [opener])


def nothing_of_mine_left(lab) -> None:
    mine = f"-{os.getpid()}-"
    assert not [i for i in rest_instances(lab, "mpwallet") if mine in i.name]
    assert not [h for h in haproxies(lab) if mine in h.name]
    assert not [w for w in lab.components("worker") if mine in w.name]


def test_a_rest_instance_killed_then_one_added_through_the_runtime_api(lab, wallet):
    run = instance_changes.rest_change(
        lab, rate=10, duration=4.0, kill_after=1.0, add_after=2.0, delay_ms=300, timeout=3.0
    )
    assert len(run.requests) == 40 and run.killed_at == pytest.approx(1.0, abs=0.3)
    assert all(r.status in (200, 502, 503) for r in run.requests)
    assert all(r.status == 200 for r in run.requests if r.due > 2.0)  # the other took over
    assert run.duplicated == 0 and run.recovery_s < 3.0
    assert run.added_name.startswith("rest-mpwallet-") and run.added_ready > run.added_at
    assert run.first_work is not None and run.first_work >= run.added_ready - 0.1
    assert run.added_share > 0.2 and run.failed_between(run.added_at) == 0
    nothing_of_mine_left(lab)


def test_a_worker_killed_with_late_acks_loses_nothing_and_a_new_one_takes_work(lab, wallet):
    run = instance_changes.amqp_change(
        lab,
        acks_late=True,
        rate=10,
        duration=4.0,
        kill_after=1.0,
        add_after=2.0,
        delay_ms=300,
        timeout=3.0,
        threads=10,
    )
    assert len(run.requests) == 40 and run.failed == 0  # redelivered to the other worker
    assert run.added_name.startswith("mpwallet-sync-") and run.first_work is not None
    assert run.first_work > run.added_at and run.added_share > 0.2
    nothing_of_mine_left(lab)


def test_one_slow_instance_gets_half_under_round_robin_and_less_under_leastconn(lab, wallet):
    load = dict(delays_ms=(50, 250), concurrency=2, rate=10, duration=2.0, timeout=5.0)
    rr = instance_changes.rest_slow(lab, balance="roundrobin", **load).row()
    least = instance_changes.rest_slow(lab, balance="leastconn", **load).row()
    assert rr["requests"] == least["requests"] == 20 and rr["failed"] == least["failed"] == 0
    assert 0.4 <= rr["slow_share"] <= 0.6  # every other request
    assert least["slow_share"] < rr["slow_share"]
    nothing_of_mine_left(lab)
