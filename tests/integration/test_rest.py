"""The REST instances, running as lab components (uvicorn), over real HTTP.

Every endpoint and error status of each service, the execution log and storage they share with
the Celery workers (the same task functions, no second copy), an instance that runs with no
broker and no lab at all, the slow-instance and concurrency knobs, and nothing left behind.
"""

from __future__ import annotations

import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
import pytest

from mpsoa_lab.plumbing.component import Program, http_probe
from mpsoa_lab.plumbing.ports import PortAllocator
from mpsoa_lab.running import (
    rest_instances,
    rest_service,
    rest_url,
    start_rest,
    start_worker,
    stop_rest,
)

#: Asserts nothing that another test's load could change: make test runs it beside others.
pytestmark = pytest.mark.beside_others


@pytest.fixture(scope="module")
def instances(lab):
    """One instance of each service."""
    started = {s: start_rest(lab, s)[0] for s in ("mplogin", "mpwallet", "mpledger")}
    try:
        yield started
    finally:
        stop_rest(lab, started.values())


@pytest.fixture
def http(instances):
    """A client per service, on that service's instance."""
    clients = {
        service: httpx.Client(base_url=rest_url(instance), timeout=30, trust_env=False)
        for service, instance in instances.items()
    }
    yield clients
    for client in clients.values():
        client.close()


def _name() -> str:
    return f"u-{uuid.uuid4().hex[:8]}"


def test_health_names_the_service_and_the_instance(instances, http):
    for service, instance in instances.items():
        resp = http[service].get("/health")
        assert resp.status_code == 200
        assert resp.json()["service"] == service == rest_service(instance)
        assert resp.json()["instance"] == instance.name == resp.headers["x-instance"]
        assert resp.json()["pid"] == instance.process.pid


def test_mplogin_register_and_log_in(http):
    login, username = http["mplogin"], _name()
    user = login.post("/users", json={"username": username, "password": "pw"})
    assert user.status_code == 201 and user.json()["username"] == username
    taken = login.post("/users", json={"username": username, "password": "x"})
    assert taken.status_code == 409 and "already registered" in taken.json()["detail"]
    session = login.post("/sessions", json={"username": username, "password": "pw"})
    assert session.status_code == 201 and session.json()["token"].startswith("v1.")
    assert login.post("/sessions", json={"username": username, "password": "no"}).status_code == 401
    assert login.post("/users", json={"username": username}).status_code == 422


def test_mpwallet_open_deposit_and_balance(http):
    wallet, user_id = http["mpwallet"], int(time.time() * 1000) % 10**9
    assert wallet.get(f"/wallets/{user_id}/balance").status_code == 404
    assert wallet.post(f"/wallets/{user_id}/deposits", json={"amount_cents": 1}).status_code == 404
    assert wallet.put(f"/wallets/{user_id}").json() == {"user_id": user_id, "balance_cents": 0}
    deposit = wallet.post(f"/wallets/{user_id}/deposits", json={"amount_cents": 250})
    assert deposit.status_code == 200 and deposit.json()["balance_cents"] == 250
    assert wallet.get(f"/wallets/{user_id}/balance").json()["balance_cents"] == 250
    for bad in ({"amount_cents": "250"}, {"amount_cents": 0}, {}):
        resp = wallet.post(f"/wallets/{user_id}/deposits", json=bad)
        assert resp.status_code == 422 and "Traceback" not in resp.text
    assert wallet.get("/wallets/abc/balance").status_code == 422


def test_mpledger_entries_are_idempotent(http):
    ledger, account = http["mpledger"], _name()
    entry = {"entry_id": account, "account": account, "amount_cents": 7}
    assert ledger.post("/ledger/entries", json=entry).status_code == 201
    again = ledger.post("/ledger/entries", json=entry)
    assert again.status_code == 200 and again.json() == {"entry_id": account, "first": False}
    assert ledger.get(f"/ledger/accounts/{account}/balance").json()["balance_cents"] == 7
    count = ledger.get("/ledger/entries/count", params={"account": account})
    assert count.json() == {"account": account, "entries": 1}


def test_unknown_paths_and_big_bodies(http):
    assert (
        http["mpwallet"].post("/users", json={"username": "a", "password": "b"}).status_code == 404
    )
    assert http["mplogin"].delete("/users").status_code == 405
    big = {"username": "x" * 20_000, "password": "pw"}
    assert http["mplogin"].post("/users", json=big).status_code == 413


