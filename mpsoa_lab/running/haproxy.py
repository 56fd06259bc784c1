"""HAProxy in front of the REST instances, as one of the lab's components.

``start_haproxy(lab, {"mpwallet": instances})`` starts :class:`~mpsoa_lab.plumbing.haproxy.HAProxy`
with a frontend per service on a reserved port of 127.0.0.1 and the instances
(:func:`mpsoa_lab.running.rest.start_rest`) as the servers of its backend. It is ready when its
runtime API and every frontend answer, recorded in the state file (the reaper stops it when its
owner is gone) and stopped with :func:`stop_haproxy`. :func:`add_instance` and
:func:`remove_instance` change a running backend through the runtime API, and keep the state
file in step.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from ..plumbing.component import Program
from ..plumbing.haproxy import BalancerOptions, HAProxy, Server
from .lab import Lab

__all__ = [
    "start_haproxy",
    "launch_haproxy",
    "stop_haproxy",
    "haproxies",
    "add_instance",
    "remove_instance",
    "server_of",
    "HAPROXY_PREFIX",
]

#: Name prefix of the lab's HAProxy processes in the state file.
HAPROXY_PREFIX = "haproxy-"
_serial = itertools.count(1)


def server_of(instance: Program) -> Server:
    """A REST instance as a server of a backend: its name, 127.0.0.1 and its port."""
    return Server(instance.name, "127.0.0.1", instance.ports["http"])


def start_haproxy(
    lab: Lab,
    backends: Mapping[str, Iterable[Program]],
    *,
    options: BalancerOptions | None = None,
    start_timeout: float = 30.0,
    **settings: Any,
) -> HAProxy:
    """Start HAProxy with a frontend and a backend per service of ``backends`` (service ->
    its REST instances, possibly none yet) and wait until it serves.

    ``settings`` override fields of ``options`` (:class:`BalancerOptions`), e.g.
    ``balance="leastconn"``, ``retries=3``, ``redispatch=False``, ``check_inter_ms=100``,
    ``retry_on="conn-failure empty-response"``.
    """
    servers = {
        service: [server_of(i) for i in instances] for service, instances in backends.items()
    }
    return launch_haproxy(
        lab, servers, replace(options or BalancerOptions(), **settings), start_timeout
    )


def launch_haproxy(
    lab: Lab,
    servers: Mapping[str, Iterable[Server]],
    options: BalancerOptions,
    start_timeout: float = 30.0,
) -> HAProxy:
    """Start HAProxy with a frontend and a backend of ``servers`` per service, in either mode,
    on the lab's life cycle (recorded, reaped, stopped by :func:`stop_haproxy`)."""
    name = f"{HAPROXY_PREFIX}{os.getpid()}-{next(_serial)}"
    balancer = HAProxy(
        name,
        lab.home / "logs" / name,
        servers,
        options=options,
        owner=os.getpid(),
        mark=str(lab.home),
    )
    lab.launch(balancer, start_timeout, lambda: stop_haproxy(lab, balancer))
    return balancer


def stop_haproxy(lab: Lab, balancer: HAProxy, timeout: float = 10.0) -> None:
    """Stop HAProxy (SIGUSR1: it finishes the requests in flight), release its ports, forget it."""
    lab.retire(balancer, timeout)


def haproxies(lab: Lab) -> list[HAProxy]:
    """The HAProxy processes the state file records (started by any process on this lab)."""
    return [c for c in lab.components("haproxy") if isinstance(c, HAProxy)]


def add_instance(lab: Lab, balancer: HAProxy, service: str, instance: Program) -> None:
    """Add a running instance to a service's backend at run time (``add server``, ``enable
    health``, ``enable server``): it takes requests at once, then as its checks say."""
    balancer.add_server(service, server_of(instance))
    lab.record(balancer)


def remove_instance(lab: Lab, balancer: HAProxy, service: str, instance: Program | str) -> None:
    """Take an instance out of a backend for good (maintenance, then ``del server``)."""
    balancer.remove_server(service, instance if isinstance(instance, str) else instance.name)
    lab.record(balancer)
