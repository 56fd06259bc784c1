"""The services as HTTP apps: one FastAPI app per service, calling the services' own code.

A REST instance runs a service's task functions in-process (:meth:`Service.execute`, the same
functions a Celery worker runs, on the same SQLite storage, with the same execution log), so
the REST alternative and the AMQP design differ only in how a request reaches the code.

The endpoints mirror the sync tasks, on the edge's own paths (the edge can forward a request
as it came); ``POST /ledger/entries`` runs ``record_entry`` inside the request, since a REST
call has no fire and forget. Every answer carries ``X-Instance`` (which instance served it)
and ``X-Request-ID`` (the caller's, or a new one; it is the task id in the execution log).

Two knobs make one instance unlike the others, for the load experiments: ``delay_ms`` sleeps
that long in every service call (a slow instance), ``concurrency`` lets that many calls run at
once (others wait their turn, as tasks wait for a worker's pool); ``GET /health`` skips both.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ...plumbing.settings import env_float
from ..edge.app import Amount, BodyLimit, Credentials, Entry, answer_errors
from ..edge.publishing import DEFAULT_BODY_LIMIT
from ..naming import SERVICES
from ..values import AccountName, UserId
from .errors import rest_error

__all__ = ["ROUTES", "RestConfig", "create_app", "instance_app", "INSTANCE_HEADER", "REQUEST_ID"]

logger = logging.getLogger(__name__)

#: Service -> endpoint -> the task whose function it runs.
ROUTES: dict[str, dict[tuple[str, str], str]] = {
    "mplogin": {
        ("POST", "/users"): "mplogin.sync.register",
        ("POST", "/sessions"): "mplogin.sync.authenticate",
        ("POST", "/sessions/checks"): "mplogin.sync.check_session",
        ("POST", "/sessions/ends"): "mplogin.sync.end_session",
    },
    "mpwallet": {
        ("PUT", "/wallets/{user_id}"): "mpwallet.sync.open_wallet",
        ("GET", "/wallets/{user_id}/balance"): "mpwallet.sync.get_balance",
        ("POST", "/wallets/{user_id}/deposits"): "mpwallet.sync.deposit",
        ("GET", "/wallets/{user_id}/echo"): "mpwallet.sync.echo",
    },
    "mpledger": {
        ("GET", "/ledger/accounts/{account}/balance"): "mpledger.sync.balance",
        ("GET", "/ledger/entries/count"): "mpledger.sync.entry_count",
        ("POST", "/ledger/entries"): "mpledger.async.record_entry",
    },
}

#: Response header naming the instance that served the request.
INSTANCE_HEADER = "X-Instance"
#: Request and response header of the request id (the task id in the execution log).
REQUEST_ID = "X-Request-ID"


@dataclass(frozen=True)
class RestConfig:
    """One REST instance: its service, its name, and the knobs of the load experiments."""

    service: str
    instance: str = ""
    delay_ms: float = 0.0
    concurrency: int = 0
    body_limit: int = DEFAULT_BODY_LIMIT

    def __post_init__(self) -> None:
        if self.service not in SERVICES:
            from ...plumbing.errors import UnknownService

            raise UnknownService(
                f"no service {self.service!r}; known services: {', '.join(SERVICES)}"
            )
        if self.delay_ms < 0 or self.concurrency < 0:
            raise ValueError(
                f"delay_ms and concurrency must be >= 0, not {self.delay_ms}, {self.concurrency}"
            )
        if not self.instance:
            object.__setattr__(self, "instance", f"{self.service}-{os.getpid()}")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> RestConfig:
        """``MPSOA_REST_SERVICE`` (required), ``MPSOA_REST_INSTANCE``, ``MPSOA_REST_DELAY_MS``,
        ``MPSOA_REST_CONCURRENCY`` (0: no limit but uvicorn's), ``MPSOA_REST_BODY_LIMIT``."""
        env = dict(os.environ if env is None else env)
        service = env.get("MPSOA_REST_SERVICE", "")
        if not service:
            from ...plumbing.errors import SettingsError

            raise SettingsError(
                f"MPSOA_REST_SERVICE is not set: say which service this instance serves "
                f"({', '.join(SERVICES)})"
            )
        return cls(
            service,
            env.get("MPSOA_REST_INSTANCE", ""),
            env_float(env, "MPSOA_REST_DELAY_MS", 0.0, unit="milliseconds"),
            int(env_float(env, "MPSOA_REST_CONCURRENCY", 0, unit="calls")),
            int(env_float(env, "MPSOA_REST_BODY_LIMIT", DEFAULT_BODY_LIMIT, unit="bytes")),
        )


class InstanceHeaders:
    """ASGI middleware: the request id (the caller's or a new one) in ``scope["state"]``, and
    ``X-Instance`` and ``X-Request-ID`` on every answer. Plain ASGI: no per-request task."""

    def __init__(self, app: Any, instance: str):
        self.app, self.instance = app, instance.encode()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(REQUEST_ID.lower().encode())
        request_id = given.decode(errors="replace")[:100] if given else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                headers += [
                    (INSTANCE_HEADER.lower().encode(), self.instance),
                    (REQUEST_ID.lower().encode(), request_id.encode()),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


class Token(BaseModel):
    token: str = Field(max_length=200)


class Calls:
    """Runs a service's task functions for requests: the instance's delay and concurrency,
    the execution log, and an exception turned into its HTTP answer."""

    def __init__(self, config: RestConfig, service: Any):
        self.config, self.service = config, service
        self._slots = threading.BoundedSemaphore(config.concurrency) if config.concurrency else None

    def run(self, request: Request, task_name: str, **kwargs: Any) -> Any:
        if self._slots is not None:
            self._slots.acquire()
        try:
            return self.service.execute(
                task_name,
                kwargs,
                task_id=request.state.request_id,
                hostname=self.config.instance,
                delay=self.config.delay_ms / 1000,
            )
        except Exception as exc:  # noqa: BLE001 - mapped to a status
            raise rest_error(exc) from None
        finally:
            if self._slots is not None:
                self._slots.release()


def create_app(config: RestConfig, service: Any | None = None) -> FastAPI:
    """The app of one service's REST instance. ``service`` is the service's
    :class:`~mpsoa_lab.design.services._service.Service` (default: the one its module loads)."""
    if service is None:
        from ..services import load

        service = load(config.service).service
    calls = Calls(config, service)
    app = FastAPI(title=f"mpsoa-lab {config.service} (REST)", description=__doc__ or "")
    app.add_middleware(BodyLimit, limit=config.body_limit)
    app.add_middleware(InstanceHeaders, instance=config.instance)
    app.state.config, app.state.calls = config, calls

    answer_errors(app)

    @app.get("/health")
    def health() -> dict:
        return {
            "status": "ok",
            "service": config.service,
            "instance": config.instance,
            "pid": os.getpid(),
            "delay_ms": config.delay_ms,
            "concurrency": config.concurrency,
        }

    _ENDPOINTS[config.service](app, calls)
    return app


def _mplogin(app: FastAPI, calls: Calls) -> None:
    routes = ROUTES["mplogin"]

    @app.post("/users", status_code=201)
    def register(request: Request, body: Credentials) -> dict:
        return calls.run(request, routes["POST", "/users"], **body.model_dump())

    @app.post("/sessions", status_code=201)
    def log_in(request: Request, body: Credentials) -> dict:
        return calls.run(request, routes["POST", "/sessions"], **body.model_dump())

    # The edge's two session calls (its mplogin check, and log out), for its REST platform:
    # internal, as the services' queues are; the token travels in the body, never the URL.
    @app.post("/sessions/checks")
    def check_session(request: Request, body: Token) -> dict:
        return calls.run(request, routes["POST", "/sessions/checks"], token=body.token)

    @app.post("/sessions/ends")
    def end_session(request: Request, body: Token) -> dict:
        return calls.run(request, routes["POST", "/sessions/ends"], token=body.token)


def _mpwallet(app: FastAPI, calls: Calls) -> None:
    routes = ROUTES["mpwallet"]

    @app.put("/wallets/{user_id}")
    def open_wallet(request: Request, user_id: UserId) -> dict:
        return calls.run(request, routes["PUT", "/wallets/{user_id}"], user_id=user_id)

    @app.get("/wallets/{user_id}/balance")
    def balance(request: Request, user_id: UserId) -> dict:
        cents = calls.run(request, routes["GET", "/wallets/{user_id}/balance"], user_id=user_id)
        return {"user_id": user_id, "balance_cents": cents}

    @app.get("/wallets/{user_id}/echo")
    def echo(user_id: UserId) -> dict:
        # The task's function alone: no delay, no slot, no execution log, as the worker's echo.
        route = routes["GET", "/wallets/{user_id}/echo"]
        return {
            "user_id": user_id,
            "echoed": calls.service.execute(route, {"user_id": user_id}, record=False),
        }

    @app.post("/wallets/{user_id}/deposits")
    def deposit(request: Request, user_id: UserId, body: Amount) -> dict:
        route = routes["POST", "/wallets/{user_id}/deposits"]
        cents = calls.run(request, route, user_id=user_id, **body.model_dump())
        return {"user_id": user_id, "balance_cents": cents}


def _mpledger(app: FastAPI, calls: Calls) -> None:
    routes = ROUTES["mpledger"]

    @app.get("/ledger/accounts/{account}/balance")
    def balance(request: Request, account: AccountName) -> dict:
        route = routes["GET", "/ledger/accounts/{account}/balance"]
        return {"account": account, "balance_cents": calls.run(request, route, account=account)}

    @app.get("/ledger/entries/count")
    def entry_count(request: Request, account: AccountName | None = None) -> dict:
        route = routes["GET", "/ledger/entries/count"]
        return {"account": account, "entries": calls.run(request, route, account=account)}

    @app.post("/ledger/entries", status_code=201)
    def record_entry(request: Request, body: Entry) -> JSONResponse:
        first = calls.run(request, routes["POST", "/ledger/entries"], **body.model_dump())
        # 201 when this request stored the entry, 200 when an earlier one had (idempotent).
        return JSONResponse({"entry_id": body.entry_id, "first": first}, 201 if first else 200)


_ENDPOINTS = {"mplogin": _mplogin, "mpwallet": _mpwallet, "mpledger": _mpledger}


def instance_app() -> FastAPI:
    """The app of a REST instance process (``uvicorn --factory
    mpsoa_lab.design.rest:instance_app``): its config from the environment
    (:meth:`RestConfig.from_env`), and no broker in this process."""
    from ..services._service import without_broker

    config = RestConfig.from_env()
    without_broker()
    return create_app(config)
