"""Values the platform cannot hold, against the running edge and against workers called
directly (issue 21): each refused with a clear 4xx or error naming the field and the bound,
nothing stored wrong, and an async task the service refuses after the edge's 202 kept where a
person can count it."""

from __future__ import annotations

import math
import uuid

import httpx
import pytest

from mpsoa_lab.design import route_task
from mpsoa_lab.design.sessions import authorization, issue, key_from_env
from mpsoa_lab.design.values import MAX_EXACT, InvalidInput, LimitReached
from mpsoa_lab.experiments.edge_load import Member, sign_up
from mpsoa_lab.plumbing.util import wait_until
from mpsoa_lab.running import edge_url, start_edge, start_worker, stop_edge

#: Asserts nothing that another test's load could change: make test runs it beside others.
pytestmark = pytest.mark.beside_others

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def edge(lab):
    """An edge with mplogin's and mpwallet's sync workers and mpledger's async worker."""
    lab.prepare_topology()
    workers = [
        start_worker(lab, "mplogin", "sync"),
        start_worker(lab, "mpwallet", "sync"),
        start_worker(lab, "mpledger", "async"),
    ]
    process = start_edge(lab, timeout=5)
    try:
        with httpx.Client(base_url=edge_url(process), timeout=30, trust_env=False) as http:
            yield http
    finally:
        stop_edge(lab, process)
        for worker in workers:
            worker.stop()


def _wallet(http: httpx.Client) -> Member:
    """A user with a wallet, signed up and logged in through the edge."""
    return sign_up(http)


#: An operator's session, signed with the lab's key (the ledger's endpoints are theirs).
#: Valid for a day: a module is collected long before its tests run (make test: ~30 min).
OPERATOR = authorization(issue(key_from_env(), 1, "operator", 86_400)[0])


def test_the_balance_is_the_sum_of_the_accepted_deposits_whatever_was_refused(edge):
    member = _wallet(edge)
    path = f"/wallets/{member.user_id}/deposits"
    sent = [
        ({"content": b'{"amount_cents": 300}'}, 200),
        ({"content": b'{"amount_cents": NaN}'}, 422),
        ({"content": b'{"amount_cents": Infinity}'}, 422),
        ({"content": b'{"amount_cents": -Infinity}'}, 422),
        ({"json": {"amount_cents": 2**63}}, 422),
        ({"json": {"amount_cents": 2**53}}, 422),
        ({"json": {"amount_cents": 0}}, 422),
        ({"json": {"amount_cents": -5}}, 422),
        ({"json": {"amount_cents": 1.5}}, 422),
        ({"json": {"amount_cents": True}}, 422),
        ({"json": {"amount_cents": "7"}}, 422),
        ({"json": {"amount_cents": MAX_EXACT - 300}}, 200),  # exactly at the bound
        ({"json": {"amount_cents": 1}}, 409),  # one cent past it: refused, nothing changes
        ({"json": {"amount_cents": MAX_EXACT}}, 409),
    ]
    accepted = 0
    for body, expected in sent:
        answer = edge.post(path, headers={**JSON, **member.headers}, **body)
        assert answer.status_code == expected, (body, answer.text)
        if expected == 422:
            assert answer.json()["detail"][0]["loc"] == ["body", "amount_cents"], answer.text
        if expected == 200:
            accepted += body.get("json", {}).get("amount_cents", 300)
        if expected == 409:
            assert str(MAX_EXACT) in answer.json()["detail"]  # names the bound
    balance = edge.get(f"/wallets/{member.user_id}/balance", headers=member.headers)
    balance = balance.json()["balance_cents"]
    assert balance == accepted == MAX_EXACT and type(balance) is int


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("GET", f"/wallets/{2**63}/balance", None),
        ("GET", f"/wallets/{MAX_EXACT + 1}/balance", None),
        ("GET", "/wallets/0/balance", None),
        ("GET", "/wallets/1.5/balance", None),
        ("PUT", f"/wallets/{2**64}", None),
        ("POST", "/users", {"username": "ada\x00", "password": "pw"}),
        ("POST", "/users", {"username": "ada\x1b[2J", "password": "pw"}),
        ("POST", "/users", {"username": "\u202eada", "password": "pw"}),
        ("POST", "/users", {"username": "ada ", "password": "pw"}),
        ("POST", "/users", {"username": "x" * 151, "password": "pw"}),
        ("POST", "/ledger/entries", {"entry_id": "e", "account": "a/b", "amount_cents": 5}),
        ("POST", "/ledger/entries", {"entry_id": "e", "account": "a", "amount_cents": 0}),
        ("POST", "/ledger/entries", {"entry_id": "e", "account": "a", "amount_cents": 2**53}),
    ],
)
def test_values_past_a_bound_are_422_never_500(edge, method, path, body):
    """With a session the guard lets through (an operator's for the ledger, a user's for a
    wallet), so that what is tested is the value, not the session."""
    session = (
        OPERATOR
        if path.startswith("/ledger")
        else authorization(issue(key_from_env(), 1, "user", 3600)[0])
    )
    answer = edge.request(method, path, json=body, headers=session)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"] and "Traceback" not in answer.text


