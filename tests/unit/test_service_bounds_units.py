"""The services' tasks check their own inputs and bounds, called directly as a worker runs them.

A task published by anyone (a notebook, ``celery call``, a hostile publisher) never reaches
the edge's validation: the task refuses a bad value itself with ``InvalidInput``, a balance
past 2**53 - 1 with ``LimitReached``, and changes nothing. A failed async task is kept in the
service's failed tasks. The services load without a broker, in a fresh interpreter each
(loading a service module is once per process), as in test_service_execute_units.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

PRELUDE = """
import json
from mpsoa_lab.design.services import _service
_service.without_broker()
from mpsoa_lab.design.services import mpledger, mplogin, mpwallet
from mpsoa_lab.design.values import MAX_EXACT

def outcome(task, *args, **kwargs):
    try:
        return ["ok", task.run(*args, **kwargs)]
    except Exception as exc:
        return [type(exc).__name__, str(exc)]
"""

WALLET = """
mpwallet.open_wallet.run(1)
amounts = [MAX_EXACT - 100, 60, 41, 40, 2**62, 1, 2**63, 0, -5, float("nan"), True, 1.0, "5"]
accepted, outcomes = [], []
for amount in amounts:
    before = mpwallet.get_balance.run(1)
    got = outcome(mpwallet.deposit, 1, amount)
    after = mpwallet.get_balance.run(1)
    outcomes.append([got[0], before == after])
    if got[0] == "ok":
        accepted.append(amount)
        assert got[1] == after == before + amount
from fastapi.testclient import TestClient
from mpsoa_lab.design.rest import RestConfig, create_app
http = TestClient(create_app(RestConfig("mpwallet"), service=mpwallet.service))
statuses = [http.post("/wallets/1/deposits", json={"amount_cents": 1}).status_code,
            http.post("/wallets/1/deposits", content=b'{"amount_cents": NaN}').status_code]
db = mpwallet.service.storage
print(json.dumps({
    "http": statuses,
    "outcomes": outcomes,
    "balance": mpwallet.get_balance.run(1),
    "accepted": accepted,
    "kind": db.query("SELECT typeof(balance_cents) AS t FROM wallets")[0]["t"],
    "movements": db.query("SELECT SUM(amount_cents) AS s FROM movements")[0]["s"],
    "limit": outcome(mpwallet.deposit, 1, 1)[1],
    "ids": [outcome(task, bad)[0] for task in (mpwallet.open_wallet, mpwallet.get_balance,
            mpwallet.echo) for bad in (0, 2**63, float("inf"), False)],
    "no_wallet": outcome(mpwallet.deposit, 2, 1)[0],
    "credit": mpwallet.credit.apply(kwargs={"user_id": 1, "amount_cents": 1}).state,
    "deposit": mpwallet.deposit.apply(kwargs={"user_id": 1, "amount_cents": 1}).state,
    "failed": [[f["task_name"], f["error_type"], f["arguments"]] for f in db.failed_tasks()],
}))
"""

LEDGER = """
record = mpledger.record_entry
steps = [("e1", MAX_EXACT), ("e2", 1), ("e1", MAX_EXACT), ("e3", -MAX_EXACT), ("e4", -1),
         ("e5", -MAX_EXACT), ("e6", 0), ("e7", float("-inf")), ("e8", 2**53)]
outcomes = [outcome(record, entry_id, "acct", cents)[0:2] for entry_id, cents in steps]
texts = [outcome(record, entry_id, account, 1)[0] for entry_id, account in [
    ("\\ud800", "a"), ("e\\u202e", "a"), ("e", "a\\x00"), ("e", "a/b"), ("e", " a"), ("", "a"),
    (b"e", "a"), ("e", "x" * 201)]]
