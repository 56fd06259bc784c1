"""What a REST instance answers when a service call fails: the edge's statuses, less the broker.

A service's own exception is mapped by class name with the edge's table
(:data:`mpsoa_lab.design.edge.errors.SERVICE_ERRORS`: 409 a username taken or a balance at its
bound (``LimitReached``), 401 wrong credentials, 404 no wallet, 422 a value the service refuses
(``InvalidInput``)), so a client sees the same status whichever way the call went. There is no
broker here to be unreachable (the edge's 503) or late (504): a busy SQLite file is a 503 with
``Retry-After``, anything else a 500 without a traceback (the traceback goes to the instance's
log).
"""

from __future__ import annotations

import logging
import sqlite3

from ..edge.errors import SERVICE_ERRORS, EdgeError

__all__ = ["rest_error", "STORAGE_RETRY_AFTER"]

logger = logging.getLogger(__name__)

#: Seconds a client is told to wait when the service's storage is locked.
STORAGE_RETRY_AFTER = 1


def rest_error(exc: BaseException) -> EdgeError:
    """The HTTP answer for an exception raised by a service's code run in-process."""
    if isinstance(exc, EdgeError):
        return exc
    name = type(exc).__name__
    if name in SERVICE_ERRORS:
        return EdgeError(SERVICE_ERRORS[name], str(exc))
    if isinstance(exc, sqlite3.OperationalError):
        logger.warning("storage: %s", exc)
        return EdgeError(
            503, "the service's storage is busy", {"Retry-After": str(STORAGE_RETRY_AFTER)}
        )
    logger.error("unexpected %s: %s", name, exc, exc_info=exc)
    return EdgeError(500, f"unexpected {name}")
