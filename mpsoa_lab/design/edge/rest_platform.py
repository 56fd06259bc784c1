"""The edge of the REST alternative: the same endpoints, calling the services over HTTP.

The 2014 post argues against this design: the services expose their own RESTful APIs
(:mod:`mpsoa_lab.design.rest`) and the edge calls them over HTTP, through a load balancer per
service. Here the edge keeps its endpoints, validation and statuses; only the way a request
reaches a service changes: one keep-alive :class:`httpx.AsyncClient` per service, on the base
URL ``EdgeConfig.rest_urls`` gives (a HAProxy frontend, or one instance), awaited on the event
loop without a thread. The service answers with the edge's own shapes (the REST apps use the
edge's paths), so a call's result is read back out of the answer. Every call carries an
``X-Request-ID`` of its own: the instance logs its execution under it, so a call a load
balancer resent to a second instance shows in the execution log as one id run twice, as a
redelivered task does.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

from ..naming import parse_task_name
from .errors import CHALLENGE, RETRY_AFTER, EdgeError
from .publishing import EdgeConfig, Platform

__all__ = ["RestPlatform", "REST_CALLS", "REQUEST_ID"]

#: The header that carries a call's id to the instance (its task id in the execution log).
REQUEST_ID = "X-Request-ID"

#: Task -> (method, path template, the answer's field holding the result or None for all of
#: it, the kwargs sent as the JSON body).
REST_CALLS: dict[str, tuple[str, str, str | None, tuple[str, ...]]] = {
    "mplogin.sync.register": ("POST", "/users", None, ("username", "password")),
    "mplogin.sync.authenticate": ("POST", "/sessions", None, ("username", "password")),
    "mplogin.sync.check_session": ("POST", "/sessions/checks", None, ("token",)),
    "mplogin.sync.end_session": ("POST", "/sessions/ends", None, ("token",)),
    "mpwallet.sync.open_wallet": ("PUT", "/wallets/{user_id}", None, ()),
    "mpwallet.sync.get_balance": ("GET", "/wallets/{user_id}/balance", "balance_cents", ()),
    "mpwallet.sync.deposit": (
        "POST",
        "/wallets/{user_id}/deposits",
        "balance_cents",
        ("amount_cents",),
    ),
    "mpwallet.sync.echo": ("GET", "/wallets/{user_id}/echo", "echoed", ()),
    "mpledger.sync.balance": ("GET", "/ledger/accounts/{account}/balance", "balance_cents", ()),
    "mpledger.async.record_entry": (
        "POST",
        "/ledger/entries",
        None,
        ("entry_id", "account", "amount_cents"),
    ),
}


class RestPlatform(Platform):
    """Calls each service's REST API (through its load balancer) instead of the broker."""

    WAIT = "rest"

    def __init__(self, config: EdgeConfig):
        super().__init__(config)
        self.urls = dict(config.rest_urls or {})
        self._clients: dict[str, Any] = {}

    async def startup(self) -> None:
        import httpx

        limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
        self._clients = {
            service: httpx.AsyncClient(
                base_url=url, timeout=self.config.timeout, limits=limits, trust_env=False
            )
            for service, url in self.urls.items()
        }

    async def shutdown(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self.close()

    async def _request(self, name: str, kwargs: dict[str, Any]) -> Any:
        import httpx

        service = parse_task_name(name).service
        if service not in self._clients:
            raise EdgeError(503, f"no REST URL for {service}", {"Retry-After": str(RETRY_AFTER)})
        method, template, field, body_keys = REST_CALLS[name]
        # A path parameter is one segment: "?", "#" or "%" in an account must not end it.
        path = template.format(**{k: quote(str(v), safe="") for k, v in kwargs.items()})
        body = {k: kwargs[k] for k in body_keys} if body_keys else None
        try:
            with self.counted():
                answer = await self._clients[service].request(
                    method, path, json=body, headers={REQUEST_ID: uuid.uuid4().hex}
                )
        except httpx.TimeoutException:
            raise EdgeError(504, "the service did not answer in time") from None
        except httpx.TransportError:
            raise EdgeError(
                503, f"{service} cannot be reached", {"Retry-After": str(RETRY_AFTER)}
            ) from None
        if answer.status_code >= 400:
            try:
                detail = answer.json().get("detail", answer.text)
            except ValueError:
                detail = answer.text[:200]
            headers = dict(CHALLENGE) if answer.status_code == 401 else {}
            if "retry-after" in answer.headers:
                headers["Retry-After"] = answer.headers["retry-after"]
            raise EdgeError(answer.status_code, str(detail), headers)
        data = answer.json()
        return data[field] if field else data

    async def acall(self, name: str, **kwargs: Any) -> Any:
        return await self._request(name, kwargs)

    async def apublish(self, name: str, **kwargs: Any) -> str:
        """A REST call has no fire and forget: the entry is stored before the answer."""
        await self._request(name, kwargs)
        return str(kwargs.get("entry_id", ""))

    def describe(self) -> str:
        return "REST " + ", ".join(f"{s} {u}" for s, u in self.urls.items())
