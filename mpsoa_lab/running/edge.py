"""The HTTP edge as one of the lab's components: uvicorn serving :mod:`mpsoa_lab.design.edge`.

``start_edge(lab)`` starts ``python -m uvicorn --factory mpsoa_lab.design.edge:create_app`` on a
port reserved on the machine-wide allocator, on 127.0.0.1 only, with the brokers of this
process's space in its environment (``MPSOA_SYNC_BROKER_URL``, ``MPSOA_ASYNC_BROKER_URL``). It
is ready when ``GET /health`` answers, recorded in the state file (the reaper stops it when its
owner is gone) and stopped with :func:`stop_edge`.
"""

from __future__ import annotations

import itertools
import os
import sys

from ..plumbing.component import Program, http_probe
from .lab import Lab

__all__ = ["start_edge", "stop_edge", "edge_url", "edges", "uvicorn_program", "EDGE_PREFIX"]

#: Name prefix of the edge programs in the state file.
EDGE_PREFIX = "edge-"
_serial = itertools.count(1)


def edge_url(edge: Program) -> str:
    """The edge's base URL, e.g. ``http://127.0.0.1:20123``."""
    return f"http://127.0.0.1:{edge.ports['http']}"


def start_edge(
    lab: Lab,
    *,
    timeout: float | None = None,
    body_limit: int | None = None,
    wait: str | None = None,
    rest_urls: dict[str, str] | None = None,
    broker_urls: tuple[str, str] | None = None,
    name: str | None = None,
    start_timeout: float = 60.0,
    sessions: str | None = None,
) -> Program:
    """Start an edge on ``lab``'s brokers (or ``broker_urls=(sync, async)``) and wait until it
    answers; ``timeout`` is a sync call's wait in seconds, ``body_limit`` the largest body,
    ``wait`` how a sync call waits for its reply (``shared``, ``threadpool``, ``event-loop``:
    :mod:`mpsoa_lab.design.edge.waiting`); ``rest_urls`` (service -> base URL) makes it call
    the services' REST APIs instead of publishing tasks (the REST alternative, notebook 09);
    ``sessions`` how it checks a session (``token``, the default, or ``mplogin``:
    :mod:`mpsoa_lab.design.sessions`)."""
    from ..design.edge.publishing import refuse_wait_with_rest

    refuse_wait_with_rest(wait, rest_urls)  # a clear error here, not in the edge's log
    name = name or f"{EDGE_PREFIX}{os.getpid()}-{next(_serial)}"
    sync_url, async_url = broker_urls or (lab.sync.url, lab.async_.url)
    env = {
        "MPSOA_LAB_HOME": str(lab.home),
        "MPSOA_SPACE": lab.space,
        "MPSOA_SYNC_BROKER_URL": str(sync_url),
        "MPSOA_ASYNC_BROKER_URL": str(async_url),
    }
    if timeout is not None:
        env["MPSOA_EDGE_TIMEOUT"] = str(timeout)
    if body_limit is not None:
        env["MPSOA_EDGE_BODY_LIMIT"] = str(body_limit)
    if wait is not None:
        from ..design.edge import EdgeConfig

        EdgeConfig(str(sync_url), str(async_url), wait=wait)  # a clear error here, not in a log
        env["MPSOA_EDGE_WAIT"] = wait
    if sessions is not None:
        from ..design.edge import EdgeConfig

        EdgeConfig(str(sync_url), str(async_url), sessions=sessions)  # a clear error here
        env["MPSOA_EDGE_SESSIONS"] = sessions
    if rest_urls:
        import json

        env["MPSOA_EDGE_REST_URLS"] = json.dumps(rest_urls)
    edge = uvicorn_program(lab, name, "mpsoa_lab.design.edge:create_app", env)
    lab.launch(edge, start_timeout, lambda: stop_edge(lab, edge))
    return edge


def uvicorn_program(
    lab: Lab, name: str, factory: str, env: dict[str, str], *options: str
) -> Program:
    """An ASGI app served by uvicorn (``--factory``) on a reserved port of 127.0.0.1, owned by
    this process, ready when ``GET /health`` answers; ``options`` go to uvicorn."""
    args = [sys.executable, "-m", "uvicorn", "--factory", factory]
    args += ["--host", "127.0.0.1", "--port", "{http}", "--no-access-log", *options]
    return lab.program(
        name, args, ports=["http"], env=env, probe=http_probe("http://127.0.0.1:{http}/health")
    )


def stop_edge(lab: Lab, edge: Program, timeout: float = 10.0) -> None:
    """Stop the edge (SIGTERM: uvicorn finishes its requests), release its port, forget it."""
    lab.retire(edge, timeout)


def edges(lab: Lab) -> list[Program]:
    """The edges the state file records (started by any process on this lab)."""
    return [c for c in lab.components("program") if c.name.startswith(EDGE_PREFIX)]
