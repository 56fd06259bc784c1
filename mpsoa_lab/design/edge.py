"""The design's HTTP edge: RESTful endpoints that publish the services' Celery tasks.

``create_app()`` builds a FastAPI app (served by uvicorn, see :mod:`mpsoa_lab.running.edge`).
Every endpoint names one platform task; the design's router (:mod:`.routing`) sends it to
``<service>.<kind>`` through the design's apps (:func:`.apps.celery_apps_factory`):

* a **sync** endpoint publishes, then waits for the reply with a timeout (``expires`` set to
  the same timeout, so a worker never runs a request its caller gave up on); 504 on timeout,
  and the late reply stays keyed by its own task id: it never answers another request;
* an **async** endpoint answers 202 with the task id only after the broker confirmed the
  message (publisher confirms) and a queue took it (``mandatory=True``).

Each (service, kind) keeps one long-lived connection and producer (the fastest correct way
``make bench`` found), behind a lock; after any publish error it is dropped and made again.

Status codes: 422 invalid JSON or a field of the wrong type (the field is named in ``loc``);
413 a body over :data:`DEFAULT_BODY_LIMIT` bytes (counted as it arrives, chunked or not);
404 an unknown resource (or a wallet that does not exist); 409 a username already taken;
401 wrong credentials; 503 with ``Retry-After`` when the broker cannot be reached; 504 a sync
call with no reply in time; 502 a message that no queue took (a broker-side routing fault the
client cannot fix). Never a 500 with a traceback.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StrictInt

from ..plumbing.settings import redact_url

__all__ = [
    "DEFAULT_BODY_LIMIT",
    "DEFAULT_TIMEOUT",
    "RETRY_AFTER",
    "ROUTES",
    "BodyLimit",
    "EdgeError",
    "Publisher",
    "create_app",
    "error_status",
]

logger = logging.getLogger(__name__)

#: AMQP's reply code for a ``mandatory`` message that no queue took (``basic.return``).
NO_ROUTE = 312

#: Bytes a request body may hold (the edge's own choice: uvicorn has no limit).
DEFAULT_BODY_LIMIT = 16 * 1024
#: Seconds a sync endpoint waits for its reply.
DEFAULT_TIMEOUT = 5.0
#: Seconds a client is told to wait before trying again when the broker is down.
RETRY_AFTER = 5

#: Endpoint -> the platform task it publishes (the README's table of the edge).
ROUTES: dict[tuple[str, str], str] = {
    ("POST", "/users"): "mplogin.sync.register",
    ("POST", "/sessions"): "mplogin.sync.authenticate",
    ("PUT", "/wallets/{user_id}"): "mpwallet.sync.open_wallet",
    ("GET", "/wallets/{user_id}/balance"): "mpwallet.sync.get_balance",
    ("POST", "/wallets/{user_id}/deposits"): "mpwallet.sync.deposit",
    ("POST", "/ledger/entries"): "mpledger.async.record_entry",
    ("GET", "/ledger/accounts/{account}/balance"): "mpledger.sync.balance",
}

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


class Publisher:
    """One service's app of one kind, with a long-lived connection and producer."""

    def __init__(self, app: Any, connect_timeout: float = 2.0):
        self.app = app
        self.connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._conn: Any = None
        self._producer: Any = None

    def _ensure(self) -> Any:
        if self._producer is None:
            conn = self.app.connection_for_write()
            conn.ensure_connection(max_retries=1, timeout=self.connect_timeout)
            self._conn, self._producer = conn, conn.Producer()
        return self._producer

    def close(self) -> None:
        """Drop the connection (the next publish opens a new one)."""
        conn, self._conn, self._producer = self._conn, None, None
        if conn is not None:
            try:
                conn.release()
            except Exception:  # noqa: BLE001 - a broken connection is being dropped anyway
                pass

    def send(self, name: str, kwargs: dict[str, Any], **options: Any) -> Any:
        """``send_task`` on the long-lived producer; any error drops it and is raised."""
        with self._lock:
            try:
                return self.app.send_task(
                    name, kwargs=kwargs, producer=self._ensure(), retry=False, **options
                )
            except BaseException:
                self.close()
                raise


class BodyLimit:
    """ASGI middleware: 413 for a body over ``limit`` bytes, declared or counted as it arrives."""

    def __init__(self, app: Any, limit: int = DEFAULT_BODY_LIMIT):
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from starlette.exceptions import HTTPException

        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _json(send, 413, {"detail": f"body over {self.limit} bytes"})
            return
        seen = 0

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise HTTPException(413, f"body over {self.limit} bytes")
            return message

        await self.app(scope, counted, send)


async def _json(send: Any, status: int, body: dict) -> None:
    import json

    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


@dataclass
class EdgeConfig:
    sync_url: str
    async_url: str
    timeout: float = DEFAULT_TIMEOUT
    body_limit: int = DEFAULT_BODY_LIMIT

    @classmethod
    def from_env(cls) -> EdgeConfig:
        from .services._service import broker_urls

        sync_url, async_url = broker_urls()
        return cls(
            sync_url,
            async_url,
            float(os.environ.get("MPSOA_EDGE_TIMEOUT", DEFAULT_TIMEOUT)),
            int(os.environ.get("MPSOA_EDGE_BODY_LIMIT", DEFAULT_BODY_LIMIT)),
        )


