"""Messages a worker cannot use, published to a design queue, and where each one ends up.

:func:`catalogue` builds the messages anyone who can publish to a service's exchange can send:
garbage bytes, a content type the worker does not accept, a (harmless) pickle, no Celery
headers, broken ones, an unknown task, another service's task, a body of the wrong shape,
arguments the task does not take. :func:`send_bad_messages` publishes each, one after the
other, to one queue that one ``celery worker`` consumes, and after each one a good task (the
*sentinel*): when the sentinel has run, the worker has dealt with the message before it (it
handles each message as it receives it, in order), and is still serving. Each message carries
a header of its own (:data:`CASE_HEADER`) that survives dead-lettering, so that it can be found
wherever it went.

Three set-ups, one :class:`Run` each (:func:`compare`):

* ``celery default``: the worker as Celery 5 ships, the queue as the design declares it;
* ``celery default, dead-letter policy``: the same worker; the queue dead-letters to
  :data:`~mpsoa_lab.design.dead_letters.DEAD_LETTER_EXCHANGE` by policy, which tells a message
  Celery *rejected* (dead-lettered) from one it *acknowledged* (gone for good);
* ``lab``: the policy, and a worker with :class:`~mpsoa_lab.design.dead_letters.KeepingConsumer`,
  which rejects what it cannot decode instead of acknowledging it.

Nothing here runs a payload: the pickle case pickles a plain tuple of the task's arguments.
"""

from __future__ import annotations

import json
import pickle
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kombu import Connection, Exchange, Producer

from ..design.dead_letters import (
    DEAD_LETTER_POLICY,
    KEEPING_CONSUMER,
    dead_letter_policy,
    dead_letter_queue,
)
from ..design.naming import queue_name
from ..plumbing.management import Management
from ..running.lab import Lab
from ..running.workers import Worker, start_worker

__all__ = [
    "CASE_HEADER",
    "BadMessage",
    "Fate",
    "Run",
    "catalogue",
    "send_bad_messages",
    "compare",
    "keep_dead_letters",
    "drop_dead_letter_policy",
    "LOG_MARKS",
    "read_log",
    "DEAD_LETTER_POLICY",
    "table",
    "redeclare_with_dead_letter_argument",
    "SETUPS",
]

#: The header each bad message carries, so that it can be found after dead-lettering.
CASE_HEADER = "x-mpsoa-case"

SERVICE, KIND = "mpledger", "async"
TASK = "mpledger.async.record_entry"

#: What Celery 5.7's worker logs for each kind of message it does not run (the start of the
#: line), by the name this module gives that kind.
LOG_MARKS = {
    "cannot decode": "Can't decode message body",
    "unknown message": "Received and deleted unknown message",
    "unregistered task": "Received unregistered task",
    "invalid task": "Received invalid task message",
    "task raised": "raised unexpected",
    "worker stopped": "Unrecoverable error",
    "rejected, undecodable (lab)": "Rejected a message that cannot be decoded",
    "rejected, unhandled (lab)": "Rejected a message the worker cannot handle",
}

#: Celery's own consumer (the ``worker_consumer`` default).
CELERY_CONSUMER = "celery.worker.consumer:Consumer"

#: The three set-ups :func:`compare` runs: (dead-letter policy on the queue, worker settings).
#: The lab's workers have the keeping consumer by default (``base_config``); Celery's own is
#: named here to run them as Celery ships.
SETUPS: dict[str, tuple[bool, dict[str, Any]]] = {
    "celery default": (False, {"worker_consumer": CELERY_CONSUMER}),
    "celery + dead-letter policy": (True, {"worker_consumer": CELERY_CONSUMER}),
    "lab": (True, {"worker_consumer": KEEPING_CONSUMER}),
}


@dataclass(frozen=True)
class BadMessage:
    """One message as published: body bytes, content type and encoding, AMQP headers and
    properties, routing key."""

    key: str
    what: str
    body: bytes
    content_type: str
    headers: dict[str, Any]
    properties: dict[str, Any] = field(default_factory=dict)
    content_encoding: str = "utf-8"
    routing_key: str = f"{SERVICE}.{KIND}.record_entry"

    @property
    def task_id(self) -> str | None:
        return self.headers.get("id")


