"""Who may do what on the design's brokers: a user per party, with the least permissions Celery
works with, as notebook 13 found them by experiment (:func:`mpsoa_lab.experiments.permissions.discover`).

RabbitMQ grants per vhost three regular expressions over queue and exchange names
(*configure*, *write*, *read*) and, on a topic exchange, one over routing keys (topic *write*).

* A service's workers (:func:`worker_permissions`): declare, bind and consume their own
  service's exchange and queues, and their control queues (``celery.pidbox``, one queue per
  worker named after its node name, which must start with the service's name); publish their
  answers.
* The edge (:func:`edge_permissions`, :func:`edge_topic_permissions`): declare and consume its
  reply queues (Celery names them by UUID) and publish to the exchanges of the services it
  calls, narrowed by routing key to the tasks it calls (:data:`EDGE_TASKS`). It does not declare
  the services' queues (``declare=[]`` on publish): the deployment does, and declaring them
  would take *configure*, which is also the right to delete them.

Answers. Celery's ``rpc://`` backend sends them through the default exchange, so a worker needs
*write* on ``amq.default``, which lets it put a message into any queue of the vhost by the
queue's name: RabbitMQ has no finer right on the default exchange. With
``reply_exchange=True`` (the design's choice) answers go through
:data:`~mpsoa_lab.design.rpc_backend.REPLY_EXCHANGE` instead
(:class:`~mpsoa_lab.design.rpc_backend.ReplyExchangeBackend`, for callers and workers alike):
a worker may write there only, which reaches reply queues and nothing else, and the edge binds
its reply queues to it.
"""

from __future__ import annotations

import re

from .edge.rest_platform import REST_CALLS
from .naming import SERVICES, parse_task_name
from .rpc_backend import REPLY_EXCHANGE

__all__ = [
    "ROLES",
    "EDGE_TASKS",
    "UUID",
    "worker_permissions",
    "edge_permissions",
    "edge_topic_permissions",
    "permissions_for",
    "password_hash",
    "definitions",
]

#: The tasks the edge calls (its HTTP routes), and no other.
EDGE_TASKS: tuple[str, ...] = tuple(REST_CALLS)
#: The parties that connect: the edge, and the workers of each service.
ROLES: tuple[str, ...] = ("edge", *SERVICES)
#: A reply queue's name, as Celery's ``rpc://`` backend makes it.
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def _any(*patterns: str) -> str:
    return "^(" + "|".join(patterns) + ")$"


def worker_permissions(service: str, *, reply_exchange: bool = True) -> dict[str, str]:
    """configure, write, read for the workers of ``service`` (sync and async alike)."""
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}: the design has {', '.join(SERVICES)}")
    s = re.escape(service)
    queues = rf"{s}\.(sync|async)"
    pidbox = rf"{s}(-[^@]+)?@.+\.celery\.pidbox"
    return {
        "configure": _any(s, queues, r"celery\.pidbox", pidbox),
        "write": _any(queues, pidbox, _replies(reply_exchange)),
        "read": _any(s, queues, r"celery\.pidbox", pidbox),
    }


def _replies(reply_exchange: bool) -> str:
    return re.escape(REPLY_EXCHANGE) if reply_exchange else r"amq\.default"


def edge_permissions(
    tasks: tuple[str, ...] = EDGE_TASKS, *, reply_exchange: bool = True
) -> dict[str, str]:
    """configure, write, read for the edge: its reply queues, the exchanges of what it calls
    (and, with the reply exchange, binding its reply queues to it)."""
    exchanges = [re.escape(e) for e in sorted({parse_task_name(t).service for t in tasks})]
    if not reply_exchange:
        return {"configure": _any(UUID), "write": _any(*exchanges), "read": _any(UUID)}
    return {
        "configure": _any(UUID),
        "write": _any(*exchanges, UUID),  # a bind writes to its queue
        "read": _any(UUID, _replies(True)),  # and reads from its exchange
    }


def edge_topic_permissions(tasks: tuple[str, ...] = EDGE_TASKS) -> dict[str, str]:
    """Per service exchange, the routing keys the edge may publish with: its tasks' names."""
    by_exchange: dict[str, list[str]] = {}
    for task in tasks:
        parsed = parse_task_name(task)
        by_exchange.setdefault(parsed.service, []).append(re.escape(parsed.routing_key))
    return {exchange: _any(*keys) for exchange, keys in sorted(by_exchange.items())}


def permissions_for(role: str, *, reply_exchange: bool = True) -> dict[str, str]:
    """The permissions of one of :data:`ROLES`."""
    if role == "edge":
        return edge_permissions(reply_exchange=reply_exchange)
    if role in SERVICES:
        return worker_permissions(role, reply_exchange=reply_exchange)
    raise ValueError(f"unknown role {role!r}: the design's are {', '.join(ROLES)}")


# -- as RabbitMQ definitions -------------------------------------------------------------------


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256``: base64 of a 4-byte salt followed by
    SHA-256(salt + password), as a definitions file holds a user's password."""
    import base64
    import hashlib
    import os

    salt = os.urandom(4) if salt is None else salt
    if len(salt) != 4:
        raise ValueError("RabbitMQ's password salt is 4 bytes")
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def definitions(
    vhost: str,
    passwords: dict[str, str],
    *,
    prefix: str = "",
    reply_exchange: bool = True,
    admin: tuple[str, str] | None = None,
) -> dict:
    """The design's users as RabbitMQ definitions (the JSON of ``rabbitmqctl import_definitions``,
    ``POST /api/definitions``, or ``load_definitions`` at boot): each role of ``passwords``
    becomes user ``<prefix><role>`` with its permissions in ``vhost`` (and the edge its topic
    permissions). Passwords go in hashed.

    A node that loads definitions at boot does not create its default user: give ``admin``
    (name, password) for one with the ``administrator`` tag and every permission in ``vhost``,
    or nobody can manage the node."""
    unknown = sorted(set(passwords) - set(ROLES))
    if unknown:
        raise ValueError(f"unknown roles {unknown}: the design's are {', '.join(ROLES)}")
    users, permissions, topics = [], [], []
    for role, password in passwords.items():
        name = f"{prefix}{role}"
        users.append(_user(name, password, ""))
        perms = permissions_for(role, reply_exchange=reply_exchange)
        permissions.append({"user": name, "vhost": vhost, **perms})
        if role == "edge":
            topics += [
                {"user": name, "vhost": vhost, "exchange": ex, "write": keys, "read": ".*"}
                for ex, keys in edge_topic_permissions().items()
            ]
    if admin is not None:
        users.append(_user(admin[0], admin[1], "administrator"))
        permissions.append(
            {"user": admin[0], "vhost": vhost, "configure": ".*", "write": ".*", "read": ".*"}
        )
    return {
        "users": users,
        "vhosts": [{"name": vhost}],
        "permissions": permissions,
        "topic_permissions": topics,
    }


def _user(name: str, password: str, tags: str) -> dict:
    return {
        "name": name,
        "password_hash": password_hash(password),
        "hashing_algorithm": "rabbit_password_hashing_sha256",
        "tags": tags,
    }
