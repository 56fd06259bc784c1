"""Round plumbing shared by the three parts: the order of the variants in a round, and
waiting for the broker or the service's storage to catch up between two steps."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["rotate", "wait_for"]

T = TypeVar("T")


def rotate(items: list[str], n: int) -> list[str]:
    """``items`` rotated left by ``n``: round ``n`` runs its variants in this order."""
    n %= len(items)
    return items[n:] + items[:n]


def wait_for(predicate: Callable[[], T], timeout: float, interval: float = 0.05) -> T:
    """Poll ``predicate`` until it returns something true or ``timeout`` seconds have passed;
    return its last value either way (the caller decides what a false one means)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)
