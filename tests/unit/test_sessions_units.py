"""Sessions and passwords in process: the token's checks, the key, the work factor, and the
edge's guard on every endpoint that takes an id (token check: no broker is reached).

What needs a broker (``mplogin`` issuing, checking and ending sessions; the ``mplogin`` way of
checking) is in tests/integration/test_sessions.py.
"""

from __future__ import annotations

import os
import stat
import threading
import time

import pytest
from fastapi.testclient import TestClient

from mpsoa_lab.design import sessions
from mpsoa_lab.design.edge import ROUTES, EdgeConfig, create_app
from mpsoa_lab.design.sessions import (
    SessionRefused,
    authorization,
    hash_password,
    issue,
    password_matches,
    verify,
)
from mpsoa_lab.plumbing.errors import SettingsError

KEY = b"k" * 32
NOW = 1_800_000_000.0


def test_a_token_stands_for_its_user_role_and_expiry():
    token, session = issue(KEY, 42, "user", 60, now=NOW)
    assert verify(KEY, token, now=NOW + 59) == session
    assert (session.user_id, session.role, session.expires) == (42, "user", int(NOW + 60))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda t: t.replace(".42.", ".43.", 1), "signature"),  # another user's id
        (lambda t: t.replace(".user.", ".operator.", 1), "signature"),  # a role raised
        (lambda t: t.replace(f".{int(NOW + 60)}.", f".{int(NOW + 6000)}.", 1), "signature"),
        (lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"), "signature"),
        (lambda t: t + "x", "malformed"),
        (lambda t: "v2" + t[2:], "malformed"),
        (lambda t: "", "malformed"),
        (lambda t: t.replace(".", " ", 1), "malformed"),
    ],
)
def test_a_changed_token_is_refused(change, reason):
    token, _ = issue(KEY, 42, "user", 60, now=NOW)
    with pytest.raises(SessionRefused) as refused:
        verify(KEY, change(token), now=NOW)
    assert refused.value.reason == reason


def test_a_token_of_another_key_or_past_its_expiry_is_refused():
    token, _ = issue(KEY, 42, "user", 60, now=NOW)
    with pytest.raises(SessionRefused, match="signature"):
        verify(b"o" * 32, token, now=NOW)
    with pytest.raises(SessionRefused, match="expired"):
        verify(KEY, token, now=NOW + 60)
    with pytest.raises(SessionRefused, match="malformed"):
        verify(KEY, None, now=NOW)  # type: ignore[arg-type]


def test_a_role_must_be_known():
    with pytest.raises(ValueError, match="role"):
        issue(KEY, 1, "admin", 60)


def test_the_lab_key_is_made_once_readable_by_its_owner_only(tmp_path):
    env = {"MPSOA_LAB_HOME": str(tmp_path / "home")}
    keys: list[bytes] = []
    threads = [
        threading.Thread(target=lambda: keys.append(sessions.key_from_env(env))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(keys)) == 1 and len(keys[0]) == 64
    path = tmp_path / "home" / "session-key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir() if "session-key" in p.name) == [
        "session-key"
    ]


def test_a_given_key_is_used_and_a_short_one_refused(tmp_path):
    given = "g" * 40
    assert sessions.key_from_env({"MPSOA_SESSION_KEY": given}) == given.encode()
    with pytest.raises(SettingsError, match="MPSOA_SESSION_KEY has 5 characters"):
        sessions.key_from_env({"MPSOA_SESSION_KEY": "short"})


def test_a_hash_keeps_its_work_factor():
    stored = hash_password("pw", "salt", 2_000)
    assert stored.startswith("pbkdf2_sha256$2000$")
    assert password_matches("pw", "salt", stored)
    assert not password_matches("pW", "salt", stored)


def test_a_hash_stored_before_work_factors_were_kept_still_matches():
    import hashlib

    legacy = hashlib.pbkdf2_hmac("sha256", b"pw", b"salt", 1_000).hex()
    assert password_matches("pw", "salt", legacy)
    assert not password_matches("px", "salt", legacy)


def test_passwords_are_compared_in_constant_time(monkeypatch):
    compared = []
    real = sessions.hmac.compare_digest
    monkeypatch.setattr(
        sessions.hmac, "compare_digest", lambda a, b: compared.append(1) or real(a, b)
    )
    password_matches("pw", "salt", hash_password("pw", "salt", 10))
    verify(KEY, issue(KEY, 1, "user", 60)[0])
    assert len(compared) == 2


