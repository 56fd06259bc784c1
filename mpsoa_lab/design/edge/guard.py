"""Who may do what at the edge: the session a request carries, checked one of two ways.

Every wallet and ledger endpoint needs a session (``Authorization: Bearer <token>``, the token
``POST /sessions`` returns): without one, or with one that is malformed, forged, expired or
ended, the edge answers 401 with ``WWW-Authenticate: Bearer``.

* **Wallets** are their owner's: a ``user`` session reads and moves wallet ``{user_id}`` only
  when it is its own user id; any other wallet, and any wallet for an ``operator`` session, is
  403. An id is never a secret, so the session, not the path, says whose money moves.
* **The ledger** is the platform's book, not a user's: its entries record what the platform
  did, keyed by ids the platform chooses, and its accounts are the platform's. A user who could
  write an entry could book anything; one who could read any account could read the platform's.
  So it is closed to users (403) and open to ``operator`` sessions, whose accounts are made only
  inside the platform (:func:`mpsoa_lab.design.services.mplogin.register` with ``role``).

How a session is checked (``MPSOA_EDGE_SESSIONS``, see :mod:`mpsoa_lab.design.sessions`):
:class:`TokenCheck` verifies the token's signature and expiry in the edge, with no call;
:class:`LoginCheck` asks ``mplogin.sync.check_session`` on every request.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ..sessions import Session, SessionRefused, key_from_env, verify
from .errors import EdgeError, unauthorized

__all__ = [
    "SessionCheck",
    "TokenCheck",
    "LoginCheck",
    "session_check_for",
    "own_wallet",
    "operator_only",
    "CHECK_TASK",
    "END_TASK",
]

CHECK_TASK = "mplogin.sync.check_session"
END_TASK = "mplogin.sync.end_session"


class SessionCheck:
    """How the edge learns whose a token is, and how it ends a session."""

    CHECK = ""

    def __init__(self, platform: Any):
        self.platform = platform

    async def session(self, token: str) -> Session:
        raise NotImplementedError

    async def end(self, token: str) -> Session:
        """End the session (log out) at ``mplogin``; return the session that was ended."""
        session = await self.session(token)
        await self.platform.acall(END_TASK, token=token)
        return session


class TokenCheck(SessionCheck):
    """The edge checks the token itself: signature, expiry, and the sessions ended here.

    A session ended through this edge is refused by it at once (kept until it would have
    expired anyway); another edge instance learns of it only when the token expires: the
    price of asking nobody."""

    CHECK = "token"

    def __init__(self, platform: Any, key: bytes | None = None):
        super().__init__(platform)
        self.key = key if key is not None else key_from_env()
        self._ended: dict[str, int] = {}
        self._lock = threading.Lock()

    async def session(self, token: str) -> Session:
        try:
            session = verify(self.key, token)
        except SessionRefused as refused:
            raise unauthorized(str(refused)) from None
        with self._lock:
            if session.session_id in self._ended:
                raise unauthorized(str(SessionRefused("ended")))
        return session

    async def end(self, token: str) -> Session:
        session = await super().end(token)
        now = time.time()
        with self._lock:
            self._ended = {sid: exp for sid, exp in self._ended.items() if exp > now}
            self._ended[session.session_id] = session.expires
        return session


class LoginCheck(SessionCheck):
    """The edge asks ``mplogin`` on every request: one more sync call each time."""

    CHECK = "mplogin"

    async def session(self, token: str) -> Session:
        answer = await self.platform.acall(CHECK_TASK, token=token)
        return Session(
            int(answer["user_id"]), answer["role"], int(answer["expires"]), answer["session_id"]
        )


def session_check_for(check: str, platform: Any) -> SessionCheck:
    """The :class:`SessionCheck` that ``check`` (``token`` or ``mplogin``) names."""
    return {"token": TokenCheck, "mplogin": LoginCheck}[check](platform)


def own_wallet(session: Session, user_id: int) -> None:
    """403 unless ``session`` is the user whose wallet ``user_id`` is."""
    if session.role != "user":
        raise EdgeError(403, "wallets are their owners': an operator's session moves no money")
    if session.user_id != user_id:
        raise EdgeError(
            403,
            f"this session is user {session.user_id}'s: it may use wallet "
            f"{session.user_id} only, not {user_id}",
        )


def operator_only(session: Session) -> None:
    """403 unless ``session`` is an operator's: the ledger is the platform's book."""
    if session.role != "operator":
        raise EdgeError(
            403,
            "the ledger is the platform's book: only an operator's session may read or write it",
        )
