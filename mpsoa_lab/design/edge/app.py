"""The edge's HTTP side: FastAPI endpoints, the body limit, and the answers for errors."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ..values import AccountName, AmountCents, EntryCents, EntryId, Password, UserId, Username
from .errors import EdgeError, validation_details
from .publishing import DEFAULT_BODY_LIMIT, EdgeConfig, Platform
from .waiting import platform_for

__all__ = ["ROUTES", "Amount", "BodyLimit", "answer_errors", "Credentials", "Entry", "create_app"]

logger = logging.getLogger(__name__)

#: Endpoint -> the platform task it publishes (the README's table of the edge).
ROUTES: dict[tuple[str, str], str] = {
    ("POST", "/users"): "mplogin.sync.register",
    ("POST", "/sessions"): "mplogin.sync.authenticate",
    ("PUT", "/wallets/{user_id}"): "mpwallet.sync.open_wallet",
    ("GET", "/wallets/{user_id}/balance"): "mpwallet.sync.get_balance",
    ("POST", "/wallets/{user_id}/deposits"): "mpwallet.sync.deposit",
    ("GET", "/wallets/{user_id}/echo"): "mpwallet.sync.echo",
    ("POST", "/ledger/entries"): "mpledger.async.record_entry",
    ("GET", "/ledger/accounts/{account}/balance"): "mpledger.sync.balance",
}


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


# The request bodies (the REST alternative's services take the same ones); what each field
# accepts is defined once, for the services' tasks too, in mpsoa_lab.design.values.
class Credentials(BaseModel):
    username: Username
    password: Password


class Amount(BaseModel):
    amount_cents: AmountCents


class Entry(BaseModel):
    entry_id: EntryId
    account: AccountName
    amount_cents: EntryCents


def answer_errors(app: FastAPI) -> None:
    """An :class:`EdgeError` answers with its status; a request that does not validate a 422
    listing each error (never echoing an input JSON cannot hold, such as NaN); anything else a
    500 without a traceback (the traceback goes to the log)."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_details(exc.errors())}, 422)

    @app.exception_handler(EdgeError)
    async def _edge_error(request: Request, exc: EdgeError) -> JSONResponse:
        return JSONResponse(exc.body(), exc.status, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.error("unexpected %s on %s", type(exc).__name__, request.url.path, exc_info=exc)
        return JSONResponse({"detail": f"unexpected {type(exc).__name__}"}, 500)


def create_app(config: EdgeConfig | None = None, platform: Platform | None = None) -> FastAPI:
    """The edge as a FastAPI app (``uvicorn --factory mpsoa_lab.design.edge:create_app``).

    ``platform`` is how requests reach the services and how a sync call waits for its reply;
    by default the one ``config.wait`` (``MPSOA_EDGE_WAIT``) names, see :mod:`.waiting`."""
    config = platform.config if platform is not None else (config or EdgeConfig.from_env())
    platform = platform or platform_for(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await platform.startup()
        try:
            yield
        finally:
            await platform.shutdown()

    app = FastAPI(title="mpsoa-lab edge", description=__doc__ or "", lifespan=lifespan)
    app.add_middleware(BodyLimit, limit=config.body_limit)
    app.state.platform = platform

    answer_errors(app)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "wait": platform.WAIT, "brokers": platform.describe()}

    @app.get("/stats")
    async def stats(reset: bool = False) -> dict:
        """Sync calls in flight now and at most since the last ``?reset=true``."""
        return platform.stats(reset)

    @app.post("/users", status_code=201)
    async def register(body: Credentials) -> dict:
        return await platform.acall(ROUTES["POST", "/users"], **body.model_dump())

    @app.post("/sessions", status_code=201)
    async def log_in(body: Credentials) -> dict:
        return await platform.acall(ROUTES["POST", "/sessions"], **body.model_dump())

    @app.put("/wallets/{user_id}")
    async def open_wallet(user_id: UserId) -> dict:
        return await platform.acall(ROUTES["PUT", "/wallets/{user_id}"], user_id=user_id)

    @app.get("/wallets/{user_id}/balance")
    async def balance(user_id: UserId) -> dict:
        route = ROUTES["GET", "/wallets/{user_id}/balance"]
        return {"user_id": user_id, "balance_cents": await platform.acall(route, user_id=user_id)}

    @app.get("/wallets/{user_id}/echo")
    async def echo(user_id: UserId) -> dict:
        """The wallet service answers at once, touching nothing: the middleware's own cost."""
        route = ROUTES["GET", "/wallets/{user_id}/echo"]
        return {"user_id": user_id, "echoed": await platform.acall(route, user_id=user_id)}

    @app.post("/wallets/{user_id}/deposits")
    async def deposit(user_id: UserId, body: Amount) -> dict:
        route = ROUTES["POST", "/wallets/{user_id}/deposits"]
        cents = await platform.acall(route, user_id=user_id, **body.model_dump())
        return {"user_id": user_id, "balance_cents": cents}

    @app.get("/ledger/accounts/{account}/balance")
    async def ledger_balance(account: AccountName) -> dict:
        route = ROUTES["GET", "/ledger/accounts/{account}/balance"]
        return {"account": account, "balance_cents": await platform.acall(route, account=account)}

    @app.post("/ledger/entries", status_code=202)
    async def record_entry(body: Entry) -> dict:
        route = ROUTES["POST", "/ledger/entries"]
        return {"task_id": await platform.apublish(route, **body.model_dump())}

    return app
