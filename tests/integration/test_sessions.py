"""Sessions against the running platform: a user's session moves only that user's money, on
every endpoint that takes an id, checked both ways (the edge's own token check, and a call to
mplogin on every request); log out; what each way does while mplogin cannot answer."""

from __future__ import annotations

import httpx
import pytest

from mpsoa_lab.design.sessions import authorization, issue, key_from_env
from mpsoa_lab.experiments.edge_load import Member, make_operator, sign_up
from mpsoa_lab.running import edge_url, start_edge, start_worker, stop_edge

#: Asserts nothing that another test's load could change: make test runs it beside others.
pytestmark = pytest.mark.beside_others

CHECKS = ("token", "mplogin")


@pytest.fixture(scope="module")
def edges(lab):
    """The three services' sync workers, and three edges: two that check tokens themselves
    (a second instance, as behind a load balancer) and one that asks mplogin."""
    lab.prepare_topology()
    workers = {s: start_worker(lab, s, "sync") for s in ("mplogin", "mpwallet", "mpledger")}
    started = {
        "token": start_edge(lab, timeout=3, sessions="token"),
        "token, second instance": start_edge(lab, timeout=3, sessions="token"),
        "mplogin": start_edge(lab, timeout=3, sessions="mplogin"),
    }
    clients = {
        name: httpx.Client(base_url=edge_url(e), timeout=30, trust_env=False)
        for name, e in started.items()
    }
    try:
        yield clients, workers
    finally:
        for client in clients.values():
            client.close()
        for edge in started.values():
            stop_edge(lab, edge)
        for worker in workers.values():
            worker.stop()


def _attempts(owner: Member) -> list[tuple[str, str, dict | None]]:
    """Every endpoint that takes an id, on ``owner``'s wallet."""
    return [
        ("PUT", f"/wallets/{owner.user_id}", None),
        ("GET", f"/wallets/{owner.user_id}/balance", None),
        ("GET", f"/wallets/{owner.user_id}/echo", None),
        ("POST", f"/wallets/{owner.user_id}/deposits", {"amount_cents": 1_000}),
    ]


@pytest.mark.parametrize("check", CHECKS)
def test_a_session_reads_and_moves_only_its_own_money(edges, check):
    http = edges[0][check]
    ada, bob = sign_up(http), sign_up(http)
    path = f"/wallets/{bob.user_id}/deposits"
    assert http.post(path, json={"amount_cents": 100}, headers=bob.headers).status_code == 200
    for method, path, body in _attempts(bob):
        nobody = http.request(method, path, json=body)
        assert nobody.status_code == 401 and "www-authenticate" in nobody.headers, nobody.text
        other = http.request(method, path, json=body, headers=ada.headers)
        assert other.status_code == 403 and f"user {ada.user_id}'s" in other.text, other.text
    for method, path, body in _attempts(ada):  # ada's own: allowed
        assert http.request(method, path, json=body, headers=ada.headers).status_code == 200
    balances = {
        m.user_id: http.get(f"/wallets/{m.user_id}/balance", headers=m.headers).json()
        for m in (ada, bob)
    }
    assert balances[bob.user_id]["balance_cents"] == 100  # nothing anyone else sent arrived
    assert balances[ada.user_id]["balance_cents"] == 1_000


@pytest.mark.parametrize("check", CHECKS)
def test_the_ledger_is_the_operators_not_the_users(edges, check):
    http = edges[0][check]
    user, operator = sign_up(http), make_operator(http)
    path = "/ledger/accounts/books/balance"
    assert http.get(path).status_code == 401
    assert http.get(path, headers=user.headers).status_code == 403
    assert http.get(path, headers=operator.headers).status_code == 200
    entry = {"entry_id": f"e-{user.user_id}", "account": "books", "amount_cents": 5}
    assert http.post("/ledger/entries", json=entry, headers=user.headers).status_code == 403
    operator_wallet = http.get(f"/wallets/{operator.user_id}/balance", headers=operator.headers)
    assert operator_wallet.status_code == 403  # an operator moves no wallet's money


@pytest.mark.parametrize("check", CHECKS)
def test_a_session_expired_or_signed_with_another_key_is_401(edges, check):
    http = edges[0][check]
    ada = sign_up(http)
    path = f"/wallets/{ada.user_id}/balance"
    _, session = issue(key_from_env(), ada.user_id, "user", 600)
    expired, _ = issue(key_from_env(), ada.user_id, "user", 600, now=session.expires - 3600)
    forged, _ = issue(b"another key, not the platform's!", ada.user_id, "user", 600)
    for token, reason in ((expired, "expired"), (forged, "signature")):
        answer = http.get(path, headers=authorization(token))
        assert answer.status_code == 401 and reason in answer.json()["detail"], answer.text


def test_log_out_ends_the_session_at_once_where_it_is_checked_by_mplogin_or_ended(edges):
    """Ended through one token-checking edge: that edge and the mplogin-checking one refuse it
    at once; the other token-checking instance, which asks nobody, until it expires."""
    edges = edges[0]
    ada = sign_up(edges["token"])
    path = f"/wallets/{ada.user_id}/balance"
    assert all(h.get(path, headers=ada.headers).status_code == 200 for h in edges.values())
    assert edges["token"].delete("/sessions/current", headers=ada.headers).status_code == 204
    after = {name: h.get(path, headers=ada.headers) for name, h in edges.items()}
    ended = "no valid session (ended): log in again with POST /sessions"
    assert after["token"].status_code == 401 and after["token"].json()["detail"] == ended
    assert after["mplogin"].status_code == 401 and after["mplogin"].json()["detail"] == ended
    assert after["token, second instance"].status_code == 200  # the price of asking nobody
    again = edges["mplogin"].delete("/sessions/current", headers=ada.headers)
    assert again.status_code == 401


def test_while_mplogin_cannot_answer_only_the_token_check_serves(lab, edges):
    """mplogin's worker stopped: a logged-in user is served by the edge that checks tokens
    itself, and gets 504 from the one that asks mplogin on every request."""
    edges, workers = edges
    ada = sign_up(edges["token"])
    path = f"/wallets/{ada.user_id}/balance"
    workers["mplogin"].stop()
    try:
        assert edges["token"].get(path, headers=ada.headers).status_code == 200
        asked = edges["mplogin"].get(path, headers=ada.headers)
        assert asked.status_code == 504, asked.text
    finally:
        workers["mplogin"] = start_worker(lab, "mplogin", "sync")
    assert edges["mplogin"].get(path, headers=ada.headers).status_code == 200
