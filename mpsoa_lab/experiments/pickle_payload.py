"""What a pickle payload does, on both sides of the design: a worker that accepts pickle (the 2014
``CELERY_ACCEPT_CONTENT = ['pickle', 'json']``) and a caller that accepts pickle results.

The payload is :class:`Marker`: unpickling it creates one empty file, the *marker*, under this
lab space's home, and does nothing else (its ``__reduce__`` names ``pathlib.Path.touch`` and the
marker's path; :func:`marker_path` refuses a path outside the lab's home). Whoever can publish to
a queue the worker consumes can send it; whoever can publish to a caller's reply queue (its name
is in every request the caller sends, as ``reply_to``) can send it back as a result.

* :func:`to_worker`: the payload, then a good task, to a worker with the lab's settings (JSON
  only) and to one with the 2014 ``accept_content``; each :class:`WorkerOutcome` says whether
  the worker started (Celery's own guard, see :func:`~mpsoa_lab.running.workers.start_worker`),
  whether the marker appeared, whether the good task ran after it.
* :func:`to_caller`: a sync call nobody answers; someone who can read the request publishes a
  "result" carrying the payload to its ``reply_to``; the caller with the lab's settings and
  one with the 2014 result settings each wait for their answer (:class:`CallerOutcome`).
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import pickle
import time
import uuid
from dataclasses import dataclass
from typing import Any

from kombu import Connection, Exchange, Producer

from ..design.naming import queue_name
from ..running.lab import Lab
from ..running.workers import Worker, start_worker
from .bad_messages import SERVICE, TASK, _body, _celery_message, good_kwargs, read_log

__all__ = [
    "PICKLE_2014",
    "PICKLE_RESULTS_2014",
    "Marker",
    "marker_path",
    "payload",
    "WorkerOutcome",
    "one_worker",
    "CallerOutcome",
    "to_worker",
    "to_caller",
    "ROOT_GUARD",
]

#: The 2014 worker's accept list (``CELERY_ACCEPT_CONTENT``), in Celery 5's name. (Its
#: ``CELERY_TASK_SERIALIZER = 'pickle'`` only decides what the worker itself sends, and would
#: make its answers to the lab's JSON-only control ping unreadable.)
PICKLE_2014 = {"accept_content": ["pickle", "json"]}
#: The 2014 caller's: pickle results accepted (``CELERY_RESULT_SERIALIZER = 'pickle'``).
PICKLE_RESULTS_2014 = {"accept_content": ["pickle", "json"], "result_serializer": "pickle"}
#: What Celery logs when it refuses to start a worker that accepts pickle as root.
ROOT_GUARD = "C_FORCE_ROOT"
PICKLE = "application/x-python-serialize"


class Marker:
    """Unpickled, creates the empty file ``path`` (under the lab's home) and nothing else."""

    def __init__(self, path: pathlib.Path):
        self.path = pathlib.Path(path)

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (self.path,))


def marker_path(lab: Lab, name: str) -> pathlib.Path:
    """A fresh marker path in this space's ``markers`` folder under the lab's home."""
    folder = pathlib.Path(lab.space_home) / "markers"
    folder.mkdir(parents=True, exist_ok=True)
    path = (folder / f"{name}-{uuid.uuid4().hex[:8]}").resolve()
    if pathlib.Path(lab.home).resolve() not in path.parents:
        raise ValueError(f"a marker must be under the lab's home {lab.home}, not at {path}")
    return path


def payload(obj: Any) -> bytes:
    """``obj`` pickled as Celery's pickle serializer does (protocol 4 here)."""
    return pickle.dumps(obj, protocol=4)


@dataclass
class WorkerOutcome:
    setup: str
    refused_to_start: bool  # Celery's root guard stopped it
    started: bool
    forced_root: bool  # started with C_FORCE_ROOT=1 after the guard
    marker: bool  # the payload ran
    good_task_ran: bool  # the task published after it ran: the worker served on
    alive: bool
    log: str  # what the worker said of the payload


def _publish_task(url: str, body: bytes, content_type: str, encoding: str, headers: dict) -> None:
    """Publish to the service's exchange without declaring it (the lab declared the topology),
    so a publisher with the edge's rights alone (write, by routing key) can do it too."""
    with Connection(url) as conn:
        exchange = Exchange(SERVICE, type="topic", durable=True)
        producer = Producer(conn.channel(), exchange=exchange, auto_declare=False)
        producer.publish(
            body,
            routing_key=f"{SERVICE}.async.record_entry",
            content_type=content_type,
            content_encoding=encoding,
            headers=headers,
            delivery_mode=2,
            correlation_id=headers["id"],
        )


