"""Small helpers the notebooks share: waiting on a condition, counting messages in a queue."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["wait_until", "ready_messages", "kernel_shell"]


def kernel_shell() -> Any:
    """This process's IPython shell if the process is a Jupyter kernel, else None (a terminal,
    a script, a worker, or a process that merely imported IPython). Never imports IPython."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell if type(shell).__name__ == "ZMQInteractiveShell" else None


T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.05) -> T:
    """Poll ``predicate`` until it returns something true; return it, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"condition still false after {timeout:.1f} s")
        time.sleep(interval)


def ready_messages(url: str, queue: str) -> int:
    """Messages ready in ``queue`` right now, from the broker itself (a passive declare)."""
    from kombu import Connection

    with Connection(url) as conn:
        return conn.default_channel.queue_declare(queue, passive=True).message_count
