"""The design's HTTP edge: RESTful endpoints that publish the services' Celery tasks.

``create_app()`` builds a FastAPI app (served by uvicorn, see :mod:`mpsoa_lab.running.edge`).
Every endpoint names one platform task; the design's router (:mod:`.routing`) sends it to
``<service>.<kind>`` through the design's apps (:func:`.apps.celery_apps_factory`):

* a **sync** endpoint publishes, then waits for the reply with a timeout (``expires`` set to
  the same timeout, so a worker never runs a request its caller gave up on); 504 on timeout,
  and the late reply stays keyed by its own task id: it never answers another request;
* an **async** endpoint answers 202 with the task id only after the broker confirmed the
  message (publisher confirms) and a queue took it (``mandatory=True``).

How a sync endpoint waits (``MPSOA_EDGE_WAIT``, :mod:`.waiting`): ``shared`` (default) one
reply queue and consumer for the whole edge, awaited without a thread; ``threadpool`` a
blocking ``.get()`` in uvicorn's threadpool (a plain ``def`` endpoint); ``event-loop`` a blocking
``.get()`` inside an ``async def`` endpoint (the trap notebook 08 measures).

Who may do what (:mod:`.guard`): every wallet and ledger endpoint needs a session, the token
``POST /sessions`` returns sent as ``Authorization: Bearer <token>``; a user uses only their own
wallet, the ledger (the platform's book) only an operator; ``DELETE /sessions/current`` logs
out. The edge checks a session by its signature (``MPSOA_EDGE_SESSIONS=token``, the default) or
asks ``mplogin`` on every request (``mplogin``): :mod:`mpsoa_lab.design.sessions`.

The OpenAPI document (``GET /openapi.json``) is the contract: each endpoint lists every status
it can answer, with a typed body for each, and the ``session`` security scheme.

Each (service, kind) keeps one long-lived connection and producer (the fastest correct way
``make bench`` found), behind a lock; after any publish error it is dropped and made again.

Status codes: 422 invalid JSON, a field of the wrong type or past its bound, in the body or the
path (the field is named in ``loc``; what each field accepts is :mod:`mpsoa_lab.design.values`;
a NaN or Infinity is told JSON has none), or a value the service itself refuses
(``InvalidInput``); 400 a body that is not UTF-8; 413 a body over :data:`DEFAULT_BODY_LIMIT`
bytes (counted as it arrives, chunked or not); 404 an unknown resource (or a wallet that does
not exist); 409 a username already taken, or a deposit that would take a balance past 2**53 - 1
(``LimitReached``: refused, the balance unchanged); 401 wrong credentials, or no session, or one
malformed, forged, expired or ended (with ``WWW-Authenticate: Bearer``); 403 a session that may
not use the resource (another user's wallet, the ledger for a user); 503 with
``Retry-After`` when the broker cannot be reached; 504 a sync call with no reply in time; 502 a
message that no queue took (a broker-side routing fault the client cannot fix). Never a 500
with a traceback.
"""

from __future__ import annotations

from .app import ROUTES, BodyLimit, create_app
from .errors import NO_ROUTE, RETRY_AFTER, EdgeError, error_status
from .guard import LoginCheck, SessionCheck, TokenCheck, session_check_for
from .publishing import (
    DEFAULT_BODY_LIMIT,
    DEFAULT_TIMEOUT,
    DEFAULT_WAIT,
    WAITS,
    EdgeConfig,
    Platform,
    Publisher,
)
from .replies import REPLY_QUEUE_PREFIX, SharedReplies
from .rest_platform import REST_CALLS, RestPlatform
from .waiting import PLATFORMS, BlockingPlatform, SharedRepliesPlatform, platform_for

__all__ = [
    "DEFAULT_BODY_LIMIT",
    "DEFAULT_TIMEOUT",
    "DEFAULT_WAIT",
    "PLATFORMS",
    "REPLY_QUEUE_PREFIX",
    "REST_CALLS",
    "RestPlatform",
    "WAITS",
    "BlockingPlatform",
    "LoginCheck",
    "SessionCheck",
    "TokenCheck",
    "session_check_for",
    "SharedReplies",
    "SharedRepliesPlatform",
    "platform_for",
    "NO_ROUTE",
    "RETRY_AFTER",
    "ROUTES",
    "BodyLimit",
    "EdgeConfig",
    "EdgeError",
    "Platform",
    "Publisher",
    "create_app",
    "error_status",
]
