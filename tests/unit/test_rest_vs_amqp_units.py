"""Notebook 09's harness, its pure logic: wrk's output read back, wrk's command line kept on
loopback and bounded, the addresses in a HAProxy config."""

from __future__ import annotations

import pytest

from mpsoa_lab.experiments.edge_load import Request
from mpsoa_lab.experiments.rest_vs_amqp import (
    Side,
    SideRun,
    WrkRun,
    haproxy_addresses,
    parse_wrk,
    wrk_args,
)
from mpsoa_lab.plumbing.haproxy import BalancerOptions, Server, haproxy_config

WRK_OUTPUT = """Running 3s test @ http://127.0.0.1:23887/wallets/1/balance
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    72.59ms   11.04ms    1.01s    62.80%
    Req/Sec   109.47     14.15   140.00     76.67%
  Latency Distribution
     50%   71.58ms
     75%   81.35ms
     90%  870.16us
     99%    1.20s
  328 requests in 3.01s, 49.97KB read
  Non-2xx or 3xx responses: 4
  Socket errors: connect 0, read 2, write 0, timeout 1
Requests/sec:    108.95
Transfer/sec:     16.60KB
"""


def test_parse_wrk_reads_rate_percentiles_and_errors():
    run = parse_wrk(WRK_OUTPUT)
    assert run.requests_per_s == pytest.approx(108.95)
    assert run.requests == 328 and run.seconds == pytest.approx(3.01)
    assert run.p50_ms == pytest.approx(71.58)
    assert run.percentiles_ms[90] == pytest.approx(0.87016)  # microseconds
    assert run.p99_ms == pytest.approx(1200.0)  # seconds
    assert run.max_ms == pytest.approx(1010.0)
    assert run.non_2xx == 4 and run.socket_errors == {
        "connect": 0,
        "read": 2,
        "write": 0,
        "timeout": 1,
    }
    assert run.errors == 7


def test_parse_wrk_without_errors_or_distribution():
    clean = "\n".join(
        line for line in WRK_OUTPUT.splitlines() if "Non-2xx" not in line and "Socket" not in line
    )
    assert parse_wrk(clean).errors == 0
    without = "\n".join(
        line for line in WRK_OUTPUT.splitlines() if "%" not in line or "Stdev" in line
    )
    with pytest.raises(ValueError, match="--latency"):
        parse_wrk(without)
    with pytest.raises(ValueError, match="wrk's output"):
        parse_wrk("wrk: command not found")


def test_wrk_args_are_bounded_and_loopback_only():
    args = wrk_args("http://127.0.0.1:8000/health", connections=4, seconds=2)
    assert args[:4] == ["wrk", "-t1", "-c4", "-d2s"] and "--latency" in args
    assert args[-1] == "http://127.0.0.1:8000/health"
    with pytest.raises(ValueError, match="loopback"):
        wrk_args("http://example.com/", connections=4, seconds=2)
    with pytest.raises(ValueError):
        wrk_args("http://127.0.0.1:8000/", connections=4, seconds=300)
    with pytest.raises(ValueError):
        wrk_args("http://127.0.0.1:8000/", connections=0, seconds=2)


def test_haproxy_addresses_from_the_generated_config():
    text = haproxy_config(
        {"mpwallet": 20001},
        {"mpwallet": [Server("a", "127.0.0.1", 30001), Server("b", "127.0.0.1", 30002)]},
        "/nowhere/admin.sock",
        BalancerOptions(),
    )
    assert haproxy_addresses(text) == {
        "frontend mpwallet": ["127.0.0.1:20001"],
        "backend mpwallet": ["127.0.0.1:30001", "127.0.0.1:30002"],
    }


def test_side_run_row_pools_rounds():
    wrk = [
        WrkRun(100.0, {50: 10.0, 99: 30.0}, 300, 3.0),
        WrkRun(50.0, {50: 20.0, 99: 50.0}, 150, 3.0),
        WrkRun(80.0, {50: 15.0, 99: 40.0}, 240, 3.0),
    ]
    requests = [Request(i / 10, i / 10 + 0.01, 200) for i in range(99)] + [Request(10, 11, 0)]
    run = SideRun(Side("x", "http://127.0.0.1:1", "/", {}), wrk, 10.0, requests, {"edge": 0.5})
    row = run.row()
    assert run.wrk_rps == 80.0 and row["wrk_p50_ms"] == 15.0 and row["wrk_p99_ms"] == 40.0
    assert row["ok"] == 99 and row["requests"] == 100
    assert row["p50_ms"] == pytest.approx(10.0)
