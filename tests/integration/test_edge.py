"""The HTTP edge, running as a lab component, over real HTTP against the design's workers.

One test per status code the edge promises (README, "The edge"), a happy path for a sync and
an async endpoint, and no process left behind once it is stopped.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
import pytest

from mpsoa_lab.design.sessions import authorization, issue, key_from_env
from mpsoa_lab.experiments.edge_load import make_operator, sign_up
from mpsoa_lab.plumbing.management import Management
from mpsoa_lab.plumbing.ports import PortAllocator
from mpsoa_lab.plumbing.util import wait_until
from mpsoa_lab.running import edge_url, edges, start_edge, start_worker, stop_edge

#: Asserts nothing that another test's load could change: make test runs it beside others.
pytestmark = pytest.mark.beside_others


@pytest.fixture(scope="module")
def platform(lab):
    """An edge (sync calls wait 3 s) with the sync workers of mplogin and mpwallet."""
    lab.prepare_topology()
    workers = [start_worker(lab, service, "sync") for service in ("mplogin", "mpwallet")]
    edge = start_edge(lab, timeout=3)
    try:
        with httpx.Client(base_url=edge_url(edge), timeout=30, trust_env=False) as http:
            yield http
    finally:
        stop_edge(lab, edge)
        for worker in workers:
            worker.stop()


def _name() -> str:
    return f"u-{uuid.uuid4().hex[:8]}"


def signed(user_id: int, role: str = "user") -> dict[str, str]:
    """A session of ``user_id`` signed with the lab's key, as mplogin issues one: what an edge
    that checks tokens itself lets through (no mplogin worker needed)."""
    return authorization(issue(key_from_env(), user_id, role, 86_400)[0])


#: Valid for a day (see signed): made at collection, long before the tests that use it run.
OPERATOR = signed(1, "operator")


def test_sync_endpoints_register_log_in_and_deposit(platform):
    username = _name()
    user = platform.post("/users", json={"username": username, "password": "pw"})
    assert user.status_code == 201 and user.json()["username"] == username
    assert platform.post("/users", json={"username": username, "password": "x"}).status_code == 409
    session = platform.post("/sessions", json={"username": username, "password": "pw"})
    assert session.status_code == 201 and session.json()["token"].startswith("v1.")
    wrong = platform.post("/sessions", json={"username": username, "password": "nope"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith("Bearer")
    user_id, mine = user.json()["user_id"], authorization(session.json()["token"])
    assert platform.put(f"/wallets/{user_id}", headers=mine).json()["balance_cents"] == 0
    deposit = platform.post(
        f"/wallets/{user_id}/deposits", json={"amount_cents": 250}, headers=mine
    )
    assert deposit.status_code == 200 and deposit.json()["balance_cents"] == 250
    balance = platform.get(f"/wallets/{user_id}/balance", headers=mine)
    assert balance.json()["balance_cents"] == 250


def test_echo_answers_through_a_worker_and_the_service_logs_nothing(platform):
    from mpsoa_lab.design.services import mpwallet

    member = sign_up(platform, wallet=False)  # a user with no wallet
    me, mine = member.user_id, member.headers
    before = len(mpwallet.service.storage.executions())
    assert platform.get(f"/wallets/{me}/balance", headers=mine).status_code == 404  # logged
    answer = platform.get(f"/wallets/{me}/echo", headers=mine)
    assert answer.status_code == 200 and answer.json() == {"user_id": me, "echoed": me}
    assert len(mpwallet.service.storage.executions()) == before + 1  # the balance, not the echo


def test_concurrent_sync_calls_each_get_their_own_reply(platform):
    """20 deposits of 1 cent from 8 threads: each reply is its own, so the balances the
    callers see are exactly 1..20 (a reply given to the wrong caller repeats or skips one)."""
    member = sign_up(platform)

    def deposit(_: int) -> int:
        path = f"/wallets/{member.user_id}/deposits"
        resp = platform.post(path, json={"amount_cents": 1}, headers=member.headers)
        assert resp.status_code == 200, resp.text
        return resp.json()["balance_cents"]

    with ThreadPoolExecutor(8) as pool:
        seen = sorted(pool.map(deposit, range(20)))
    assert seen == list(range(1, 21))


def test_async_endpoint_answers_202_and_the_task_runs(lab, platform):
    account = _name()
    with start_worker(lab, "mpledger", "async"), start_worker(lab, "mpledger", "sync"):
        operator = make_operator(platform).headers
        resp = platform.post(
            "/ledger/entries",
            json={"entry_id": account, "account": account, "amount_cents": 7},
            headers=operator,
        )
        assert resp.status_code == 202 and resp.json()["task_id"]
        path = f"/ledger/accounts/{account}/balance"
        wait_until(lambda: platform.get(path, headers=operator).json()["balance_cents"] == 7, 30)


def test_invalid_json_and_wrong_types_are_422_naming_the_field(platform):
    bad = platform.post("/users", content=b"{", headers={"content-type": "application/json"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["type"] == "json_invalid"
    wrong = platform.post("/wallets/1/deposits", json={"amount_cents": "a lot"}, headers=signed(1))
    assert wrong.status_code == 422 and wrong.json()["detail"][0]["loc"] == ["body", "amount_cents"]


def test_a_body_over_the_limit_is_413_declared_or_chunked(platform):
    big = b'{"username": "' + b"x" * 20_000 + b'", "password": "pw"}'
    assert platform.post("/users", content=big).status_code == 413
    chunked = platform.post(
        "/users",
        content=iter([big[:10_000], big[10_000:]]),
        headers={"content-type": "application/json"},
    )
    assert chunked.status_code == 413
    assert platform.get("/health").status_code == 200  # the edge still serves


def test_unknown_resource_and_missing_wallet_are_404(platform):
    assert platform.get("/accounts").status_code == 404
    member = sign_up(platform, wallet=False)
    missing = platform.get(f"/wallets/{member.user_id}/balance", headers=member.headers)
    assert missing.status_code == 404 and "no wallet" in missing.json()["detail"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_broker_that_is_down_is_503_with_retry_after(lab):
    down = f"amqp://guest:guest@127.0.0.1:{_closed_port()}//"
    edge = start_edge(lab, broker_urls=(down, down))
    try:
        with httpx.Client(base_url=edge_url(edge), timeout=30, trust_env=False) as http:
            for path, body in (
                ("/users", {"username": "a", "password": "b"}),
                ("/ledger/entries", {"entry_id": "e", "account": "a", "amount_cents": 1}),
            ):
                resp = http.post(path, json=body, headers=OPERATOR)
                assert resp.status_code == 503, resp.text
                assert int(resp.headers["retry-after"]) > 0
                assert "Traceback" not in resp.text
    finally:
        stop_edge(lab, edge)


def balance(http: httpx.Client, account: str) -> int:
    resp = http.get(f"/ledger/accounts/{account}/balance", headers=OPERATOR)
    assert resp.status_code == 200, resp.text
    return resp.json()["balance_cents"]


def test_a_sync_timeout_is_504_and_its_late_reply_answers_no_other_request(lab):
    """No mpledger sync worker: the call times out. Then one starts: the expired request is
    never run, and each following request gets its own account's balance."""
    from mpsoa_lab.design.services import mpledger

    lab.prepare_topology()
    edge = start_edge(lab, timeout=2)
    try:
        with httpx.Client(base_url=edge_url(edge), timeout=30, trust_env=False) as http:
            late = http.get("/ledger/accounts/late/balance", headers=OPERATOR)
            assert late.status_code == 504 and late.json()["task_id"]
            accounts = {_name(): cents for cents in (1, 2, 3)}
            with start_worker(lab, "mpledger", "async"), start_worker(lab, "mpledger", "sync"):
                for account, cents in accounts.items():
                    body = {"entry_id": account, "account": account, "amount_cents": cents}
                    answer = http.post("/ledger/entries", json=body, headers=OPERATOR)
                    assert answer.status_code == 202
                wait_until(lambda: all(balance(http, a) == c for a, c in accounts.items()), 30)
                for _ in range(3):  # every answer is its own request's, none the late one's
                    assert {a: balance(http, a) for a in accounts} == accounts
            runs = mpledger.service.storage.executions("mpledger.sync.balance")
            assert late.json()["task_id"] not in {run["task_id"] for run in runs}
    finally:
        stop_edge(lab, edge)


