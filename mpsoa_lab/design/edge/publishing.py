"""The edge's publish path: one long-lived producer per service and kind, and the two ways a
request is published (a sync call that waits with a timeout, an async task confirmed by the
broker and taken by a queue)."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ...plumbing.errors import SettingsError
from ...plumbing.settings import env_float, redact_url
from ..naming import parse_task_name
from ..rpc_backend import BACKEND
from ..sessions import CHECKS, DEFAULT_CHECK
from .errors import error_status

__all__ = [
    "DEFAULT_BODY_LIMIT",
    "DEFAULT_TIMEOUT",
    "DEFAULT_WAIT",
    "WAITS",
    "EdgeConfig",
    "Platform",
    "Publisher",
]

#: Bytes a request body may hold (the edge's own choice: uvicorn has no limit).
DEFAULT_BODY_LIMIT = 16 * 1024
#: Seconds a sync endpoint waits for its reply.
DEFAULT_TIMEOUT = 5.0
#: How a sync endpoint waits for its reply (:mod:`.waiting`): one shared reply consumer,
#: awaited without a thread (the recommended way); a blocking ``.get()`` in uvicorn's
#: threadpool (what a plain ``def`` endpoint does); a blocking ``.get()`` on the event loop
#: (what an ``async def`` endpoint calling ``.get()`` does: the trap).
WAITS = ("shared", "threadpool", "event-loop")
DEFAULT_WAIT = "shared"


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
            return self._send(name, kwargs, options)

    def try_send(self, name: str, kwargs: dict[str, Any], **options: Any) -> Any:
        """:meth:`send` if it cannot block on the broker: connected already and nobody else
        publishing; otherwise ``None`` (the caller sends from a thread instead). A publish of
        a small message on an open connection is one socket write, quick enough for an event
        loop; making a connection (after an outage, up to ``connect_timeout``) is not."""
        if self._producer is None or not self._lock.acquire(blocking=False):
            return None
        try:
            return self._send(name, kwargs, options)
        finally:
            self._lock.release()

    def _send(self, name: str, kwargs: dict[str, Any], options: dict[str, Any]) -> Any:
        try:
            return self.app.send_task(
                name, kwargs=kwargs, producer=self._ensure(), retry=False, **options
            )
        except BaseException:
            self.close()
            raise


@dataclass
class EdgeConfig:
    """Where the edge publishes, how long a sync call waits, the largest body it reads."""

    sync_url: str
    async_url: str
    timeout: float = DEFAULT_TIMEOUT
    body_limit: int = DEFAULT_BODY_LIMIT
    wait: str = DEFAULT_WAIT
    #: Service -> base URL of its REST API: when given, the edge calls the services over HTTP
    #: (the REST alternative, :mod:`.rest_platform`) instead of publishing tasks.
    rest_urls: dict[str, str] | None = None
    #: How a session is checked (:mod:`mpsoa_lab.design.sessions`): ``token`` by its
    #: signature in the edge, ``mplogin`` by a sync call on every request.
    sessions: str = DEFAULT_CHECK

    def __post_init__(self) -> None:
        if self.wait not in WAITS:
            raise SettingsError(
                f"MPSOA_EDGE_WAIT={self.wait!r} is not a way of waiting the edge knows: "
                f"use one of {', '.join(WAITS)} (default {DEFAULT_WAIT})"
            )
        if self.sessions not in CHECKS:
            raise SettingsError(
                f"MPSOA_EDGE_SESSIONS={self.sessions!r} is not a way of checking a session the "
                f"edge knows: use one of {', '.join(CHECKS)} (default {DEFAULT_CHECK})"
            )

    @classmethod
    def from_env(cls) -> EdgeConfig:
        from ..services._service import broker_urls

        sync_url, async_url = broker_urls()
        wait, rest_urls = (
            os.environ.get("MPSOA_EDGE_WAIT", "").strip(),
            rest_urls_from_env(os.environ),
        )
        refuse_wait_with_rest(wait, rest_urls)
        return cls(
            sync_url,
            async_url,
            env_float(os.environ, "MPSOA_EDGE_TIMEOUT", DEFAULT_TIMEOUT),
            int(env_float(os.environ, "MPSOA_EDGE_BODY_LIMIT", DEFAULT_BODY_LIMIT, unit="bytes")),
            wait or DEFAULT_WAIT,
            rest_urls,
            os.environ.get("MPSOA_EDGE_SESSIONS", "").strip() or DEFAULT_CHECK,
        )


def refuse_wait_with_rest(wait: str | None, rest_urls: Any) -> None:
    """A way of waiting for a reply means nothing to an edge that calls REST services: say so
    rather than ignore one of the two settings."""
    if wait and rest_urls:
        raise SettingsError(
            f"MPSOA_EDGE_WAIT={wait!r} and MPSOA_EDGE_REST_URLS are both set: a way of waiting "
            "applies to replies over AMQP, and an edge given REST URLs publishes nothing; "
            "unset one of them"
        )


def rest_urls_from_env(env: Any) -> dict[str, str] | None:
    """``MPSOA_EDGE_REST_URLS``, a JSON object service -> base URL, or None when unset."""
    import json

    from ..naming import SERVICES

    raw = (env.get("MPSOA_EDGE_REST_URLS") or "").strip()
    if not raw:
        return None
    try:
        urls = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"MPSOA_EDGE_REST_URLS is not valid JSON ({exc}): {raw!r}") from None
    if not isinstance(urls, dict) or not urls or set(urls) - set(SERVICES):
        raise SettingsError(
            f"MPSOA_EDGE_REST_URLS must map services ({', '.join(SERVICES)}) to base URLs, "
            f'e.g. {{"mplogin": "http://127.0.0.1:8001"}}, not {raw!r}'
        )
    return {str(k): str(v).rstrip("/") for k, v in urls.items()}


class Platform:
    """The edge's publishers, one per (service, kind), made on first use; a sync call waits
    with a blocking ``.get()`` in uvicorn's threadpool, as a plain ``def`` endpoint does
    (FastAPI runs one with ``run_in_threadpool``). Subclasses in :mod:`.waiting` wait otherwise."""

    WAIT = "threadpool"
    #: The sync apps' result backend: the mended ``rpc://`` (one reply queue per thread).
    SYNC_BACKEND = BACKEND

    def __init__(self, config: EdgeConfig):
        self.config = config
        self._publishers: dict[tuple[str, str], Publisher] = {}
        self._lock = threading.Lock()
        self.in_flight = self.max_in_flight = 0

    def publisher(self, service: str, kind: str) -> Publisher:
        with self._lock:
            if (service, kind) not in self._publishers:
                from ..apps import celery_apps_factory

                sync_app, async_app = celery_apps_factory(
                    "PUBLISHER", self.config.sync_url, self.config.async_url, service
                )
                sync_app.conf.result_backend = self.SYNC_BACKEND
                async_app.conf.broker_transport_options = {"confirm_publish": True}
                for kind_, app in (("sync", sync_app), ("async", async_app)):
                    app.conf.broker_connection_timeout = 2
                    self._publishers[(service, kind_)] = Publisher(app)
            return self._publishers[(service, kind)]

    @contextlib.contextmanager
    def counted(self) -> Iterator[None]:
        """Count a sync call in flight (published, its reply not yet in) while inside."""
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            yield
        finally:
            with self._lock:
                self.in_flight -= 1

    def call(self, name: str, **kwargs: Any) -> Any:
        """A sync task: publish, wait up to the timeout, never keep the request's reply."""
        service, kind = parse_task_name(name)[:2]  # the design's own parser: a clear error
        timeout = self.config.timeout
        with self.counted():
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
        service, kind = parse_task_name(name)[:2]
        try:
            return self.publisher(service, kind).send(name, kwargs, mandatory=True).id
        except Exception as exc:  # noqa: BLE001 - mapped to a status
            raise error_status(exc) from None

    async def acall(self, name: str, **kwargs: Any) -> Any:
        """What an endpoint awaits for a sync call: here :meth:`call` in the threadpool."""
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(self.call, name, **kwargs)

    async def apublish(self, name: str, **kwargs: Any) -> str:
        """What an endpoint awaits for an async task (the confirm is waited for in a thread)."""
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(self.publish, name, **kwargs)

    async def startup(self) -> None:
        """Called once the event loop runs (the app's lifespan)."""

    async def shutdown(self) -> None:
        """Called when the app stops (the app's lifespan)."""
        self.close()

    def close(self) -> None:
        """Drop every connection (the app's shutdown)."""
        with self._lock:
            for publisher in self._publishers.values():
                publisher.close()

    def stats(self, reset: bool = False) -> dict[str, Any]:
        """How the edge waits, and the most sync calls in flight at once since the last reset."""
        import anyio.to_thread

        with self._lock:
            stats = {
                "wait": self.WAIT,
                "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight,
                "threads": anyio.to_thread.current_default_thread_limiter().total_tokens,
            }
            if reset:
                self.max_in_flight = self.in_flight
        return stats

    def describe(self) -> str:
        return f"sync {redact_url(self.config.sync_url)}, async {redact_url(self.config.async_url)}"