def test_a_lone_surrogate_and_a_body_that_is_not_utf8_are_4xx(edge):
    surrogate = edge.post(
        "/users", content=b'{"username": "\\ud800", "password": "x"}', headers=JSON
    )
    assert surrogate.status_code == 422, surrogate.text
    latin1 = edge.post(
        "/users", content='{"username": "é", "password": "x"}'.encode("latin-1"), headers=JSON
    )
    assert 400 <= latin1.status_code < 500, latin1.text


def _call(lab, name: str, timeout: float = 10, **kwargs):
    from mpsoa_lab.design.services import mpwallet

    app = mpwallet.sync_app
    return app.send_task(name, kwargs=kwargs, **route_task(name)).get(timeout=timeout)


def test_a_worker_called_directly_refuses_what_the_edge_would_refuse(lab, edge):
    """A task published without the edge (as `celery call` or a notebook does) meets the same
    bounds in the service itself, and nothing is stored."""
    user_id = _wallet(edge).user_id
    for amount in (2**63, math.nan, 1.5, True, "5", 0, None):
        with pytest.raises(InvalidInput, match="amount_cents"):
            _call(lab, "mpwallet.sync.deposit", user_id=user_id, amount_cents=amount)
    for bad_id in (2**63, -1, "1", 1.0):
        with pytest.raises(InvalidInput, match="user_id"):
            _call(lab, "mpwallet.sync.get_balance", user_id=bad_id)
    assert _call(lab, "mpwallet.sync.deposit", user_id=user_id, amount_cents=MAX_EXACT) == MAX_EXACT
    with pytest.raises(LimitReached):
        _call(lab, "mpwallet.sync.deposit", user_id=user_id, amount_cents=1)
    assert _call(lab, "mpwallet.sync.get_balance", user_id=user_id) == MAX_EXACT


def test_an_entry_accepted_with_202_that_the_ledger_refuses_is_kept_and_counted(lab, edge):
    from mpsoa_lab.design.services import mpledger

    storage = mpledger.service.storage
    account = f"acct-{uuid.uuid4().hex[:8]}"

    def post(n: int, cents: int) -> str:
        entry = {"entry_id": f"{account}-{n}", "account": account, "amount_cents": cents}
        answer = edge.post("/ledger/entries", json=entry, headers=OPERATOR)
        assert answer.status_code == 202, answer.text
        task_id = answer.json()["task_id"]
        wait_until(lambda: any(r["task_id"] == task_id for r in storage.executions()), timeout=30)
        return task_id

    post(1, MAX_EXACT)
    refused = post(2, 1)  # one cent past the bound: accepted by the edge, refused by the ledger
    post(3, -MAX_EXACT)
    failed = wait_until(
        lambda: [f for f in storage.failed_tasks() if f["task_id"] == refused], timeout=30
    )
    assert len(failed) == 1 and failed[0]["error_type"] == "LimitReached"
    assert failed[0]["task_name"] == "mpledger.async.record_entry"
    assert failed[0]["arguments"]["kwargs"] == {
        "entry_id": f"{account}-2",
        "account": account,
        "amount_cents": 1,
    }  # the message, kept whole
    stored = storage.query(
        "SELECT entry_id, amount_cents FROM entries WHERE account = ? ORDER BY entry_id",
        (account,),
    )
    assert [(r["entry_id"], r["amount_cents"]) for r in stored] == [
        (f"{account}-1", MAX_EXACT),
        (f"{account}-3", -MAX_EXACT),
    ]