def test_a_message_no_queue_takes_is_502_not_202(lab, platform):
    """Celery declares a task's queue on a connection's first publish; a queue deleted after
    that (by an operator, a policy) leaves the edge's long-lived producer publishing to nothing."""
    entry = {"entry_id": _name(), "account": "unbound", "amount_cents": 1}
    lab.prepare_topology()
    post = lambda: platform.post("/ledger/entries", json=entry, headers=OPERATOR)  # noqa: E731
    assert post().status_code == 202  # declares the queue
    try:
        with Management.for_broker(lab.async_) as api:
            api.delete_queue("mpledger.async")
        resp = post()
        assert resp.status_code == 502 and "no queue" in resp.json()["detail"], resp.text
    finally:
        lab.prepare_topology()
    assert post().status_code == 202  # the edge recovers


def test_the_edge_is_found_again_and_leaves_no_process(lab):
    edge = start_edge(lab)
    pid = edge.process.pid
    assert edge.name in {found.name for found in edges(lab)}
    stop_edge(lab, edge)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert edge.name not in {found.name for found in edges(lab)}
    with pytest.raises(httpx.TransportError):
        httpx.get(edge_url(edge) + "/health", timeout=2, trust_env=False)


def test_the_reaper_stops_the_edge_of_a_process_that_died(lab):
    """A kernel starts an edge and dies without a word: the reaper stops the edge."""
    script = (
        "import os, mpsoa_lab\nfrom mpsoa_lab.running import start_edge\n"
        "lab = mpsoa_lab.up()\nedge = start_edge(lab)\n"
        "print(edge.process.pid, edge.ports['http'], flush=True)\nos._exit(0)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=90, check=True
    ).stdout
    pid, port = (int(word) for word in out.split())
    wait_until(lambda: not psutil.pid_exists(pid), timeout=30)
    wait_until(lambda: port not in PortAllocator().reserved(), timeout=10)
    assert pid not in {found.process.pid for found in edges(lab) if found.process}