class Platform:
    """The edge's publishers, one per (service, kind), made on first use."""

    def __init__(self, config: EdgeConfig):
        self.config = config
        self._publishers: dict[tuple[str, str], Publisher] = {}
        self._lock = threading.Lock()

    def publisher(self, service: str, kind: str) -> Publisher:
        with self._lock:
            if (service, kind) not in self._publishers:
                from .apps import celery_apps_factory
                from .rpc_backend import BACKEND

                sync_app, async_app = celery_apps_factory(
                    "PUBLISHER", self.config.sync_url, self.config.async_url, service
                )
                sync_app.conf.result_backend = BACKEND
                async_app.conf.broker_transport_options = {"confirm_publish": True}
                for kind_, app in (("sync", sync_app), ("async", async_app)):
                    app.conf.broker_connection_timeout = 2
                    self._publishers[(service, kind_)] = Publisher(app)
            return self._publishers[(service, kind)]

    def call(self, name: str, **kwargs: Any) -> Any:
        """A sync task: publish, wait up to the timeout, never keep the request's reply."""
        service, kind, _ = name.split(".")
        timeout = self.config.timeout
        try:
            result = self.publisher(service, kind).send(name, kwargs, expires=timeout)
        except Exception as exc:  # noqa: BLE001 - mapped to a status
            raise error_status(exc) from None
        try:
            return result.get(timeout=timeout, propagate=True)
        except Exception as exc:  # noqa: BLE001 - mapped to a status
            error = error_status(exc)
            error.task_id = result.id
            raise error from None
        finally:
            result.backend.remove_pending_result(result)

    def publish(self, name: str, **kwargs: Any) -> str:
        """An async task: return its id once confirmed by the broker and taken by a queue."""
        service, kind, _ = name.split(".")
        try:
            return self.publisher(service, kind).send(name, kwargs, mandatory=True).id
        except Exception as exc:  # noqa: BLE001 - mapped to a status
            raise error_status(exc) from None

    def describe(self) -> str:
        return f"sync {redact_url(self.config.sync_url)}, async {redact_url(self.config.async_url)}"


class Credentials(BaseModel):
    username: str = Field(min_length=1, max_length=150)
    password: str = Field(min_length=1, max_length=200)


class Amount(BaseModel):
    amount_cents: StrictInt = Field(gt=0)


class Entry(BaseModel):
    entry_id: str = Field(min_length=1, max_length=200)
    account: str = Field(min_length=1, max_length=200)
    amount_cents: StrictInt


def create_app(config: EdgeConfig | None = None) -> FastAPI:
    """The edge as a FastAPI app (``uvicorn --factory mpsoa_lab.design.edge:create_app``)."""
    config = config or EdgeConfig.from_env()
    platform = Platform(config)
    app = FastAPI(title="mpsoa-lab edge", description=__doc__)
    app.add_middleware(BodyLimit, limit=config.body_limit)
    app.state.platform = platform

    @app.exception_handler(EdgeError)
    async def _edge_error(request: Request, exc: EdgeError) -> JSONResponse:
        return JSONResponse(exc.body(), exc.status, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.error("unexpected %s on %s", type(exc).__name__, request.url.path, exc_info=exc)
        return JSONResponse({"detail": f"unexpected {type(exc).__name__}"}, 500)

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "brokers": platform.describe()}

    @app.post("/users", status_code=201)
    def register(body: Credentials) -> dict:
        return platform.call(ROUTES["POST", "/users"], **body.model_dump())

    @app.post("/sessions", status_code=201)
    def log_in(body: Credentials) -> dict:
        return platform.call(ROUTES["POST", "/sessions"], **body.model_dump())

    @app.put("/wallets/{user_id}")
    def open_wallet(user_id: int) -> dict:
        return platform.call(ROUTES["PUT", "/wallets/{user_id}"], user_id=user_id)

    @app.get("/wallets/{user_id}/balance")
    def balance(user_id: int) -> dict:
        cents = platform.call(ROUTES["GET", "/wallets/{user_id}/balance"], user_id=user_id)
        return {"user_id": user_id, "balance_cents": cents}

    @app.post("/wallets/{user_id}/deposits")
    def deposit(user_id: int, body: Amount) -> dict:
        cents = platform.call(
            ROUTES["POST", "/wallets/{user_id}/deposits"], user_id=user_id, **body.model_dump()
        )
        return {"user_id": user_id, "balance_cents": cents}

    @app.get("/ledger/accounts/{account}/balance")
    def ledger_balance(account: str) -> dict:
        route = ROUTES["GET", "/ledger/accounts/{account}/balance"]
        return {"account": account, "balance_cents": platform.call(route, account=account)}

    @app.post("/ledger/entries", status_code=202)
    def record_entry(body: Entry) -> dict:
        return {"task_id": platform.publish(ROUTES["POST", "/ledger/entries"], **body.model_dump())}

    return app
