"""What the edge answers when something goes wrong: an HTTP status for every exception.

A service's exception crosses the broker as JSON and is matched by its class name; the
broker's and the client library's by their type or AMQP reply code. Anything else is a 500
without a traceback (the traceback goes to the edge's log).

A request that does not validate is a 422 whose body keeps FastAPI's shape (``{"detail":
[{"loc", "msg", "type", ...}]}``, :func:`validation_details`) but never echoes an input that
JSON cannot hold: FastAPI's own answer echoed a NaN or a lone surrogate back and failed to
encode it, a 500.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

from ..values import json_safe

__all__ = [
    "EdgeError",
    "error_status",
    "unauthorized",
    "CHALLENGE",
    "validation_details",
    "NO_ROUTE",
    "RETRY_AFTER",
    "SERVICE_ERRORS",
]

logger = logging.getLogger(__name__)

#: AMQP's reply code for a ``mandatory`` message that no queue took (``basic.return``).
NO_ROUTE = 312
#: Seconds a client is told to wait before trying again when the broker is down.
RETRY_AFTER = 5

#: A service's exception, by class name (it crosses the broker as JSON) -> HTTP status.
SERVICE_ERRORS = {
    "UsernameTaken": 409,
    "InvalidCredentials": 401,
    "SessionRefused": 401,  # malformed, forged, expired or ended (mpsoa_lab.design.sessions)
    "WalletNotFound": 404,
    "ValueError": 422,
    "InvalidInput": 422,  # a value outside the platform's bounds (mpsoa_lab.design.values)
    "LimitReached": 409,  # a valid amount the balance cannot take: the state refuses it
}

#: What every 401 carries (RFC 9110 section 11.6.1): how to authenticate, here a bearer token.
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="mpsoa-lab"'}

#: What a non-finite number in a request is told: Python's JSON parser accepts NaN and
#: Infinity, JSON does not.
NON_FINITE = "JSON (RFC 8259) has no NaN or Infinity: send a finite number"


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
        status = SERVICE_ERRORS[name]
        return EdgeError(status, str(exc), dict(CHALLENGE) if status == 401 else None)
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


def unauthorized(detail: str) -> EdgeError:
    """A 401 with its challenge."""
    return EdgeError(401, detail, dict(CHALLENGE))


def validation_details(errors: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """FastAPI's validation errors as a JSON-safe list: each error's ``loc``, ``msg``, ``type``,
    its ``ctx`` as text, and its ``input`` only when it is a short text or a plain number."""
    details = []
    for error in errors:
        value, msg = error.get("input"), str(error.get("msg", ""))
        if isinstance(value, float) and not math.isfinite(value):
            msg = f"{msg}; {NON_FINITE}"
        item: dict[str, Any] = {
            "type": str(error.get("type", "")),
            "loc": [part if isinstance(part, int) else str(part) for part in error.get("loc", ())],
            "msg": json_safe(msg),
        }
        if _shown(value):
            item["input"] = json_safe(value)
        if error.get("ctx"):
            item["ctx"] = {str(k): json_safe(_plain(v)) for k, v in error["ctx"].items()}
        details.append(item)
    return details


def _shown(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) <= 100
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or (isinstance(value, int) and abs(value) < 2**64)


def _plain(value: Any) -> Any:
    return value if isinstance(value, (str, int, float)) else str(value)
