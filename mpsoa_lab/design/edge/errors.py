"""What the edge answers when something goes wrong: an HTTP status for every exception.

A service's exception crosses the broker as JSON and is matched by its class name; the
broker's and the client library's by their type or AMQP reply code. Anything else is a 500
without a traceback (the traceback goes to the edge's log).
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["EdgeError", "error_status", "NO_ROUTE", "RETRY_AFTER", "SERVICE_ERRORS"]

logger = logging.getLogger(__name__)

#: AMQP's reply code for a ``mandatory`` message that no queue took (``basic.return``).
NO_ROUTE = 312
#: Seconds a client is told to wait before trying again when the broker is down.
RETRY_AFTER = 5

#: A service's exception, by class name (it crosses the broker as JSON) -> HTTP status.
SERVICE_ERRORS = {
    "UsernameTaken": 409,
    "InvalidCredentials": 401,
    "WalletNotFound": 404,
    "ValueError": 422,
}


class EdgeError(Exception):
    """An answer other than success: its HTTP status, a detail, and headers."""

    def __init__(
        self,
        status: int,
        detail: str,
        headers: dict[str, str] | None = None,
        task_id: str | None = None,
    ):
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers or {}
        self.task_id = task_id

    def body(self) -> dict[str, Any]:
        """The JSON answer: the detail, and the task id when a task was published."""
        return {"detail": self.detail, **({"task_id": self.task_id} if self.task_id else {})}


def error_status(exc: BaseException) -> EdgeError:
    """What the edge answers for an exception raised while publishing or waiting."""
    name = type(exc).__name__
    if isinstance(exc, EdgeError):
        return exc
    if name in SERVICE_ERRORS:
        return EdgeError(SERVICE_ERRORS[name], str(exc))
    if name == "TimeoutError" and type(exc).__module__.startswith("celery"):
        return EdgeError(504, "the service did not answer in time")
    if name in ("NoRoute", "MessageNacked") or getattr(exc, "reply_code", None) == NO_ROUTE:
        return EdgeError(502, f"no queue took the message ({exc})")
    if isinstance(exc, OSError) or name in (
        "OperationalError",
        "ConnectionError",
        "RecoverableConnectionError",
    ):
        return EdgeError(503, "the broker cannot be reached", {"Retry-After": str(RETRY_AFTER)})
    logger.error("unexpected %s: %s", name, exc, exc_info=exc)  # the log has it, not the client
    return EdgeError(500, f"unexpected {name}")