def test_rest_and_celery_share_the_code_the_storage_and_the_execution_log(lab, instances, http):
    """A wallet opened over REST is read by a Celery worker, and both runs are in one log."""
    from mpsoa_lab.design.services import mpwallet

    lab.prepare_topology()
    user_id = 10**9 + int(time.time()) % 10**6
    opened = http["mpwallet"].put(
        f"/wallets/{user_id}", headers={"X-Request-ID": f"rest-{user_id}"}
    )
    assert opened.status_code == 200
    http["mpwallet"].post(f"/wallets/{user_id}/deposits", json={"amount_cents": 40})
    with start_worker(lab, "mpwallet", "sync"):
        result = mpwallet.sync_app.send_task(
            "mpwallet.sync.get_balance", kwargs={"user_id": user_id}
        )
        assert result.get(timeout=30) == 40
    runs = {run["task_id"]: run for run in mpwallet.service.storage.executions()}
    assert runs[f"rest-{user_id}"]["hostname"] == instances["mpwallet"].name
    assert runs[f"rest-{user_id}"]["pid"] == instances["mpwallet"].process.pid
    assert runs[result.id]["task_name"] == "mpwallet.sync.get_balance"


def test_an_instance_needs_no_broker_and_no_lab(tmp_path):
    """A lab home where no lab runs and no broker URL: the instance serves all the same."""
    # The program's environment has no broker URL (a component's never has) and no lab.
    env = {
        "MPSOA_LAB_HOME": str(tmp_path),
        "MPSOA_SPACE": "default",
        "MPSOA_REST_SERVICE": "mpledger",
    }
    args = [sys.executable, "-m", "uvicorn", "--factory", "mpsoa_lab.design.rest:instance_app"]
    args += ["--host", "127.0.0.1", "--port", "{http}"]
    program = Program(
        "rest-alone", tmp_path / "logs", args, ports=["http"], env=env,
        probe=http_probe("http://127.0.0.1:{http}/health"), mark=str(tmp_path),
    )  # fmt: skip
    try:
        program.start(timeout=60)
        with httpx.Client(
            base_url=f"http://127.0.0.1:{program.ports['http']}", trust_env=False
        ) as h:
            entry = {"entry_id": "e1", "account": "a", "amount_cents": 3}
            assert h.post("/ledger/entries", json=entry).status_code == 201
            assert h.get("/ledger/accounts/a/balance").json()["balance_cents"] == 3
        assert (tmp_path / "data" / "mpledger.sqlite3").exists()
        assert not (tmp_path / "lab.json").exists()
    finally:
        program.stop(10, keep_ports=False)


def test_a_slow_instance_and_a_bounded_one(lab):
    """delay_ms: every call takes at least that long; concurrency=1: calls take turns."""
    slow, bounded = start_rest(lab, "mpledger", 2, delay_ms=[200, 100], concurrency=1)
    try:
        with httpx.Client(base_url=rest_url(slow), timeout=30, trust_env=False) as h:
            started = time.perf_counter()
            assert h.get("/ledger/accounts/a/balance").status_code == 200
            assert time.perf_counter() - started >= 0.2
            assert h.get("/health").json()["delay_ms"] == 200

        def call(_: int) -> int:
            with httpx.Client(base_url=rest_url(bounded), timeout=30, trust_env=False) as h:
                return h.get("/ledger/accounts/a/balance").status_code

        started = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            assert list(pool.map(call, range(4))) == [200] * 4
        assert time.perf_counter() - started >= 0.4  # four turns of 100 ms, never overlapping
    finally:
        stop_rest(lab, [slow, bounded])


def test_instances_are_listed_and_leave_nothing_when_stopped(lab):
    instances = start_rest(lab, "mplogin", 2)
    pids = [i.process.pid for i in instances]
    ports = [i.ports["http"] for i in instances]
    listed = {i.name for i in rest_instances(lab, "mplogin")}
    assert {i.name for i in instances} <= listed
    assert not {i.name for i in instances} & {i.name for i in rest_instances(lab, "mpwallet")}
    stop_rest(lab, instances)
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not {i.name for i in instances} & {i.name for i in rest_instances(lab)}
    assert not set(ports) & set(PortAllocator().reserved())
