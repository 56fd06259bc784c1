"""Sessions and passwords: who a request comes from, and how a password is kept.

**A session token** is issued by ``mplogin.sync.authenticate`` and sent by a client as
``Authorization: Bearer <token>``. It is signed, so whoever holds the key can check it without
asking anyone::

    v1.<user_id>.<role>.<expires>.<session_id>.<signature>

``expires`` is a Unix time in whole seconds, ``session_id`` 32 hex digits (the row
``mplogin`` keeps, where a session is ended), ``signature`` the HMAC-SHA256 of everything
before it under the session key, in unpadded base64url. :func:`verify` checks the shape, the
signature (in constant time) and the expiry, and says which failed (the edge's 401 says it too:
"expired" tells a client to log in again, and none of the reasons helps a forger).

**Two ways the edge checks a session** (``MPSOA_EDGE_SESSIONS``, :data:`CHECKS`), measured side
by side in notebook 08:

* ``token`` (the default): the edge verifies the token itself, with the key; no call, and the
  edge keeps answering while ``mplogin`` is down or slow. A session ended (logged out) through
  this edge is refused at once by it; another edge instance refuses it only when it expires.
* ``mplogin``: the edge asks ``mplogin.sync.check_session`` on every request: one more sync
  call each time, and every request fails (504 or 503) while ``mplogin`` cannot answer; an
  ended session is refused by every edge at once.

**The key** is ``MPSOA_SESSION_KEY`` (at least 32 characters) when set, as on machines that
run the edge and ``mplogin`` apart; otherwise a random key the lab keeps in ``session-key``
under ``MPSOA_LAB_HOME`` (made on first use, readable by its owner only), which every process of
the lab on this machine reads.

**Roles**: ``user`` (anyone who signed up through ``POST /users``) and ``operator`` (made only
inside the platform, by a publisher of ``mplogin.sync.register``; the edge never makes one).

**Passwords** are hashed with PBKDF2-HMAC-SHA256 at :data:`LAB_PBKDF2_ITERATIONS` iterations by
default, few on purpose: the lab measures the middleware, and a login at the recommended work
factor costs about a third of a second of CPU on this kind of machine. The work factor is one
setting, ``MPSOA_PBKDF2_ITERATIONS``; the recommended design uses
:data:`RECOMMENDED_PBKDF2_ITERATIONS` (600,000, OWASP's Password Storage Cheat Sheet for
PBKDF2-HMAC-SHA256, matching NIST SP 800-132's advice to choose it as large as the service
tolerates). Each stored hash carries its own iteration count, so a changed setting keeps older
passwords valid.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..plumbing.errors import SettingsError
from ..plumbing.settings import env_float

__all__ = [
    "CHECKS",
    "DEFAULT_CHECK",
    "DEFAULT_TTL",
    "KEY_ENV",
    "LAB_PBKDF2_ITERATIONS",
    "RECOMMENDED_PBKDF2_ITERATIONS",
    "ROLES",
    "Session",
    "SessionRefused",
    "authorization",
    "hash_password",
    "issue",
    "key_from_env",
    "password_matches",
    "pbkdf2_iterations",
    "session_ttl",
    "verify",
]

#: How the edge checks a session: by the token's signature, or by a call to ``mplogin``.
CHECKS = ("token", "mplogin")
DEFAULT_CHECK = "token"
#: Seconds a session lasts (``MPSOA_SESSION_TTL``): 15 minutes, as short-lived tokens go.
DEFAULT_TTL = 900.0
ROLES = ("user", "operator")
KEY_ENV = "MPSOA_SESSION_KEY"
#: The lab's work factor: few iterations, so that a login measures the middleware.
LAB_PBKDF2_ITERATIONS = 1_000
#: The recommended design's: OWASP's current figure for PBKDF2-HMAC-SHA256.
RECOMMENDED_PBKDF2_ITERATIONS = 600_000

_VERSION = "v1"
_TOKEN = re.compile(
    r"v1\.(?P<user_id>[1-9][0-9]{0,15})\.(?P<role>user|operator)\.(?P<expires>[0-9]{1,12})"
    r"\.(?P<session_id>[0-9a-f]{32})\.(?P<signature>[A-Za-z0-9_-]{43})"
)
_KEY_FILE = "session-key"
_MIN_KEY = 32


class SessionRefused(ValueError):
    """Not a session of this platform, or no longer one; ``reason`` says which for the log
    and the tests: ``malformed``, ``signature``, ``expired``, ``ended`` or ``unknown``."""

    def __init__(self, reason: str):
        super().__init__(reason)  # the one argument, so that Celery rebuilds it as it was raised
        self.reason = reason

    def __str__(self) -> str:
        return f"no valid session ({self.reason}): log in again with POST /sessions"


@dataclass(frozen=True)
class Session:
    """Who a request comes from, as its token says."""

    user_id: int
    role: str
    expires: int
    session_id: str


def _sign(key: bytes, text: str) -> str:
    digest = hmac.new(key, text.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def issue(
    key: bytes, user_id: int, role: str, ttl: float, now: float | None = None
) -> tuple[str, Session]:
    """A new signed token for ``user_id`` with ``role``, valid ``ttl`` seconds from ``now``."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    now = time.time() if now is None else now
    session = Session(int(user_id), role, int(now + ttl), secrets.token_hex(16))
    body = f"{_VERSION}.{session.user_id}.{role}.{session.expires}.{session.session_id}"
    return f"{body}.{_sign(key, body)}", session


