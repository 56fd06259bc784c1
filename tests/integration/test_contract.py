"""The edge keeps its contract: Schemathesis, run against the running edge with a fixed seed,
finds no server error, no undeclared status, no body off its schema and no invalid data
accepted, with a user's session and with an operator's, and with each way of checking them."""

from __future__ import annotations

import httpx
import pytest

from mpsoa_lab.experiments.contract import run_schemathesis
from mpsoa_lab.experiments.edge_load import make_operator, sign_up
from mpsoa_lab.running import edge_url, start_edge, start_worker, stop_edge


@pytest.fixture(scope="module")
def workers(lab):
    lab.prepare_topology()
    started = [
        start_worker(lab, service, kind)
        for service in ("mplogin", "mpwallet", "mpledger")
        for kind in ("sync", "async")
    ]
    try:
        yield
    finally:
        for worker in started:
            worker.stop()


@pytest.mark.parametrize("check", ["token", "mplogin"])
def test_schemathesis_finds_nothing_the_openapi_does_not_say(lab, workers, check):
    edge = start_edge(lab, timeout=3, sessions=check)
    try:
        url = edge_url(edge)
        with httpx.Client(base_url=url, timeout=30, trust_env=False) as http:
            user, operator = sign_up(http), make_operator(http)
        # the user's run leaves log out to the operator's, so that its session stays open
        runs = [
            run_schemathesis(
                url, user.headers, max_examples=25, exclude_paths=["/sessions/current"]
            ),
            run_schemathesis(url, operator.headers, max_examples=25),
        ]
    finally:
        stop_edge(lab, edge)
    for run in runs:
        assert run.kept, (run.line(), run.failures[:3], run.errors[:3])
        assert run.operations >= 10 and run.generated > 200, run.line()
