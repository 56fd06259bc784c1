"""Notebook 09's drivers on real processes: wrk against a REST instance, a process paused and
always resumed, the naive closed loop and the open loop seeing a stall differently, each
side's configuration read from the running processes."""

from __future__ import annotations

import psutil
import pytest

from mpsoa_lab.experiments import edge_load, rest_vs_amqp
from mpsoa_lab.observe import percentile
from mpsoa_lab.running import (
    rest_url,
    start_haproxy,
    start_rest,
    stop_haproxy,
    stop_rest,
)

PATH = "/ledger/accounts/nb09/balance"


@pytest.fixture
def instance(lab):
    (one,) = start_rest(lab, "mpledger", 1)
    try:
        yield one
    finally:
        stop_rest(lab, [one])


def test_wrk_runs_bounded_and_is_read_back(instance):
    run = rest_vs_amqp.run_wrk(rest_url(instance) + PATH, connections=2, seconds=1)
    assert run.requests > 10 and run.requests_per_s > 10
    assert run.errors == 0 and 0 < run.p50_ms <= run.p99_ms <= run.max_ms


def test_a_paused_process_is_resumed_and_the_stall_is_seen_by_the_open_loop_only(instance):
    pid = instance.process.pid
    with rest_vs_amqp.paused(pid, after=0.5, seconds=0.6):
        naive = rest_vs_amqp.closed_loop_for(rest_url(instance), PATH, 2, 2.0)
    assert psutil.Process(pid).status() != psutil.STATUS_STOPPED
    assert max(naive) >= 0.5 and percentile(naive, 90) < 0.3
    with rest_vs_amqp.paused(pid, after=0.5, seconds=0.6):
        opened = edge_load.open_loop(rest_url(instance), PATH, 20, 2.0)
    assert (
        percentile([r.latency for r in opened], 90) >= 0.2
    )  # every request due in the stall waited
    with pytest.raises(RuntimeError), rest_vs_amqp.paused(pid, after=0.1, seconds=5):
        raise RuntimeError("the block fails")  # ... and the process is resumed at once
    assert psutil.Process(pid).status() != psutil.STATUS_STOPPED


def test_what_haproxy_and_an_instance_are_configured_with(lab, instance):
    balancer = start_haproxy(lab, {"mpledger": [instance]})
    try:
        found = rest_vs_amqp.haproxy_addresses(balancer.config_text())
        assert found["backend mpledger"] == [f"127.0.0.1:{instance.ports['http']}"]
        assert rest_vs_amqp.listening_ports(instance.process.pid) == [instance.ports["http"]]
        assert rest_vs_amqp.process_env(instance.process.pid)["MPSOA_REST_SERVICE"] == "mpledger"
    finally:
        stop_haproxy(lab, balancer)