def _wait(check: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return bool(check())


def _start(lab: Lab, config: dict[str, Any] | None, force_root: bool, **options: Any) -> Worker:
    return start_worker(
        lab, SERVICE, "async", config=config, wait=False, force_root=force_root, **options
    )


def one_worker(
    lab: Lab,
    setup: str,
    config: dict[str, Any] | None,
    wait: float,
    publisher: str,
    **options: Any,
) -> WorkerOutcome:
    """The payload, then a good task, published with ``publisher`` (an async broker URL) to
    one worker of ``lab`` with Celery settings ``config`` (``options`` to
    :func:`~mpsoa_lab.running.workers.start_worker`); what became of both."""
    from ..design.services import mpledger

    storage = mpledger.service.storage
    forced = refused = False
    worker = _start(lab, config, False, **options)
    try:
        try:
            worker.wait_ready(30)
        except Exception:  # noqa: BLE001 - the guard is the observation
            refused = ROOT_GUARD in read_log(worker)
            if not refused:
                raise
            worker.stop()
            worker = _start(lab, config, True, **options)
            worker.wait_ready(30)
            forced = True
        mark = marker_path(lab, "worker")
        kwargs = good_kwargs(f"pickle-{uuid.uuid4().hex[:8]}")
        headers, _ = _celery_message(TASK, kwargs)
        embed = _body(kwargs)[2]
        before = len(read_log(worker))
        _publish_task(publisher, payload(((Marker(mark),), {}, embed)), PICKLE, "binary", headers)
        sentinel = f"sentinel-{uuid.uuid4().hex[:12]}"
        good_headers, _ = _celery_message(TASK, good_kwargs(sentinel))
        good_body = json.dumps(_body(good_kwargs(sentinel))).encode()
        _publish_task(publisher, good_body, "application/json", "utf-8", good_headers)
        ran = _wait(
            lambda: any(e["task_id"] == good_headers["id"] for e in storage.executions()), wait
        )
        said = read_log(worker)[before:]
        lines = [line for line in said.splitlines() if "ERROR" in line or "WARNING" in line]
        outcome = WorkerOutcome(
            setup=setup,
            refused_to_start=refused,
            started=True,
            forced_root=forced,
            marker=mark.exists(),
            good_task_ran=ran,
            alive=worker.is_running(),
            log=(lines[0].split("] ", 1)[-1][:160] if lines else ""),
        )
        with contextlib.suppress(OSError):
            mark.unlink()
        return outcome
    finally:
        worker.stop()


def to_worker(
    lab: Lab, *, wait: float = 10.0, publisher: str | None = None
) -> dict[str, WorkerOutcome]:
    """The payload to the lab's JSON-only worker, then to one with the 2014 ``accept_content``
    (as this machine's user; past Celery's root guard with ``C_FORCE_ROOT=1`` only if the guard
    stopped it). Each worker is stopped before the next starts. ``publisher`` is the async
    broker URL the payload and the task after it are published with (the lab's own user's by
    default; e.g. the design's edge user's, :func:`mpsoa_lab.experiments.permissions.design_user`)."""
    from ..design.services import mpledger

    mpledger.service.storage.reset()
    lab.prepare_topology()
    url = publisher or lab.async_.url
    return {
        "lab (JSON only)": one_worker(lab, "lab (JSON only)", None, wait, url),
        "2014 (pickle accepted)": one_worker(lab, "2014 (pickle accepted)", PICKLE_2014, wait, url),
    }


@dataclass
class CallerOutcome:
    setup: str
    reply_to: str  # the caller's reply queue, read from its request
    marker: bool
    answer: str  # what the caller's get() returned or raised


def to_caller(lab: Lab, *, timeout: float = 5.0) -> dict[str, CallerOutcome]:
    """For the lab's caller and for one with the 2014 result settings: a sync call to
    ``mpledger.sync.entry_count`` that no worker answers; the request is taken from the queue
    (as any consumer of it, or the management API, can), and a "result" carrying the payload is
    published to its ``reply_to`` with its correlation id; the caller's ``get()`` decodes it."""
    from ..design.apps import celery_apps_factory

    lab.prepare_topology()
    out = {}
    for setup, settings in (
        ("lab (JSON only)", {}),
        ("2014 (pickle results)", PICKLE_RESULTS_2014),
    ):
        sync_app, async_app = celery_apps_factory(
            "PUBLISHER", lab.sync.url, lab.async_.url, SERVICE
        )
        sync_app.conf.update(settings)
        mark = marker_path(lab, "caller")
        try:
            result = sync_app.send_task(f"{SERVICE}.sync.entry_count", kwargs={})
            request = _take(lab.sync.url, queue_name(SERVICE, "sync"), timeout)
            reply_to = request.properties.get("reply_to", "")
            meta = {
                "task_id": result.id,
                "status": "SUCCESS",
                "result": Marker(mark),
                "traceback": None,
                "children": [],
                "date_done": None,
            }
            with Connection(lab.sync.url) as conn:
                Producer(conn.channel()).publish(
                    payload(meta),
                    routing_key=reply_to,
                    exchange="",
                    content_type=PICKLE,
                    content_encoding="binary",
                    correlation_id=request.properties.get("correlation_id", result.id),
                )
            try:
                answer = f"returned {result.get(timeout=timeout)!r}"
            except Exception as exc:  # noqa: BLE001 - the refusal is the observation
                answer = f"raised {type(exc).__name__}: {str(exc)[:120]}"
            out[setup] = CallerOutcome(setup, reply_to, mark.exists(), answer)
        finally:
            with contextlib.suppress(OSError):
                mark.unlink()
            sync_app.close()
            async_app.close()
    return out


def _take(url: str, queue: str, timeout: float) -> Any:
    """The first message of ``queue``, taken out (acknowledged)."""
    deadline = time.monotonic() + timeout
    with Connection(url) as conn:
        channel = conn.channel()
        while time.monotonic() < deadline:
            message = channel.basic_get(queue, no_ack=True)
            if message is not None:
                return message
            time.sleep(0.05)
    raise TimeoutError(f"no request in {queue} within {timeout} s")