@pytest.mark.parametrize("value", ["0", "-5", "1.5", "x", "20000000"])
def test_a_work_factor_out_of_range_is_a_clear_error(value):
    with pytest.raises(SettingsError, match="MPSOA_PBKDF2_ITERATIONS"):
        sessions.pbkdf2_iterations({"MPSOA_PBKDF2_ITERATIONS": value})


def test_the_work_factors_are_the_lab_s_and_the_recommended():
    assert sessions.pbkdf2_iterations({}) == sessions.LAB_PBKDF2_ITERATIONS == 1_000
    assert sessions.RECOMMENDED_PBKDF2_ITERATIONS == 600_000
    assert sessions.pbkdf2_iterations({"MPSOA_PBKDF2_ITERATIONS": "600000"}) == 600_000


def test_an_unknown_way_of_checking_sessions_is_a_clear_error():
    with pytest.raises(SettingsError, match="MPSOA_EDGE_SESSIONS='jwt'"):
        EdgeConfig("amqp://a//", "amqp://b//", sessions="jwt")


# The edge's guard, in process with the token check (nothing reaches a broker: each request
# here is answered before a task would be published).


@pytest.fixture(scope="module")
def edge() -> TestClient:
    config = EdgeConfig("amqp://guest:guest@127.0.0.1:1//", "amqp://guest:guest@127.0.0.1:1//")
    return TestClient(create_app(config), raise_server_exceptions=False)


def _session(user_id: int, role: str = "user", ttl: float = 600) -> dict[str, str]:
    return authorization(issue(sessions.key_from_env(), user_id, role, ttl)[0])


#: Every endpoint that takes an id or reaches the ledger, with a body that validates.
GUARDED = [
    ("PUT", "/wallets/{id}", None),
    ("GET", "/wallets/{id}/balance", None),
    ("GET", "/wallets/{id}/echo", None),
    ("POST", "/wallets/{id}/deposits", {"amount_cents": 5}),
    ("GET", "/ledger/accounts/books/balance", None),
    ("POST", "/ledger/entries", {"entry_id": "e1", "account": "books", "amount_cents": 5}),
]


def test_every_guarded_endpoint_is_listed_here():
    guarded = {(m, p.replace("{user_id}", "{id}")) for m, p in ROUTES if "/wallets" in p}
    guarded |= {
        (m, "/ledger/accounts/books/balance" if "{" in p else p)
        for m, p in ROUTES
        if p.startswith("/ledger")
    }
    assert guarded == {(m, p) for m, p, _ in GUARDED}


@pytest.mark.parametrize(
    ("method", "path", "body"), GUARDED, ids=[f"{m} {p}" for m, p, _ in GUARDED]
)
def test_no_session_is_401_with_its_challenge(edge, method, path, body):
    for headers in ({}, {"Authorization": "Basic YTpi"}, {"Authorization": "Bearer nonsense"}):
        answer = edge.request(method, path.format(id=7), json=body, headers=headers)
        assert answer.status_code == 401, (headers, answer.text)
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert "POST /sessions" in answer.json()["detail"]


@pytest.mark.parametrize(
    ("method", "path", "body"), GUARDED, ids=[f"{m} {p}" for m, p, _ in GUARDED]
)
def test_an_expired_or_forged_session_is_401(edge, method, path, body):
    an_hour_ago = time.time() - 3600
    expired = authorization(issue(sessions.key_from_env(), 7, "user", 600, now=an_hour_ago)[0])
    forged = authorization(issue(b"f" * 32, 7, "operator", 600)[0])
    for headers, reason in ((expired, "expired"), (forged, "signature")):
        answer = edge.request(method, path.format(id=7), json=body, headers=headers)
        assert answer.status_code == 401 and reason in answer.json()["detail"]


@pytest.mark.parametrize(
    ("method", "path", "body"), GUARDED, ids=[f"{m} {p}" for m, p, _ in GUARDED]
)
def test_another_user_s_session_is_403(edge, method, path, body):
    answer = edge.request(method, path.format(id=7), json=body, headers=_session(8))
    assert answer.status_code == 403, answer.text
    if "/wallets" in path:
        assert "user 8's" in answer.json()["detail"]
        operator = edge.request(
            method, path.format(id=7), json=body, headers=_session(7, "operator")
        )
        assert operator.status_code == 403  # an operator moves no wallet's money
    else:
        own = edge.request(method, path.format(id=7), json=body, headers=_session(7))
        assert own.status_code == 403 and "platform's book" in own.json()["detail"]


def test_log_out_without_a_session_is_401(edge):
    answer = edge.delete("/sessions/current")
    assert answer.status_code == 401 and answer.headers["www-authenticate"].startswith("Bearer")
