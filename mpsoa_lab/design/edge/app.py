"""The edge's HTTP side: FastAPI endpoints, the body limit, and the answers for errors."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Response, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from ..sessions import Session
from ..values import AccountName, AmountCents, EntryCents, EntryId, Password, UserId, Username
from .errors import EdgeError, unauthorized, validation_details
from .guard import operator_only, own_wallet, session_check_for
from .publishing import DEFAULT_BODY_LIMIT, EdgeConfig, Platform
from .waiting import platform_for

__all__ = [
    "ROUTES",
    "STATUS_TEXT",
    "Amount",
    "BodyLimit",
    "answer_errors",
    "Credentials",
    "Entry",
    "ErrorBody",
    "ValidationErrorBody",
    "create_app",
]

logger = logging.getLogger(__name__)

#: Endpoint -> the platform task it publishes (the README's table of the edge).
ROUTES: dict[tuple[str, str], str] = {
    ("POST", "/users"): "mplogin.sync.register",
    ("POST", "/sessions"): "mplogin.sync.authenticate",
    ("DELETE", "/sessions/current"): "mplogin.sync.end_session",
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


# The answers: every body the edge sends, success and error alike, is one of these (the
# OpenAPI document lists, per endpoint, each status it can answer and its model).
class UserCreated(BaseModel):
    user_id: int
    username: str
    role: str


class SessionOpened(BaseModel):
    user_id: int
    role: str
    token: str = Field(description="send it as Authorization: Bearer <token>")
    expires: int = Field(description="Unix time in seconds after which the token is refused")


class WalletBalance(BaseModel):
    user_id: int
    balance_cents: int


class Echoed(BaseModel):
    user_id: int
    echoed: int


class AccountBalance(BaseModel):
    account: str
    balance_cents: int


class Accepted(BaseModel):
    task_id: str = Field(description="the published task's id (its entry is stored once)")


class Health(BaseModel):
    status: str
    wait: str
    sessions: str
    brokers: str


class Stats(BaseModel):
    wait: str
    in_flight: int
    max_in_flight: int
    threads: int


class ErrorBody(BaseModel):
    """Every error but a validation error: what went wrong, and the task's id when one was
    published (a sync call that timed out may still run)."""

    detail: str
    task_id: str | None = None


class ValidationItem(BaseModel):
    type: str
    loc: list[str | int]
    msg: str
    input: Any = None
    ctx: dict[str, Any] | None = None


class ValidationErrorBody(BaseModel):
    """A 422: each field that did not validate (FastAPI's shape, never echoing what JSON
    cannot hold)."""

    detail: list[ValidationItem]


#: What each status means, for the OpenAPI document (one text per status, every endpoint).
STATUS_TEXT = {
    400: "the body is not UTF-8 JSON the edge can read",
    401: "no session, or one that is malformed, forged, expired or ended (log in again)",
    403: "the session may not use this resource (another user's wallet; the ledger)",
    404: "no such wallet",
    409: "the state refuses it (a username taken; a balance past 2**53 - 1)",
    413: "the body is over the edge's limit (MPSOA_EDGE_BODY_LIMIT)",
    422: "a field is missing, of the wrong type or past its bound",
    502: "no queue took the message (a routing fault on the platform's side)",
    503: "the broker or the service cannot be reached: try again after Retry-After seconds",
    504: "the service did not answer in time (the call may still run; its task_id is given)",
}
_CALL = (502, 503, 504)
_SESSION = (401, 403, *_CALL)  # the mplogin check is itself a sync call


def _answers(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of an endpoint that can answer ``statuses`` besides its success."""
    return {
        status: {
            "model": ValidationErrorBody if status == 422 else ErrorBody,
            "description": STATUS_TEXT[status],
        }
        for status in sorted(set(statuses))
    }


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


_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="session",
    bearerFormat="mpsoa-lab session token",
    description="the token POST /sessions returns, as Authorization: Bearer <token>",
)
#: The token a request carries, if any (``Authorization: Bearer <token>``).
Bearer = Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]


async def session_of(request: Request, credentials: Bearer) -> Session:
    """The session a request carries, checked the app's way; a 401 without one."""
    if credentials is None:
        raise unauthorized(
            "no session: log in with POST /sessions and send its token as "
            "Authorization: Bearer <token>"
        )
    return await request.app.state.sessions.session(credentials.credentials)