failed = record.apply(kwargs={"entry_id": "f1", "account": "acct", "amount_cents": -MAX_EXACT})
hostile = record.apply(kwargs={"entry_id": "\\ud800", "account": "a", "amount_cents": float("nan")})
db = mpledger.service.storage
print(json.dumps({
    "outcomes": outcomes,
    "texts": texts,
    "balance": mpledger.balance.run("acct"),
    "total": db.query("SELECT total_cents FROM account_totals WHERE account = 'acct'")[0],
    "count": mpledger.entry_count.run("acct"),
    "reads": [outcome(mpledger.balance, "a\\u2028b")[0], outcome(mpledger.entry_count, 5)[0]],
    "states": [failed.state, hostile.state],
    "failed": [[f["task_id"] == t.id, f["error_type"], f["arguments"]["kwargs"]]
               for f, t in zip(db.failed_tasks(), (failed, hostile))],
    "reconcile": [outcome(mpledger.reconcile, "b", s)[0] for s in (float("nan"), True, 61)],
}))
"""

LOGIN = """
attempts = [("ada", "pw"), ("ada\\u202e", "pw"), ("ada ", "pw"), ("\\x1b[2Jada", "pw"),
            ("bob", "p\\x00w"), ("bob", "\\udfff"), ("bob", " pass word\\u200d ")]
registered = [outcome(mplogin.register, name, pw)[0] for name, pw in attempts]
logins = [outcome(mplogin.authenticate, "ada", "pw")[0],
          outcome(mplogin.authenticate, "ada\\x00", "pw")[0]]
kept = mplogin.record_login.apply(kwargs={"username": "ada", "succeeded": "yes"})
db = mplogin.service.storage
print(json.dumps({
    "registered": registered, "logins": logins, "kept": kept.state,
    "users": [r["username"] for r in db.query("SELECT username FROM users ORDER BY id")],
    "failed": [[f["task_name"], f["error_type"]] for f in db.failed_tasks()],
}))
"""


SESSIONS = """
import hashlib
from mpsoa_lab.design import sessions
work = []  # the iterations of each PBKDF2 hash computed
real = hashlib.pbkdf2_hmac
hashlib.pbkdf2_hmac = lambda *a: work.append(a[3]) or real(*a)
mplogin.register.run("ada", "pw")
op = mplogin.register.run("root", "pw", role="operator")
def cost(*attempt):
    work.clear()
    return [outcome(mplogin.authenticate, *attempt)[0], list(work)]
