"""Three ways an edge endpoint can wait for a sync call's reply (notebook 08 measures them).

* ``threadpool`` (:class:`~.publishing.Platform`): a blocking ``result.get()`` in uvicorn's
  threadpool, which is what FastAPI does with a plain ``def`` endpoint. Each request in flight
  holds one of the pool's threads (40 by default), and Celery's ``rpc://`` backend keeps a reply
  queue and a consumer per thread.
* ``event-loop`` (:class:`BlockingPlatform`): an ``async def`` endpoint that calls
  ``result.get()``: the event loop stops until the reply is in, for every request of the edge.
* ``shared`` (:class:`SharedRepliesPlatform`, the default): one reply queue and one consumer
  for the whole edge (:mod:`.replies`); a request awaits a future and holds no thread.

``platform_for(config)`` builds the one ``config.wait`` names.
"""

from __future__ import annotations

import asyncio
from typing import Any

from celery import states, uuid

from ..naming import parse_task_name
from .errors import RETRY_AFTER, EdgeError, error_status
from .publishing import EdgeConfig, Platform
from .replies import SharedReplies

__all__ = ["BlockingPlatform", "SharedRepliesPlatform", "platform_for", "PLATFORMS"]


class BlockingPlatform(Platform):
    """The trap: an ``async def`` endpoint that blocks on ``.get()`` (and on the confirm)."""

    WAIT = "event-loop"

    async def acall(self, name: str, **kwargs: Any) -> Any:
        return self.call(name, **kwargs)  # blocks the event loop until the reply is in

    async def apublish(self, name: str, **kwargs: Any) -> str:
        return self.publish(name, **kwargs)


class SharedRepliesPlatform(Platform):
    """One reply consumer for every request; a sync call awaits its reply holding no thread.

    The publish itself is one socket write on the event loop when the edge's connection is open
    and free; when it must be made (first use, after a broker outage) or another request is
    publishing, it runs in the threadpool: the loop never waits for a connection."""

    WAIT = "shared"
    SYNC_BACKEND = "disabled"  # replies go to the shared queue, never to a per-thread one

    def __init__(self, config: EdgeConfig):
        super().__init__(config)
        self.replies = SharedReplies(config.sync_url)

    async def startup(self) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.to_thread(self.replies.start, loop, 5.0)

    def close(self) -> None:
        self.replies.stop()
        super().close()

    async def acall(self, name: str, **kwargs: Any) -> Any:
        from starlette.concurrency import run_in_threadpool

        service, kind = parse_task_name(name)[:2]
        if not self.replies.ready:
            raise EdgeError(503, "the broker cannot be reached", {"Retry-After": str(RETRY_AFTER)})
        publisher, task_id, timeout = self.publisher(service, kind), uuid(), self.config.timeout
        future = self.replies.expect(task_id)
        try:
            with self.counted():
                options = {"task_id": task_id, "reply_to": self.replies.queue_name}
                try:  # on the loop when connected and free, else from a thread
                    if publisher.try_send(name, kwargs, expires=timeout, **options) is None:
                        await run_in_threadpool(
                            publisher.send, name, kwargs, expires=timeout, **options
                        )
                except Exception as exc:  # noqa: BLE001 - mapped to a status
                    raise error_status(exc) from None
                try:
                    meta = await asyncio.wait_for(future, timeout)
                except asyncio.TimeoutError:
                    raise EdgeError(
                        504, "the service did not answer in time", task_id=task_id
                    ) from None
        finally:
            self.replies.forget(task_id)
        if meta["status"] == states.SUCCESS:
            return meta["result"]
        if meta["status"] == states.FAILURE:
            error = error_status(publisher.app.backend.exception_to_python(meta["result"]))
        else:  # REVOKED: the worker found the call expired
            error = EdgeError(504, "the service did not answer in time")
        error.task_id = task_id
        raise error

    def stats(self, reset: bool = False) -> dict[str, Any]:
        return {**super().stats(reset), "late_replies": self.replies.late}


#: ``EdgeConfig.wait`` -> the platform that waits that way.
PLATFORMS: dict[str, type[Platform]] = {
    "shared": SharedRepliesPlatform,
    "threadpool": Platform,
    "event-loop": BlockingPlatform,
}


def platform_for(config: EdgeConfig) -> Platform:
    """The platform ``config.wait`` names; the REST one when ``config.rest_urls`` is given."""
    if config.rest_urls:
        from .rest_platform import RestPlatform

        return RestPlatform(config)
    return PLATFORMS[config.wait](config)
