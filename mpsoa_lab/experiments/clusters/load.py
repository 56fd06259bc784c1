"""The load of a node-loss run: sync calls one after the other, async tasks at a steady rate.

``_Load`` runs the two streams in threads until stopped; each sync call is kept as a
:class:`Call` (when it was sent and ended, what the caller got), each async task whose publish
was confirmed by its id, each publish that raised by its error.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from .clients import _short
from .queues import ASYNC_TASK, SYNC_TASK

__all__ = ["Call"]


@dataclass(frozen=True)
class Call:
    """One sync call: wall-clock times it was sent and ended, and what the caller got."""

    sent: float
    ended: float
    ok: bool
    task_id: str | None
    error: str = ""


class _Load:
    """Two threads: sync calls one after the other, async tasks at ``rate`` per second."""

    def __init__(self, sync_app: Any, async_app: Any, rate: float, call_timeout: float):
        self.sync_app, self.async_app = sync_app, async_app
        self.rate, self.call_timeout = rate, call_timeout
        self.calls: list[Call] = []
        self.sent: list[tuple[float, str]] = []  # async tasks whose publish was confirmed
        self.send_errors: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._calls, daemon=True),
            threading.Thread(target=self._tasks, daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)

    def _calls(self) -> None:
        while not self._stop.is_set():
            sent, task_id = time.time(), None
            try:
                result = self.sync_app.send_task(SYNC_TASK, kwargs={"account": "nb10"})
                task_id = result.id
                result.get(timeout=self.call_timeout)
                self.calls.append(Call(sent, time.time(), True, task_id))
            except Exception as exc:  # noqa: BLE001 - what the caller gets is the observation
                self.calls.append(Call(sent, time.time(), False, task_id, _short(exc)))
                self._stop.wait(0.05)

    def _tasks(self) -> None:
        i, start = 0, time.monotonic()
        while not self._stop.is_set():
            due = start + i / self.rate
            if (wait := due - time.monotonic()) > 0 and self._stop.wait(wait):
                break
            kwargs = {"entry_id": f"nb10-{i}", "account": "nb10", "amount_cents": 1}
            try:
                task_id = self.async_app.send_task(ASYNC_TASK, kwargs=kwargs).id
                self.sent.append((time.time(), task_id))
            except Exception as exc:  # noqa: BLE001 - a publish that failed is counted apart
                self.send_errors.append((time.time(), _short(exc)))
            i += 1
