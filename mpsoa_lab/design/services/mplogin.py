"""``mplogin``: registers users and checks their passwords.

=============================  =====  =================================================
Task                           Kind   What it does
=============================  =====  =================================================
``mplogin.sync.register``      sync   new user; returns ``{"user_id", "username"}``
``mplogin.sync.authenticate``  sync   checks a password; returns a session token
``mplogin.async.record_login`` async  appends a login attempt to the audit log
=============================  =====  =================================================

Usernames and passwords follow :data:`mpsoa_lab.design.values.TEXT_RULES` (a username: 1 to
150 characters, no control, format or separator characters, no whitespace around it; a
password: 1 to 200, no control characters or lone surrogates); anything else is
:class:`~mpsoa_lab.design.values.InvalidInput`.

Run its daemons from a terminal (the lab must be up, or the broker URLs exported)::

    celery -A mpsoa_lab.design.services.mplogin.sync_app worker -Q mplogin.sync -n mplogin-sync@%h
    celery -A mpsoa_lab.design.services.mplogin.async_app worker -Q mplogin.async -n mplogin-async@%h
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import time

from ..values import InvalidInput, check_text, describe
from ._service import Service

__all__ = [
    "service",
    "sync_app",
    "async_app",
    "register",
    "authenticate",
    "record_login",
    "UsernameTaken",
    "InvalidCredentials",
]

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT UNIQUE NOT NULL,
    salt TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (token TEXT PRIMARY KEY, user_id INTEGER NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS login_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, username TEXT NOT NULL, succeeded INTEGER NOT NULL, at REAL NOT NULL
);
"""

service = Service("mplogin", SCHEMA)
sync_app, async_app = service.sync_app, service.async_app

# Few iterations on purpose: the lab measures the middleware, not password hashing.
_ITERATIONS = 1_000


class UsernameTaken(ValueError):
    """The username is already registered."""


class InvalidCredentials(ValueError):
    """Unknown user or wrong password."""


def _hash(password: str, salt: str) -> str:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), _ITERATIONS).hex()


@sync_app.task(name="mplogin.sync.register")
def register(username: str, password: str) -> dict:
    """Create a user; a username can be registered once."""
    check_text(username, "username")
    check_text(password, "password")
    salt = secrets.token_hex(8)
    try:
        with service.storage.connect() as db:
            cur = db.execute(
                "INSERT INTO users (username, salt, password_hash, created) VALUES (?, ?, ?, ?)",
                (username, salt, _hash(password, salt), time.time()),
            )
    except sqlite3.IntegrityError:
        raise UsernameTaken(f"username {username!r} is already registered") from None
    return {"user_id": cur.lastrowid, "username": username}


@sync_app.task(name="mplogin.sync.authenticate")
def authenticate(username: str, password: str) -> dict:
    """Check a password and open a session."""
    check_text(username, "username")
    check_text(password, "password")
    with service.storage.connect() as db:
        row = db.execute(
            "SELECT id, salt, password_hash FROM users WHERE username = ?", (username,)
        ).fetchone()
        if row is None or _hash(password, row["salt"]) != row["password_hash"]:
            raise InvalidCredentials(f"wrong username or password for {username!r}")
        token = secrets.token_hex(16)
        db.execute(
            "INSERT INTO sessions (token, user_id, created) VALUES (?, ?, ?)",
            (token, row["id"], time.time()),
        )
    return {"user_id": row["id"], "token": token}


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