@pytest.mark.parametrize("wait", ["threadpool", "event-loop"])
def test_the_other_ways_of_waiting_answer_and_time_out_alike(lab, wait):
    """The notebook's two blocking ways of waiting give the same answers as the shared one: a
    sync call's result, a service's error, and a 504 when no worker answers."""
    lab.prepare_topology()
    edge = start_edge(lab, timeout=2, wait=wait)
    try:
        with (
            start_worker(lab, "mpwallet", "sync"),
            httpx.Client(base_url=edge_url(edge), timeout=30, trust_env=False) as http,
        ):
            assert http.get("/health").json()["wait"] == wait
            user = uuid.uuid4().int % 10**9  # a wallet no other test uses
            mine = signed(user)
            assert http.put(f"/wallets/{user}", headers=mine).status_code == 200
            assert http.get(f"/wallets/{user}/balance", headers=mine).json()["balance_cents"] == 0
            nobody = http.get(f"/wallets/{10**9}/balance", headers=signed(10**9))
            assert nobody.status_code == 404
            no_worker = http.get("/ledger/accounts/nobody/balance", headers=OPERATOR)
            assert no_worker.status_code == 504
            assert http.get("/stats").json()["wait"] == wait
    finally:
        stop_edge(lab, edge)


def test_shared_replies_hold_two_connections_for_many_calls(lab):
    """The recommended way: 16 concurrent calls, each its own answer, on one producer and one
    reply consumer (the threadpool way would hold a reply connection per thread)."""
    from urllib.parse import urlsplit

    from mpsoa_lab.experiments.edge_load import amqp_connections

    lab.prepare_topology()
    edge = start_edge(lab, timeout=5)
    try:
        with (
            start_worker(lab, "mpwallet", "sync", pool="threads", concurrency=16, delay_ms=200),
            httpx.Client(base_url=edge_url(edge), timeout=30, trust_env=False) as http,
        ):
            users = [uuid.uuid4().int % 10**9 for _ in range(16)]  # wallets no other test uses
            sessions = {user: signed(user) for user in users}
            for i, user in enumerate(users):
                opened = http.put(f"/wallets/{user}", headers=sessions[user])
                assert opened.json()["balance_cents"] == 0
                http.post(
                    f"/wallets/{user}/deposits",
                    json={"amount_cents": i + 1},
                    headers=sessions[user],
                )
            http.get("/stats", params={"reset": True})

            def balance_of(user: int) -> dict:
                return http.get(f"/wallets/{user}/balance", headers=sessions[user]).json()

            with ThreadPoolExecutor(16) as pool:
                seen = list(pool.map(balance_of, users))
            assert [s["balance_cents"] for s in seen] == [i + 1 for i in range(16)]
            assert http.get("/stats").json()["max_in_flight"] >= 8  # they did wait together
            assert amqp_connections(edge.process.pid, urlsplit(lab.sync.url).port) <= 3
    finally:
        stop_edge(lab, edge)