def _celery_message(task: str, kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The headers and properties Celery 5's protocol 2 gives a task message, and a fresh id."""
    task_id = str(uuid.uuid4())
    headers = {
        "lang": "py",
        "task": task,
        "id": task_id,
        "shadow": None,
        "eta": None,
        "expires": None,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [None, None],
        "root_id": task_id,
        "parent_id": None,
        "argsrepr": "()",
        "kwargsrepr": repr(kwargs),
        "origin": "mpsoa-lab bad_messages",
        "ignore_result": False,
    }
    properties = {"correlation_id": task_id}
    return headers, properties


def _body(kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
    embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    return [], kwargs, embed


def good_kwargs(tag: str) -> dict[str, Any]:
    """Arguments ``record_entry`` accepts: one entry of 1 cent, under ``tag``."""
    return {"entry_id": tag, "account": "bad-messages", "amount_cents": 1}


def catalogue() -> list[BadMessage]:
    """Every bad message, each with fresh ids, in the order they are sent."""
    out = []

    def add(key: str, what: str, **change: Any) -> None:
        kwargs = change.pop("kwargs", good_kwargs(f"bad-{key}-{uuid.uuid4().hex[:8]}"))
        task = change.pop("task", TASK)
        headers, properties = _celery_message(task, kwargs)
        headers.update(change.pop("headers", {}))
        for name in change.pop("drop", ()):
            headers.pop(name)
        body = change.pop("body", json.dumps(_body(kwargs)).encode())
        headers[CASE_HEADER] = key
        out.append(
            BadMessage(
                key=key,
                what=what,
                body=body,
                content_type=change.pop("content_type", "application/json"),
                headers=headers,
                properties=properties,
                **change,
            )
        )

    add(
        "garbage",
        "bytes that are not JSON, sent as application/json",
        body=b"\x8b\x00{not json\xff",
    )
    add(
        "content type",
        "a JSON body sent as application/xml, a type the worker does not accept",
        content_type="application/xml",
    )
    kwargs = good_kwargs(f"bad-pickle-{uuid.uuid4().hex[:8]}")
    add(
        "pickle",
        "a pickle of the task's arguments (a plain tuple, no payload)",
        content_type="application/x-python-serialize",
        content_encoding="binary",
        kwargs=kwargs,
        body=pickle.dumps(tuple(_body(kwargs)), protocol=2),
    )
    add(
        "no celery headers",
        "the task's JSON body without Celery's headers",
        drop=[k for k in _celery_message(TASK, {})[0]],
    )
    add("no task id", "Celery's headers without the task id", drop=["id", "root_id"])
    add("bad ETA", "an ETA that is not a date", headers={"eta": "not a date"})
    add(
        "unknown task",
        "a task name the service does not have",
        task=f"{SERVICE}.{KIND}.no_such_task",
    )
    add(
        "another service's task",
        "mplogin's task, published to mpledger's queue",
        task="mplogin.async.record_login",
    )
    add(
        "body shape",
        "a body that is a JSON object, not [args, kwargs, embed]",
        body=b'{"entry_id": 1}',
    )
    add(
        "wrong arguments",
        "arguments the task does not take",
        kwargs={"no_such_argument": 1},
    )
    return out


@dataclass
class Fate:
    """Where one bad message ended up in one set-up."""

    key: str
    left_in_queue: int
    dead_lettered: bool
    death_reason: str | None
    ran: bool
    kept_as_failed: bool
    log: list[str]
    worker_alive: bool
    sentinel_ran: bool
    #: the worker died of it: did a fresh worker on the same queue die too (None: not tried)?
    next_worker_died: bool | None = None
    #: messages purged by hand from the queue so that the next worker could serve
    purged: int = 0


@dataclass
class Run:
    """One set-up's fates, by case key, and its worker's state at the end."""

    setup: str
    fates: dict[str, Fate]
    worker_alive: bool
    log_counts: dict[str, int]
    seconds: float


def _log_marks(text: str) -> list[str]:
    return [name for name, mark in LOG_MARKS.items() if mark in text]


def keep_dead_letters(lab: Lab, services: Iterable[str] = (SERVICE,)) -> None:
    """Declare the dead-letter exchange and each service's ``<service>.dead`` queue on the
    async broker of ``lab`` (this process's space) and set the dead-letter policy there."""
    services = tuple(services)
    with Connection(lab.async_.url) as conn, conn.channel() as channel:
        for service in services:
            dead_letter_queue(service)(channel).declare()
    policy = dead_letter_policy(services)
    with Management.for_broker(lab.async_) as api:
        api.put_policy(
            policy["name"],
            policy["pattern"],
            policy["definition"],
            lab.async_.vhost,
            apply_to=policy["apply_to"],
        )
        _wait_policy(api, lab.async_.vhost, policy["name"])


def _wait_policy(api: Management, vhost: str | None, name: str | None, timeout: float = 10) -> None:
    """Until the design queue shows policy ``name`` (None: no policy)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if api.queue(queue_name(SERVICE, KIND), vhost).get("policy") == name:
            return
        time.sleep(0.1)
    raise TimeoutError(
        f"queue {queue_name(SERVICE, KIND)} did not show policy {name!r} in {timeout} s"
    )


def drop_dead_letter_policy(lab: Lab) -> None:
    """Remove the dead-letter policy (the queues go back to dropping what is rejected)."""
    with Management.for_broker(lab.async_) as api:
        api.delete_policy(DEAD_LETTER_POLICY, lab.async_.vhost)
        _wait_policy(api, lab.async_.vhost, None)


def _dead_letters(url: str) -> dict[str, dict[str, Any]]:
    """Every message now in ``mpledger.dead``, taken out, by its case header."""
    found = {}
    with Connection(url) as conn, conn.channel() as channel:
        queue = dead_letter_queue(SERVICE)(channel)
        queue.declare()
        while (message := queue.get(no_ack=True)) is not None:
            headers = message.headers or {}
            deaths = headers.get("x-death") or [{}]
            found[headers.get(CASE_HEADER, "?")] = {
                "reason": deaths[0].get("reason"),
                "queue": deaths[0].get("queue"),
                "content_type": message.content_type,
            }
    return found


def _depth(url: str, queue: str) -> int:
    with Connection(url) as conn, conn.channel() as channel:
        return channel.queue_declare(queue, passive=True).message_count


def send_bad_messages(
    lab: Lab,
    setup: str,
    *,
    config: dict[str, Any] | None = None,
    messages: list[BadMessage] | None = None,
    wait: float = 10.0,
    worker_options: dict[str, Any] | None = None,
) -> Run:
    """Publish each bad message, then a sentinel, to ``mpledger.async`` on ``lab``'s async
    broker, which one worker (Celery settings ``config``) consumes; return where each ended up.

    A message the worker dies of is left where it is and a second worker is started on the
    queue, to see whether it dies too; then the queue is purged by hand (counted) and a worker
    started again for the next message. ``worker_options`` go to each
    :func:`~mpsoa_lab.running.workers.start_worker` (e.g. ``prefetch_multiplier``)."""
    from ..design.services import mpledger

    storage = mpledger.service.storage
    messages = catalogue() if messages is None else messages
    options = worker_options or {}
    url, queue = lab.async_.url, queue_name(SERVICE, KIND)
    exchange = Exchange(SERVICE, type="topic", durable=True)
    _dead_letters(url)  # start from an empty dead-letter queue
    started = time.monotonic()
    logs: list[str] = []
    fates: dict[str, Fate] = {}
    worker = start_worker(lab, SERVICE, KIND, config=config, **options)
    try:
        with Connection(url) as conn:
            producer = Producer(conn.channel(), exchange=exchange)
            for message in messages:
                mark = len(read_log(worker))
                _publish(producer, message.body, message)
                sentinel = _sentinel()
                _publish(producer, sentinel.body, sentinel)
                sentinel_ran = _wait_ran(storage, sentinel.task_id, worker, wait)
                text = read_log(worker)[mark:]
                ids = {e["task_id"] for e in storage.executions()}
                failed = {f["task_id"] for f in storage.failed_tasks()}
                fate = fates[message.key] = Fate(
                    key=message.key,
                    left_in_queue=_depth(url, queue),
                    dead_lettered=False,
                    death_reason=None,
                    ran=message.task_id in ids,
                    kept_as_failed=message.task_id in failed,
                    log=_log_marks(text),
                    worker_alive=worker.is_running(),
                    sentinel_ran=sentinel_ran,
                )
                if not fate.worker_alive:
                    logs.append(read_log(worker))
                    worker.stop()
                    worker = start_worker(lab, SERVICE, KIND, config=config, wait=False, **options)
                    fate.next_worker_died = _dies(worker, wait)
                    logs.append(read_log(worker))
                    worker.stop()
                    fate.purged = conn.default_channel.queue_purge(queue) or 0
                    worker = start_worker(lab, SERVICE, KIND, config=config, **options)
        time.sleep(0.3)  # a rejected message is dead-lettered as it is rejected: well within
        for key, death in _dead_letters(url).items():
            if key in fates:
                fates[key].dead_lettered = True
                fates[key].death_reason = death["reason"]
        logs.append(read_log(worker))
        alive = worker.is_running()
    finally:
        worker.stop()
    text = "".join(logs)
    counts = {name: text.count(mark) for name, mark in LOG_MARKS.items()}
    return Run(setup, fates, alive, counts, time.monotonic() - started)


def _sentinel() -> BadMessage:
    """A good ``record_entry`` message, sent after each bad one."""
    kwargs = good_kwargs(f"sentinel-{uuid.uuid4().hex[:12]}")
    headers, properties = _celery_message(TASK, kwargs)
    body = json.dumps(_body(kwargs)).encode()
    return BadMessage("sentinel", "a good task", body, "application/json", headers, properties)


def _publish(producer: Producer, body: bytes, message: BadMessage) -> None:
    producer.publish(
        body,
        routing_key=message.routing_key,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        headers=message.headers,
        delivery_mode=2,
        **message.properties,
    )


def _dies(worker: Worker, timeout: float) -> bool:
    """Whether ``worker`` (just started) exits within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not worker.is_running():
            return True
        time.sleep(0.1)
    return False


def read_log(worker: Worker) -> str:
    """Everything ``worker`` has logged so far ('' if its log cannot be read)."""
    try:
        return worker.log_file.read_text(errors="replace")
    except OSError:
        return ""


def _wait_ran(storage: Any, task_id: str, worker: Worker, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(e["task_id"] == task_id for e in storage.executions()):
            return True
        if not worker.is_running():
            return False
        time.sleep(0.05)
    return False


def compare(lab: Lab, setups: Iterable[str] = tuple(SETUPS)) -> dict[str, Run]:
    """Run the catalogue in each set-up, each with workers of its own; the policy is removed
    at the end."""
    from ..design.services import mpledger

    mpledger.service.storage.reset()
    lab.prepare_topology()
    runs = {}
    try:
        for setup in setups:
            policy, config = SETUPS[setup]
            if policy:
                keep_dead_letters(lab)
            else:
                _drop_policy_if_any(lab)
            runs[setup] = send_bad_messages(lab, setup, config=config or None)
    finally:
        _drop_policy_if_any(lab)
    return runs


def _drop_policy_if_any(lab: Lab) -> None:
    with Management.for_broker(lab.async_) as api:
        names = [p["name"] for p in api.policies(lab.async_.vhost)]
    if DEAD_LETTER_POLICY in names:
        drop_dead_letter_policy(lab)


def _short(fate: Fate) -> str:
    if fate.dead_lettered:
        return f"{SERVICE}.dead"
    if fate.purged:
        return "worker died; back in queue" + ("" if fate.next_worker_died else "?")
    if fate.kept_as_failed:
        return "ran, failed: kept"
    if fate.ran:
        return "ran"
    return "dropped"


def table(runs: dict[str, Run]) -> str:
    """One row per bad message: where it ended up in each set-up, and what Celery logged (in
    the first set-up)."""
    setups = list(runs)
    first = runs[setups[0]]
    header = f"{'message':<24}" + "".join(f"{s[:28]:<30}" for s in setups) + "Celery logged"
    lines = [header]
    for key, fate in first.fates.items():
        cells = "".join(
            f"{_short(runs[s].fates[key]) if key in runs[s].fates else '-':<30}" for s in setups
        )
        lines.append(f"{key:<24}{cells}{', '.join(fate.log) or '-'}")
    return "\n".join(lines)


def redeclare_with_dead_letter_argument(lab: Lab) -> str:
    """Declare the design's existing ``mpledger.async`` again, this time with an
    ``x-dead-letter-exchange`` argument (what a Celery ``task_queues`` change would do): the
    broker's answer, ``PRECONDITION_FAILED`` on a queue that was declared without it."""
    from amqp.exceptions import PreconditionFailed
    from kombu import Queue

    from ..design.dead_letters import DEAD_LETTER_EXCHANGE
    from ..design.topology import binding_key

    lab.prepare_topology(purge=False)
    queue = Queue(
        queue_name(SERVICE, KIND),
        Exchange(SERVICE, type="topic", durable=True),
        routing_key=binding_key(SERVICE, KIND),
        durable=True,
        queue_arguments={"x-dead-letter-exchange": DEAD_LETTER_EXCHANGE},
    )
    try:
        with Connection(lab.async_.url) as conn, conn.channel() as channel:
            queue(channel).declare()
    except PreconditionFailed as exc:
        return f"{type(exc).__name__}: {str(exc)[:150]}"
    return "declared"
