"""A service loaded without a broker runs its tasks' functions in-process (what a REST instance
does), with the worker's execution log; without ``without_broker()`` it still needs a broker.

Each case runs in a fresh interpreter: loading a service module is once per process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

BROKERLESS = """
import json
from mpsoa_lab.design.services import _service
_service.without_broker()
from mpsoa_lab.design.services import mpledger, mpwallet
first = mpledger.service.execute(
    "mpledger.async.record_entry", {"entry_id": "e1", "account": "a", "amount_cents": 5},
    task_id="req-1", hostname="rest-1")
again = mpledger.service.execute(
    "mpledger.async.record_entry", {"entry_id": "e1", "account": "a", "amount_cents": 5})
try:
    mpwallet.service.execute("mpwallet.sync.get_balance", {"user_id": 1}, task_id="req-2")
    missing = None
except Exception as exc:
    missing = type(exc).__name__
try:
    mpwallet.service.execute("mpwallet.sync.nothing", {})
    unknown = None
except Exception as exc:
    unknown = type(exc).__name__
slow = mpledger.service.execute(
    "mpledger.sync.entry_count", {}, task_id="req-3", delay=0.2)
runs = mpledger.service.storage.executions() + mpwallet.service.storage.executions()
waited = [r["finished"] - r["started"] for r in runs if r["task_id"] == "req-3"]
print(json.dumps({
    "waited": waited,
    "first": first, "again": again, "missing": missing, "unknown": unknown,
    "runs": [[r["task_id"], r["task_name"], r["hostname"], r["succeeded"]] for r in runs],
    "broker": mpledger.sync_app.conf.broker_url,
}))
"""


def run(code: str, home) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MPSOA_")}
    env["MPSOA_LAB_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )


def test_a_service_without_a_broker_runs_its_tasks_in_process(tmp_path):
    done = run(BROKERLESS, tmp_path)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["first"], out["again"]) == (True, False)  # idempotent, as through Celery
    assert out["missing"] == "WalletNotFound" and out["unknown"] == "RoutingError"
    assert out["runs"] == [
        ["req-1", "mpledger.async.record_entry", "rest-1", 1],
        [None, "mpledger.async.record_entry", None, 1],
        ["req-3", "mpledger.sync.entry_count", None, 1],
        ["req-2", "mpwallet.sync.get_balance", None, 0],
    ]
    assert len(out["waited"]) == 1 and out["waited"][0] >= 0.2  # the delay is inside the run
    assert ".invalid" in out["broker"]  # an app that tried to connect would reach no broker
    assert (tmp_path / "data" / "mpledger.sqlite3").exists()


def test_without_it_a_service_still_needs_a_broker(tmp_path):
    done = run("from mpsoa_lab.design.services import mpledger", tmp_path)
    assert done.returncode != 0 and "BrokerNotConfigured" in done.stderr