unknown, wrong = cost("nobody", "pw"), cost("ada", "px")
token = mplogin.authenticate.run("ada", "pw")["token"]
checked = mplogin.check_session.run(token)
ended = mplogin.end_session.run(token)
after = [outcome(mplogin.check_session, token), outcome(mplogin.end_session, token)]
forged = outcome(mplogin.check_session, token[:-2] + ("AA" if token[-2:] != "AA" else "BB"))
signed_elsewhere, _ = sessions.issue(b"x" * 32, checked["user_id"], "user", 60)
db = mplogin.service.storage
print(json.dumps({
    "op": op, "unknown": unknown, "wrong": wrong,
    "checked": [checked["user_id"], checked["role"]], "ended": ended["ended"],
    "after": [a[0] + ": " + a[1] for a in after], "forged": forged[1],
    "unsigned": outcome(mplogin.check_session, signed_elsewhere)[1],
    "role": outcome(mplogin.authenticate, "root", "pw")[1]["role"],
    "bad_role": outcome(mplogin.register, "eve", "pw", role="admin")[0],
    "hashes": [r["password_hash"].rsplit("$", 1)[0] for r in db.query(
        "SELECT password_hash FROM users ORDER BY id")],
}))
"""


def run(code: str, home, **settings: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MPSOA_")}
    env["MPSOA_LAB_HOME"] = str(home)
    env.update(settings)
    done = subprocess.run(
        [sys.executable, "-c", PRELUDE + code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_wallet_takes_deposits_up_to_the_bound_and_refuses_the_rest_unchanged(tmp_path):
    out = run(WALLET, tmp_path)
    max_exact = 2**53 - 1
    assert out["outcomes"] == [
        ["ok", False],
        ["ok", False],
        ["LimitReached", True],  # one cent past the bound: refused, balance unchanged
        ["ok", False],  # exactly to the bound
        ["InvalidInput", True],  # 2**62: no amount is that large
        ["LimitReached", True],
        ["InvalidInput", True],
        ["InvalidInput", True],
        ["InvalidInput", True],
        ["InvalidInput", True],
        ["InvalidInput", True],
        ["InvalidInput", True],
        ["InvalidInput", True],
    ]
    # the balance after refused and accepted deposits is the sum of the accepted ones
    assert out["balance"] == sum(out["accepted"]) == out["movements"] == max_exact
    assert out["kind"] == "integer"  # never SQLite's floating point
    assert out["http"] == [409, 422]  # the REST service on the real task: full, and not JSON
    assert f"the wallet of user 1: {max_exact} + 1 cents" in out["limit"]
    assert set(out["ids"]) == {"InvalidInput"} and out["no_wallet"] == "WalletNotFound"
    # an async credit that fails is kept; a sync deposit's caller got its error itself
    assert (out["credit"], out["deposit"]) == ("FAILURE", "FAILURE")
    assert out["failed"] == [
        [
            "mpwallet.async.credit",
            "LimitReached",
            {"args": [], "kwargs": {"user_id": 1, "amount_cents": 1}},
        ]
    ]


def test_a_ledger_account_sums_within_the_bound_both_ways(tmp_path):
    out = run(LEDGER, tmp_path)
    assert [o[0] for o in out["outcomes"]] == [
        "ok",
        "LimitReached",  # past +bound
        "ok",  # e1 again: already stored, answered without a check or a change
        "ok",
        "ok",
        "LimitReached",  # the sum is -1: -1 - (2**53 - 1) is past -bound
        "InvalidInput",  # 0 moves no money
        "InvalidInput",
        "InvalidInput",
    ]
    first, _, again, *more = out["outcomes"][:5]
    assert first == ["ok", True] and again == ["ok", False] and more == [["ok", True]] * 2
    assert "account 'acct'" in out["outcomes"][1][1] and "refused" in out["outcomes"][1][1]
    assert out["balance"] == out["total"]["total_cents"] == -1 and out["count"] == 3
    assert set(out["texts"]) == {"InvalidInput"} and set(out["reads"]) == {"InvalidInput"}
    assert out["states"] == ["FAILURE", "FAILURE"]
    assert out["failed"] == [
        [True, "LimitReached", {"entry_id": "f1", "account": "acct", "amount_cents": 1 - 2**53}],
        [True, "InvalidInput", {"entry_id": "\\ud800", "account": "a", "amount_cents": "nan"}],
    ]
    assert set(out["reconcile"]) == {"InvalidInput"}


def test_a_user_name_is_one_a_person_can_read_and_a_password_anything_printable(tmp_path):
    out = run(LOGIN, tmp_path)
    assert out["registered"] == ["ok"] + ["InvalidInput"] * 5 + ["ok"]
    assert out["users"] == ["ada", "bob"]
    assert out["logins"] == ["ok", "InvalidInput"]
    assert out["kept"] == "FAILURE"
    assert out["failed"] == [["mplogin.async.record_login", "InvalidInput"]]


def test_a_session_is_checked_and_ended_by_mplogin_and_a_password_costs_the_same_known_or_not(
    tmp_path,
):
    out = run(SESSIONS, tmp_path, MPSOA_PBKDF2_ITERATIONS="2000")
    assert out["op"]["role"] == "operator" and out["role"] == "operator"
    assert out["bad_role"] == "InvalidInput"
    # an unknown user costs one hash at the configured work factor, as a wrong password does
    assert out["unknown"] == out["wrong"] == ["InvalidCredentials", [2000]]
    assert out["hashes"] == ["pbkdf2_sha256$2000"] * 2  # each hash keeps its work factor
    assert out["checked"] == [1, "user"] and out["ended"] is True
    assert (
        out["after"]
        == ["SessionRefused: no valid session (ended): log in again with POST /sessions"] * 2
    )
    assert "(signature)" in out["forged"] and "(signature)" in out["unsigned"]
