"""``mplogin``: registers users and checks their passwords.

=============================  =====  =================================================
Task                           Kind   What it does
=============================  =====  =================================================
``mplogin.sync.register``      sync   new user; returns ``{"user_id", "username", "role"}``
``mplogin.sync.authenticate``  sync   checks a password; opens a session, returns its token
``mplogin.sync.check_session`` sync   the session a token stands for, if it is still open
``mplogin.sync.end_session``   sync   ends a session (log out)
``mplogin.async.record_login`` async  appends a login attempt to the audit log
=============================  =====  =================================================

Sessions and passwords are :mod:`mpsoa_lab.design.sessions`: a session is a signed token with
an expiry (``MPSOA_SESSION_TTL``), kept here as a row so that it can be ended; a password is
hashed with PBKDF2-HMAC-SHA256 at ``MPSOA_PBKDF2_ITERATIONS`` (the lab's few by default, the
recommended design's 600,000), compared in constant time, and a username nobody registered
costs the same hash as a wrong password (no answer comes back sooner for it). A user is a
``user``; an ``operator`` is made only by a publisher of ``register`` with ``role="operator"``
(the edge never passes a role).

Usernames and passwords follow :data:`mpsoa_lab.design.values.TEXT_RULES` (a username: 1 to
150 characters, no control, format or separator characters, no whitespace around it; a
password: 1 to 200, no control characters or lone surrogates); anything else is
:class:`~mpsoa_lab.design.values.InvalidInput`.

Run its daemons from a terminal (the lab must be up, or the broker URLs exported)::

    celery -A mpsoa_lab.design.services.mplogin.sync_app worker -Q mplogin.sync -n mplogin-sync@%h
    celery -A mpsoa_lab.design.services.mplogin.async_app worker -Q mplogin.async -n mplogin-async@%h
"""

from __future__ import annotations

import secrets
import sqlite3
import time

from .. import sessions
from ..values import InvalidInput, check_text, describe
from ._service import Service

__all__ = [
    "service",
    "sync_app",
    "async_app",
    "register",
    "authenticate",
    "check_session",
    "end_session",
    "record_login",
    "UsernameTaken",
    "InvalidCredentials",
    "SessionRefused",
]

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT UNIQUE NOT NULL,
    salt TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS operators (user_id INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS user_sessions (
    id TEXT PRIMARY KEY, user_id INTEGER NOT NULL, role TEXT NOT NULL, created REAL NOT NULL,
    expires REAL NOT NULL, ended REAL
);
CREATE TABLE IF NOT EXISTS login_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, username TEXT NOT NULL, succeeded INTEGER NOT NULL, at REAL NOT NULL
);
"""

service = Service("mplogin", SCHEMA)
sync_app, async_app = service.sync_app, service.async_app

#: A session refused (malformed, forged, expired, ended): the edge answers 401.
SessionRefused = sessions.SessionRefused
#: The salt an unknown username is hashed with: same work as a wrong password, nothing stored.
_NOBODY_SALT = "0" * 16


class UsernameTaken(ValueError):
    """The username is already registered."""


class InvalidCredentials(ValueError):
    """Unknown user or wrong password."""


@sync_app.task(name="mplogin.sync.register")
def register(username: str, password: str, role: str = "user") -> dict:
    """Create a user; a username can be registered once. Only a publisher inside the
    platform passes ``role="operator"``: the edge's ``POST /users`` never does."""
    check_text(username, "username")
    check_text(password, "password")
    if role not in sessions.ROLES:
        raise InvalidInput(f"role must be one of {', '.join(sessions.ROLES)}, not {describe(role)}")
    salt = secrets.token_hex(8)
    hashed = sessions.hash_password(password, salt, sessions.pbkdf2_iterations())
    try:
        with service.storage.connect() as db:
            cur = db.execute(
                "INSERT INTO users (username, salt, password_hash, created) VALUES (?, ?, ?, ?)",
                (username, salt, hashed, time.time()),
            )
            if role == "operator":
                db.execute("INSERT INTO operators (user_id) VALUES (?)", (cur.lastrowid,))
    except sqlite3.IntegrityError:
        raise UsernameTaken(f"username {username!r} is already registered") from None
    return {"user_id": cur.lastrowid, "username": username, "role": role}


@sync_app.task(name="mplogin.sync.authenticate")
def authenticate(username: str, password: str) -> dict:
    """Check a password and open a session: ``{"user_id", "role", "token", "expires"}``."""
    check_text(username, "username")
    check_text(password, "password")
    row = service.storage.query(
        "SELECT u.id, u.salt, u.password_hash, o.user_id IS NOT NULL AS operator FROM users u "
        "LEFT JOIN operators o ON o.user_id = u.id WHERE u.username = ?",
        (username,),
    )
    if not row:  # the same work as a wrong password: an unknown name is not answered sooner
        nobody = f"pbkdf2_sha256${sessions.pbkdf2_iterations()}${'0' * 64}"
        sessions.password_matches(password, _NOBODY_SALT, nobody)
        raise InvalidCredentials(f"wrong username or password for {username!r}")
    user = row[0]
    if not sessions.password_matches(password, user["salt"], user["password_hash"]):
        raise InvalidCredentials(f"wrong username or password for {username!r}")
    role = "operator" if user["operator"] else "user"
    token, session = sessions.issue(
        sessions.key_from_env(), user["id"], role, sessions.session_ttl()
    )
    with service.storage.connect() as db:
        db.execute(
            "INSERT INTO user_sessions (id, user_id, role, created, expires) "
            "VALUES (?, ?, ?, ?, ?)",
            (session.session_id, user["id"], role, time.time(), session.expires),
        )
    return {"user_id": user["id"], "role": role, "token": token, "expires": session.expires}


def _open_session(token: str) -> sessions.Session:
    """The session ``token`` stands for: signed, not expired, its row here and not ended."""
    session = sessions.verify(sessions.key_from_env(), token)
    rows = service.storage.query(
        "SELECT ended FROM user_sessions WHERE id = ?", (session.session_id,)
    )
    if not rows:
        raise SessionRefused("unknown")
    if rows[0]["ended"] is not None:
        raise SessionRefused("ended")
    return session


@sync_app.task(name="mplogin.sync.check_session")
def check_session(token: str) -> dict:
    """``{"user_id", "role", "expires", "session_id"}`` of an open session; else
    :class:`SessionRefused` (the edge's 401)."""
    session = _open_session(token)
    return {
        "user_id": session.user_id,
        "role": session.role,
        "expires": session.expires,
        "session_id": session.session_id,
    }


@sync_app.task(name="mplogin.sync.end_session")
def end_session(token: str) -> dict:
    """End an open session (log out); every later check of its token is refused."""
    session = _open_session(token)
    with service.storage.connect() as db:
        db.execute(
            "UPDATE user_sessions SET ended = ? WHERE id = ?", (time.time(), session.session_id)
        )
    return {"session_id": session.session_id, "ended": True}


@async_app.task(name="mplogin.async.record_login")
def record_login(username: str, succeeded: bool) -> None:
    """Fire and forget: keep an audit trail of login attempts."""
    check_text(username, "username")
    if not isinstance(succeeded, bool):
        raise InvalidInput(f"succeeded must be true or false, not {describe(succeeded)}")
    with service.storage.connect() as db:
        db.execute(
            "INSERT INTO login_events (username, succeeded, at) VALUES (?, ?, ?)",
            (username, int(succeeded), time.time()),
        )