#: An endpoint parameter: the request's checked session.
SessionOf = Annotated[Session, Depends(session_of)]


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
    checks = session_check_for(config.sessions, platform)
    app.state.sessions = checks

    answer_errors(app)

    @app.get("/health")
    async def health() -> Health:
        return Health(
            status="ok", wait=platform.WAIT, sessions=checks.CHECK, brokers=platform.describe()
        )

    @app.get("/stats")
    async def stats(reset: bool = False) -> Stats:
        """Sync calls in flight now and at most since the last ``?reset=true``."""
        return Stats(**platform.stats(reset))

    @app.post("/users", status_code=201, responses=_answers(400, 409, 413, 422, *_CALL))
    async def register(body: Credentials) -> UserCreated:
        """Sign up: a ``user`` (an operator is made only inside the platform)."""
        return await platform.acall(ROUTES["POST", "/users"], **body.model_dump())

    @app.post("/sessions", status_code=201, responses=_answers(400, 401, 413, 422, *_CALL))
    async def log_in(body: Credentials) -> SessionOpened:
        """Log in: a session token, valid until ``expires``."""
        return await platform.acall(ROUTES["POST", "/sessions"], **body.model_dump())

    @app.delete("/sessions/current", status_code=204, responses=_answers(*_SESSION))
    async def log_out(credentials: Bearer) -> Response:
        """Log out: the session's token is refused from now on."""
        if credentials is None:
            raise unauthorized("no session to end: send its token as Authorization: Bearer")
        await checks.end(credentials.credentials)
        return Response(status_code=204)

    @app.put("/wallets/{user_id}", responses=_answers(422, *_SESSION))
    async def open_wallet(user_id: UserId, session: SessionOf) -> WalletBalance:
        own_wallet(session, user_id)
        return await platform.acall(ROUTES["PUT", "/wallets/{user_id}"], user_id=user_id)

    @app.get("/wallets/{user_id}/balance", responses=_answers(404, 422, *_SESSION))
    async def balance(user_id: UserId, session: SessionOf) -> WalletBalance:
        own_wallet(session, user_id)
        route = ROUTES["GET", "/wallets/{user_id}/balance"]
        cents = await platform.acall(route, user_id=user_id)
        return WalletBalance(user_id=user_id, balance_cents=cents)

    @app.get("/wallets/{user_id}/echo", responses=_answers(422, *_SESSION))
    async def echo(user_id: UserId, session: SessionOf) -> Echoed:
        """The wallet service answers at once, touching nothing: the middleware's own cost."""
        own_wallet(session, user_id)
        route = ROUTES["GET", "/wallets/{user_id}/echo"]
        return Echoed(user_id=user_id, echoed=await platform.acall(route, user_id=user_id))

    @app.post("/wallets/{user_id}/deposits", responses=_answers(400, 404, 409, 413, 422, *_SESSION))
    async def deposit(user_id: UserId, body: Amount, session: SessionOf) -> WalletBalance:
        own_wallet(session, user_id)
        route = ROUTES["POST", "/wallets/{user_id}/deposits"]
        cents = await platform.acall(route, user_id=user_id, **body.model_dump())
        return WalletBalance(user_id=user_id, balance_cents=cents)

    @app.get("/ledger/accounts/{account}/balance", responses=_answers(422, *_SESSION))
    async def ledger_balance(account: AccountName, session: SessionOf) -> AccountBalance:
        """An account of the platform's book: operators only."""
        operator_only(session)
        route = ROUTES["GET", "/ledger/accounts/{account}/balance"]
        cents = await platform.acall(route, account=account)
        return AccountBalance(account=account, balance_cents=cents)

    @app.post(
        "/ledger/entries", status_code=202, responses=_answers(400, 413, 422, 401, 403, 502, 503)
    )
    async def record_entry(body: Entry, session: SessionOf) -> Accepted:
        """An entry in the platform's book, stored once per ``entry_id``: operators only."""
        operator_only(session)
        route = ROUTES["POST", "/ledger/entries"]
        return Accepted(task_id=await platform.apublish(route, **body.model_dump()))

    return app
