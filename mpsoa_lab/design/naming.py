"""Task names of the platform: ``<service>.<sync|async>.<method>``, e.g. ``mplogin.sync.register``.

The service part is also the name of the service's exchange, ``<service>.<kind>`` the name of
its queue, and the whole task name the routing key a message is published with.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from ..plumbing.errors import MalformedTaskName, UnknownService

__all__ = [
    "PLATFORM_PREFIX",
    "TASK_NAME_PATTERN",
    "SERVICES",
    "KINDS",
    "TaskName",
    "is_platform_name",
    "parse_task_name",
    "queue_name",
]

#: "mp" = "my platform": every service of the platform is named with it.
PLATFORM_PREFIX = "mp"
#: The services of the design, in the order the 2014 post lists them.
SERVICES: tuple[str, ...] = ("mplogin", "mpwallet", "mpledger")
#: ``sync``: blocking calls that return a result; ``async``: fire and forget.
KINDS: tuple[str, ...] = ("sync", "async")

#: A platform task name, matched whole (``fullmatch``: ``$`` would accept a trailing newline).
#: Dots escaped (the 2014 pattern left them as "any character"); methods may hold digits
#: after the first letter, as Python identifiers do.
TASK_NAME_PATTERN = re.compile(r"(mp[a-z_]+)\.(sync|async)\.([a-z_][a-z0-9_]*)")


class TaskName(NamedTuple):
    """A parsed platform task name."""

    service: str
    kind: str
    method: str

    @property
    def exchange(self) -> str:
        return self.service

    @property
    def queue(self) -> str:
        return queue_name(self.service, self.kind)

    @property
    def routing_key(self) -> str:
        return str(self)

    def __str__(self) -> str:
        return f"{self.service}.{self.kind}.{self.method}"


def queue_name(service: str, kind: str) -> str:
    """``mplogin``, ``sync`` -> ``mplogin.sync``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    return f"{service}.{kind}"


def is_platform_name(name: str) -> bool:
    """True for names the platform claims: they start with ``mp``, in any case (``MPLOGIN.x``
    is a mistyped platform name, to be refused, not someone else's task); Celery's own do not."""
    return name[: len(PLATFORM_PREFIX)].lower() == PLATFORM_PREFIX


def parse_task_name(name: str, services: tuple[str, ...] | list[str] = SERVICES) -> TaskName:
    """Split a platform task name, or raise an error that says what is wrong with it.

    >>> parse_task_name("mplogin.sync.register")
    TaskName(service='mplogin', kind='sync', method='register')
    """
    match = TASK_NAME_PATTERN.fullmatch(name)
    if match is None:
        raise MalformedTaskName(
            f"Task name {name!r} starts with the platform prefix {PLATFORM_PREFIX!r} but does not "
            f"fit '<service>.<sync|async>.<method>' (lowercase, three parts separated by dots, "
            f"e.g. 'mplogin.sync.register'). Rename the task, or give it a name without the "
            f"{PLATFORM_PREFIX!r} prefix if it is not a platform task."
        )
    parsed = TaskName(*match.groups())
    if parsed.service not in services:
        raise UnknownService(
            f"Task name {name!r} names service {parsed.service!r}, which the platform does not "
            f"have. Known services: {', '.join(services)}. Fix the name, or add the service "
            f"to mpsoa_lab.design.naming.SERVICES (and its exchange and queues with it)."
        )
    return parsed