def test_python_m_mpsoa_lab_edge_serves_until_told_to_stop(lab):
    """The terminal's way: ``python -m mpsoa_lab edge`` starts a worker per queue and the edge,
    prints its URL, serves a sign-up, and leaves nothing behind on SIGTERM."""
    import re
    import signal

    proc = subprocess.Popen(
        [sys.executable, "-m", "mpsoa_lab", "edge", "--timeout", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C" in line:
                break
        url = re.search(r"answers on (http://127\.0\.0\.1:\d+)", "".join(lines)).group(1)
        mine = {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}
        assert len(mine) >= 7, "".join(lines)  # 6 workers (each with its pool) and the edge
        answer = httpx.post(
            url + "/users", json={"username": _name(), "password": "pw"}, timeout=30
        )
        assert answer.status_code == 201, answer.text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    assert proc.returncode == 0
    wait_until(lambda: not any(psutil.pid_exists(pid) for pid in mine), timeout=30)
    with pytest.raises(httpx.TransportError):
        httpx.get(url + "/health", timeout=2, trust_env=False)


def test_the_shared_reply_consumer_comes_back_after_a_broker_restart(lab):
    """The sync broker restarts under a running edge: calls during the outage get 503 or 504
    (never a 500), and once the broker is back the edge answers again by itself."""
    lab.prepare_topology()
    edge = start_edge(lab, timeout=2)
    try:
        with (
            start_worker(lab, "mpwallet", "sync"),
            httpx.Client(base_url=edge_url(edge), timeout=30, trust_env=False) as http,
        ):
            user = uuid.uuid4().int % 10**9  # a wallet no other test uses
            http.headers.update(signed(user))
            assert http.put(f"/wallets/{user}").status_code == 200
            with lab.exclusive("restarts the sync broker under an edge"):
                lab.stop_node("sync")
                during = http.get(f"/wallets/{user}/balance")
                lab.start_node("sync")
            assert during.status_code in (503, 504), during.text
            path = f"/wallets/{user}/balance"
            wait_until(lambda: http.get(path).status_code == 200, timeout=60)
            assert http.get(path).json()["balance_cents"] == 0
    finally:
        stop_edge(lab, edge)


def test_the_edge_calls_rest_services_through_haproxy_with_the_same_answers(lab):
    """The REST alternative behind the same edge: a sign-up, a wallet, a ledger entry and the
    same error statuses, every service reached over HTTP through HAProxy, no task published."""
    from mpsoa_lab.running import start_haproxy, start_rest, stop_haproxy, stop_rest

    instances = {
        service: start_rest(lab, service, 2) for service in ("mplogin", "mpwallet", "mpledger")
    }
    balancer = start_haproxy(lab, instances)
    urls = {service: balancer.url(service) for service in instances}
    edge = start_edge(lab, timeout=3, rest_urls=urls)
    asking = start_edge(lab, timeout=3, rest_urls=urls, sessions="mplogin")
    try:
        with (
            httpx.Client(base_url=edge_url(edge), timeout=30, trust_env=False) as http,
            httpx.Client(base_url=edge_url(asking), timeout=30, trust_env=False) as other,
        ):
            assert http.get("/health").json()["wait"] == "rest"
            member = sign_up(http)
            taken = {"username": member.username, "password": "x"}
            assert http.post("/users", json=taken).status_code == 409
            user_id, mine = member.user_id, member.headers
            deposit = http.post(
                f"/wallets/{user_id}/deposits", json={"amount_cents": 5}, headers=mine
            )
            assert deposit.json()["balance_cents"] == 5
            nobody = http.get(f"/wallets/{10**9}/balance", headers=signed(10**9))
            assert nobody.status_code == 404
            assert http.get(f"/wallets/{user_id}/echo", headers=mine).json() == {
                "user_id": user_id,
                "echoed": user_id,
            }
            entry = {"entry_id": member.username, "account": member.username, "amount_cents": 3}
            assert http.post("/ledger/entries", json=entry, headers=OPERATOR).status_code == 202
            path = f"/ledger/accounts/{member.username}/balance"
            assert http.get(path, headers=OPERATOR).json()["balance_cents"] == 3
            # an edge that asks mplogin, over REST: the session is checked there, and ended
            balance = f"/wallets/{user_id}/balance"
            assert other.get(balance, headers=mine).json()["balance_cents"] == 5
            assert other.get(balance, headers=signed(user_id)).status_code == 401  # no row
            assert other.delete("/sessions/current", headers=mine).status_code == 204
            assert other.get(balance, headers=mine).status_code == 401
    finally:
        stop_edge(lab, edge)
        stop_edge(lab, asking)
        stop_haproxy(lab, balancer)
        stop_rest(lab, [i for group in instances.values() for i in group])


def test_the_rest_edge_answers_503_when_a_service_cannot_be_reached(lab):
    down = _closed_http_url()
    edge = start_edge(lab, timeout=2, rest_urls={"mplogin": down})
    try:
        with httpx.Client(base_url=edge_url(edge), timeout=30, trust_env=False) as http:
            answer = http.post("/users", json={"username": "a", "password": "b"})
            assert answer.status_code == 503 and int(answer.headers["retry-after"]) > 0
            no_url = http.get("/wallets/1/balance", headers=signed(1))
            assert no_url.status_code == 503  # no URL for mpwallet
    finally:
        stop_edge(lab, edge)


def _closed_http_url() -> str:
    return f"http://127.0.0.1:{_closed_port()}"