def verify(key: bytes, token: str, now: float | None = None) -> Session:
    """The session a token stands for; :class:`SessionRefused` when it is malformed, not
    signed with ``key``, or expired (the signature is compared in constant time)."""
    match = _TOKEN.fullmatch(token) if isinstance(token, str) else None
    if match is None:
        raise SessionRefused("malformed")
    body, signature = token.rsplit(".", 1)
    if not hmac.compare_digest(_sign(key, body), signature):
        raise SessionRefused("signature")
    session = Session(
        int(match["user_id"]), match["role"], int(match["expires"]), match["session_id"]
    )
    if session.expires <= (time.time() if now is None else now):
        raise SessionRefused("expired")
    return session


def authorization(token: str) -> dict[str, str]:
    """The header that carries ``token`` to the edge."""
    return {"Authorization": f"Bearer {token}"}


def key_from_env(env: Mapping[str, str] | None = None) -> bytes:
    """The session key: ``MPSOA_SESSION_KEY``, or the lab's own in ``MPSOA_LAB_HOME``."""
    env = os.environ if env is None else env
    given = env.get(KEY_ENV, "")
    if given:
        if len(given) < _MIN_KEY:
            raise SettingsError(
                f"{KEY_ENV} has {len(given)} characters: a session key needs at least "
                f"{_MIN_KEY} (e.g. python -c 'import secrets; print(secrets.token_hex(32))'), "
                "or unset it to use the lab's own"
            )
        return given.encode()
    from ..plumbing.settings import load

    return _lab_key(Path(load(env).home) / _KEY_FILE)


def _lab_key(path: Path) -> bytes:
    """Read the lab's key, making it first (owner-only, written once even by two at once)."""
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}")  # its own
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(32))
    try:
        os.link(partial, path)  # fails if another process made it first: theirs is kept
    except FileExistsError:
        pass
    finally:
        partial.unlink()
    return path.read_bytes().strip()


def session_ttl(env: Mapping[str, str] | None = None) -> float:
    """Seconds a new session lasts (``MPSOA_SESSION_TTL``, default 900)."""
    env = os.environ if env is None else env
    return env_float(env, "MPSOA_SESSION_TTL", DEFAULT_TTL, positive=True)


def pbkdf2_iterations(env: Mapping[str, str] | None = None) -> int:
    """The work factor new password hashes get (``MPSOA_PBKDF2_ITERATIONS``)."""
    env = os.environ if env is None else env
    value = env_float(env, "MPSOA_PBKDF2_ITERATIONS", LAB_PBKDF2_ITERATIONS, unit="iterations")
    if value != int(value) or not 1 <= value <= 10_000_000:
        raise SettingsError(
            f"MPSOA_PBKDF2_ITERATIONS={value:g}: give a whole number from 1 to 10,000,000 "
            f"(the lab's {LAB_PBKDF2_ITERATIONS}, the recommended "
            f"{RECOMMENDED_PBKDF2_ITERATIONS})"
        )
    return int(value)


def hash_password(password: str, salt: str, iterations: int) -> str:
    """``pbkdf2_sha256$<iterations>$<hex digest>``: the hash keeps its own work factor."""
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return f"pbkdf2_sha256${iterations}${digest.hex()}"


def password_matches(password: str, salt: str, stored: str) -> bool:
    """Whether ``password`` hashes to ``stored`` (compared in constant time). A hash stored
    before hashes carried their work factor (plain hex) was made at the lab's 1,000."""
    kind, _, rest = stored.partition("$")
    if kind == "pbkdf2_sha256":
        iterations, _, expected = rest.partition("$")
    else:
        iterations, expected = str(LAB_PBKDF2_ITERATIONS), stored
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), int(iterations))
    return hmac.compare_digest(digest.hex(), expected)
