"""Least privilege on the broker, found by experiment: what each party of the design must be
allowed to do for Celery to work, and what it is refused beyond that.

RabbitMQ grants a user, per vhost, three regular expressions over names of queues and
exchanges: *configure* (declare, delete), *write* (publish to an exchange; bind a queue, as its
destination) and *read* (consume from a queue, get; bind from an exchange). Topic permissions
narrow *write* on a topic exchange by routing key. A refused operation closes the channel with
``403 ACCESS_REFUSED``, naming the AMQP method, the kind and the name of what was refused.

:func:`discover` starts a user with no permission at all and runs one operation as it (a sync
call, an async publish, a worker serving its queue); each refusal names what to grant, the
grant is added (a name Celery makes up, such as a reply queue's or a worker's control queue,
generalised to the shape of such names: :func:`pattern_for`), and the operation runs again,
until it works. The :class:`Found` keeps every step.

Users are broker-wide, so each is named after this space's vhost (``<vhost>.<role>``) and
deleted when its :class:`BrokerUser` block ends; passwords are random, made per user, and never
printed (:func:`~mpsoa_lab.plumbing.settings.redact_url`).
"""

from __future__ import annotations

import contextlib
import re
import secrets
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from ..plumbing.management import Management
from ..running.lab import Lab
from ..running.workers import Worker, start_worker
from .bad_messages import read_log

__all__ = [
    "Refusal",
    "refusals_in",
    "pattern_for",
    "BrokerUser",
    "broker_user",
    "Found",
    "discover",
    "PERMISSIONS",
]

PERMISSIONS = ("configure", "write", "read")
#: What RabbitMQ (3.x and 4.x) says when it refuses an operation on a queue or exchange.
REFUSED = re.compile(
    r"(?P<method>\w+\.\w+): \(403\) ACCESS_REFUSED - (?:(?P<perm>configure|write|read) )?"
    r"access to (?:(?P<kind>queue|exchange) '(?P<name>[^']*)'"
    r"|topic '(?P<key>[^']*)' in exchange '(?P<topic_exchange>[^']*)') in vhost '[^']*' refused"
)
#: Which permission an AMQP method needs on what it names.
NEEDS = {
    "Queue.declare": "configure",
    "Queue.delete": "configure",
    "Exchange.declare": "configure",
    "Exchange.delete": "configure",
    "Basic.publish": "write",
    "Basic.consume": "read",
    "Basic.get": "read",
    "Queue.purge": "read",
}
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@dataclass(frozen=True)
class Refusal:
    method: str  # the AMQP method refused, e.g. Queue.declare
    kind: str  # queue, exchange, or topic (a routing key on a topic exchange)
    name: str  # for a topic: "<exchange>: <routing key>"
    permission: str  # what it takes: configure, write or read

    def __str__(self) -> str:
        return f"{self.method} on {self.kind} {self.name!r}: needs {self.permission}"


def refusals_in(text: str) -> list[Refusal]:
    """Every access refusal named in ``text`` (an exception's message, a worker's log)."""
    out = []
    for m in REFUSED.finditer(text):
        method, kind = m["method"], m["kind"]
        if m["key"] is not None:  # a topic permission: the routing key on a topic exchange
            out.append(Refusal(method, "topic", f"{m['topic_exchange']}: {m['key']}", "write"))
            continue
        if m["perm"]:
            permission = m["perm"]
        elif method in ("Queue.bind", "Queue.unbind"):  # write on the queue, read on the exchange
            permission = "write" if kind == "queue" else "read"
        else:
            permission = NEEDS.get(method, "configure")
        out.append(Refusal(method, kind, m["name"], permission))
    return out


def pattern_for(name: str) -> str:
    """A regular expression for ``name``: the name itself, or, for names Celery makes up, the
    shape of every such name (a reply queue's UUID; a worker's control queue, named after its
    node name ``<name>@<host>``, kept to workers whose name starts like this one's)."""
    if re.fullmatch(UUID, name):
        return f"^{UUID}$"
    pidbox = re.fullmatch(r"([a-z]+)[^@]*@.+\.celery\.pidbox", name)
    if pidbox:
        return rf"^{pidbox[1]}-[^@]+@.+\.celery\.pidbox$"
    return f"^{re.escape(name)}$"


class BrokerUser:
    """A user of this space's brokers, with no permission until :meth:`grant` gives some."""

    def __init__(self, lab: Lab, role: str):
        if not re.fullmatch(r"[a-z][a-z0-9-]*", role):
            raise ValueError(f"a role is a lowercase word, not {role!r}")
        self.lab, self.role = lab, role
        self.apis = {kind: Management.for_broker(b) for kind, b in lab.brokers.items()}
        self.name = f"{lab.sync.vhost or 'lab'}.{role}"
        self._password = secrets.token_urlsafe(18)
        self.granted: dict[str, list[str]] = {p: [] for p in PERMISSIONS}

    def url(self, kind: str) -> str:
        """The broker URL of ``kind`` as this user (it holds the password: never print it)."""
        parts = urlsplit(self.lab.brokers[kind].url)
        netloc = f"{quote(self.name, safe='')}:{self._password}@{parts.hostname}:{parts.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def create(self) -> None:
        for api in self.apis.values():
            api.put_user(self.name, self._password)
        self.apply()

    def grant(self, permission: str, pattern: str) -> None:
        if pattern not in self.granted[permission]:
            self.granted[permission].append(pattern)
        self.apply()

    def apply(self) -> None:
        regexes = {p: "|".join(v) for p, v in self.granted.items()}
        for api in self.apis.values():
            api.put_permissions(self.name, **regexes)

    def delete(self) -> None:
        for api in self.apis.values():
            with contextlib.suppress(Exception):
                api.delete_user(self.name)
            api.close()


@contextlib.contextmanager
def broker_user(lab: Lab, role: str) -> Iterator[BrokerUser]:
    """A fresh user named ``<vhost>.<role>`` on this space's brokers, deleted on exit."""
    user = BrokerUser(lab, role)
    user.create()
    try:
        yield user
    finally:
        user.delete()


@dataclass
class Found:
    role: str
    operation: str
    steps: list[Refusal] = field(default_factory=list)
    granted: dict[str, list[str]] = field(default_factory=dict)
    worked: bool = False
    error: str = ""  # the last error, when it did not work
    seconds: float = 0.0


def discover(
    lab: Lab,
    role: str,
    operation: str,
    attempt: Callable[[BrokerUser], str | None],
    *,
    start: dict[str, list[str]] | None = None,
    limit: int = 15,
) -> Found:
    """Grow ``role``'s permissions from nothing (or ``start``) until ``attempt`` works.

    ``attempt(user)`` returns None when the operation worked, or text naming what was refused
    (it may raise: the exception's message is read the same way). A refusal already granted, or
    an error that names no refusal, ends the search: ``Found.worked`` is False then.
    """
    started = time.monotonic()
    found = Found(role, operation)
    with broker_user(lab, role) as user:
        for permission, patterns in (start or {}).items():
            for pattern in patterns:
                user.grant(permission, pattern)
        for _ in range(limit):
            try:
                said = attempt(user)
            except Exception as exc:  # noqa: BLE001 - a refusal is what we look for
                said = f"{type(exc).__name__}: {exc}"
            if said is None:
                found.worked = True
                break
            refusals = refusals_in(said)
            if not refusals:
                found.error = said[-300:]
                break
            refusal = refusals[-1]
            pattern = pattern_for(refusal.name)
            if pattern in user.granted[refusal.permission]:
                found.error = f"refused again after the grant: {refusal}"
                break
            found.steps.append(refusal)
            user.grant(refusal.permission, pattern)
        found.granted = {p: list(v) for p, v in user.granted.items()}
    found.seconds = time.monotonic() - started
    return found


# -- the operations -------------------------------------------------------------------------


def sync_call(
    task: str = "mpwallet.sync.echo",
    kwargs: dict | None = None,
    *,
    declare: bool = True,
    backend: str | None = None,
) -> Callable[[BrokerUser], str | None]:
    """A sync call through the design's sync app, as ``user``; ``declare=False`` publishes
    without declaring the route's queue (``declare=[]``: the deployment declared it);
    ``backend`` is the caller's ``result_backend`` (e.g. the reply exchange's)."""
    from ..design.apps import celery_apps_factory
    from ..design.naming import parse_task_name

    service = parse_task_name(task).service

    def attempt(user: BrokerUser) -> str | None:
        sync_app, async_app = celery_apps_factory(
            "PUBLISHER", user.url("sync"), user.url("async"), service
        )
        if backend:
            sync_app.conf.result_backend = backend
        try:
            options = {} if declare else {"declare": []}
            sync_app.send_task(task, kwargs=kwargs or {"user_id": 7}, **options).get(timeout=5)
            return None
        finally:
            sync_app.close()
            async_app.close()

    return attempt


def serving_worker(
    service: str = "mpwallet",
    *,
    backend: str | None = None,
    caller: BrokerUser | None = None,
    wait: float = 15.0,
) -> Callable[[BrokerUser], str | None]:
    """A sync worker of ``service`` started as ``user``, answering a call made by ``caller``
    (or the lab's own user); ``backend`` is both sides' ``result_backend``."""
    from ..design.apps import celery_apps_factory

    task = {"mpwallet": "echo", "mpledger": "entry_count", "mplogin": "check_session"}[service]
    config = {"result_backend": backend} if backend else None

    def attempt(user: BrokerUser) -> str | None:
        lab = user.lab
        urls = (
            (caller.url("sync"), caller.url("async")) if caller else (lab.sync.url, lab.async_.url)
        )
        app, other = celery_apps_factory("PUBLISHER", *urls, service)
        other.close()
        if backend:
            app.conf.result_backend = backend
        worker = start_worker(
            lab, service, "sync", config=config,
            broker_urls=(user.url("sync"), user.url("async")), wait=False,
        )  # fmt: skip
        try:
            result = app.send_task(
                f"{service}.sync.{task}", kwargs=_probe_kwargs(service), declare=[]
            )
            return _served(worker, result, wait)
        finally:
            worker.kill()
            app.close()

    return attempt


def _probe_kwargs(service: str) -> dict[str, Any]:
    return {"mpwallet": {"user_id": 7}, "mpledger": {}, "mplogin": {"token": "x"}}[service]


def _served(worker: Worker, result: Any, wait: float) -> str | None:
    """None once the worker has answered; else what its log says it was refused."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        said = read_log(worker)
        if refusals_in(said):
            return said
        try:
            result.get(timeout=0.3, propagate=False)
            return None
        except Exception:  # noqa: BLE001, S112 - not answered yet
            continue
    return read_log(worker)[-600:] or "no answer and nothing logged"


# -- the design's users, and what they are refused -------------------------------------------


@contextlib.contextmanager
def design_user(lab: Lab, role: str, *, reply_exchange: bool = True) -> Iterator[BrokerUser]:
    """A user with the permissions the design gives ``role``, loaded into each broker as
    RabbitMQ definitions (:func:`mpsoa_lab.design.access.definitions`), deleted on exit."""
    from ..design.access import definitions, permissions_for

    user = BrokerUser(lab, role)
    prefix = user.name[: -len(role)]
    try:
        for api in user.apis.values():
            api.import_definitions(
                definitions(api.vhost, {role: user._password}, prefix=prefix,
                            reply_exchange=reply_exchange)
            )  # fmt: skip
        for permission, regex in permissions_for(role, reply_exchange=reply_exchange).items():
            user.granted[permission] = [regex]
        yield user
    finally:
        user.delete()


@dataclass
class Attempt:
    who: str
    what: str
    allowed: bool
    said: str = ""  # the refusal, as the broker worded it
    landed: int | None = None  # messages that reached the target queue, where counted
    connection_open: bool = True  # after the refusal: the broker closed the channel only


def _publish(exchange: str, key: str, body: bytes = b"{}") -> Callable[[Any], None]:
    def action(channel: Any) -> None:
        channel.confirm_select()  # a refused publish closes the channel: wait to hear of it
        channel.basic_publish(_message(body), exchange=exchange, routing_key=key, mandatory=False)
        channel.basic_qos(0, 1, False)  # one round trip more, for brokers that close late

    return action


def _message(body: bytes) -> Any:
    from amqp import Message

    return Message(body, content_type="application/json", delivery_mode=2)


def _consume(queue: str) -> Callable[[Any], None]:
    def action(channel: Any) -> None:
        channel.basic_consume(queue, callback=lambda m: None, no_ack=False)

    return action


def _tap(exchange: str, key: str, queue: str | None = None) -> Callable[[Any], None]:
    """Bind a queue to ``exchange``: ``queue`` (one the user may already use), or a new one
    with a name the user may declare (a reply queue's UUID)."""

    def action(channel: Any) -> None:
        name = queue
        if name is None:
            name = str(uuid.uuid4())
            channel.queue_declare(name, exclusive=True)
        channel.queue_bind(name, exchange, key)

    return action


def _depth(lab: Lab, kind: str, queue: str) -> int:
    from kombu import Connection

    with Connection(lab.brokers[kind].url) as conn:
        return conn.channel().queue_declare(queue, passive=True).message_count


def attempt(
    user: BrokerUser, kind: str, what: str, action: Callable[[Any], None], count: str | None = None
) -> Attempt:
    """Run ``action(channel)`` as ``user`` on the ``kind`` broker; ``count`` names a queue
    whose depth before and after says whether a publish landed there."""
    from kombu import Connection

    before = _depth(user.lab, kind, count) if count else None
    with Connection(user.url(kind)) as conn:
        channel = conn.connection.channel()
        try:
            action(channel)
            allowed, said = True, ""
        except Exception as exc:  # noqa: BLE001 - the refusal is the observation
            refused = refusals_in(str(exc))
            if not refused:
                raise
            allowed, said = False, str(refused[-1])
        open_after = bool(conn.connected) and _still_usable(conn)
    landed = None if count is None else _depth(user.lab, kind, count) - before  # type: ignore[operator]
    return Attempt(user.role, what, allowed, said, landed, open_after)


def _still_usable(conn: Any) -> bool:
    try:
        channel = conn.connection.channel()
        channel.basic_qos(0, 1, False)
        channel.close()
        return True
    except Exception:  # noqa: BLE001
        return False


def prepare(lab: Lab) -> None:
    """The design's topology, and the reply exchange the design's users answer through."""
    from kombu import Connection

    from ..design.rpc_backend import declare_reply_exchange

    lab.prepare_topology()
    for broker in lab.brokers.values():
        with Connection(broker.url) as conn:
            declare_reply_exchange(conn)


def design_call(lab: Lab, *, reply_exchange: bool = True, service: str = "mpwallet") -> Found:
    """A sync call from the design's edge user to a worker running as the design's user of
    ``service``, both with the design's permissions and nothing more: worked, or refused."""
    from ..design.rpc_backend import BACKEND, REPLY_EXCHANGE_BACKEND

    backend = REPLY_EXCHANGE_BACKEND if reply_exchange else BACKEND
    prepare(lab)
    with design_user(lab, "edge", reply_exchange=reply_exchange) as edge:
        start = permissions_for_user(service, reply_exchange)
        return discover(
            lab, service, "serve the edge", serving_worker(service, backend=backend, caller=edge),
            start=start, limit=1,
        )  # fmt: skip


def permissions_for_user(role: str, reply_exchange: bool) -> dict[str, list[str]]:
    from ..design.access import permissions_for

    return {p: [r] for p, r in permissions_for(role, reply_exchange=reply_exchange).items()}


def cross_service(lab: Lab, *, reply_exchange: bool = False) -> list[Attempt]:
    """The design's users, each trying what its permissions should not allow, and one control
    each (what it must be able to do)."""
    prepare(lab)
    out = []
    with design_user(lab, "mpwallet", reply_exchange=reply_exchange) as worker:
        out += [
            attempt(worker, "sync", "consume mpledger.sync (another service's requests)",
                    _consume("mpledger.sync")),
            attempt(worker, "sync", "publish mpledger.sync.balance to exchange mpledger",
                    _publish("mpledger", "mpledger.sync.balance"), count="mpledger.sync"),
            attempt(worker, "sync", "bind its own queue to exchange mpledger (a tap)",
                    _tap("mpledger", "mpledger.#", "mpwallet.sync")),
            attempt(worker, "sync", "publish to queue mpledger.sync through the default exchange",
                    _publish("", "mpledger.sync"), count="mpledger.sync"),
            attempt(worker, "sync", "consume mpwallet.sync (its own queue: the control)",
                    _consume("mpwallet.sync")),
        ]  # fmt: skip
    with design_user(lab, "edge", reply_exchange=reply_exchange) as edge:
        out += [
            attempt(edge, "async", "publish mpwallet.async.credit (a task it does not call)",
                    _publish("mpwallet", "mpwallet.async.credit"), count="mpwallet.async"),
            attempt(edge, "async", "publish mpledger.async.reconcile (a task it does not call)",
                    _publish("mpledger", "mpledger.async.reconcile"), count="mpledger.async"),
            attempt(edge, "sync", "consume mpwallet.sync (read every request)",
                    _consume("mpwallet.sync")),
            attempt(edge, "sync", "bind a reply-named queue to exchange mpwallet (a tap)",
                    _tap("mpwallet", "mpwallet.#")),
            attempt(edge, "sync", "declare queue mpwallet.sync (configure: also delete)",
                    lambda ch: ch.queue_declare("mpwallet.sync", durable=True)),
            attempt(edge, "async", "publish mpledger.async.record_entry (its own task: the control)",
                    _publish("mpledger", "mpledger.async.record_entry"), count="mpledger.async"),
        ]  # fmt: skip
    _purge(lab, {"sync": ["mpledger.sync"], "async": ["mpwallet.async", "mpledger.async"]})
    return out


@dataclass
class CallCost:
    calls: int
    lab_ms: list[float]  # as the lab's own user, who may do anything in the vhost
    design_ms: list[float]  # as the design's edge user

    @property
    def ratio(self) -> float:
        """The design user's median over the lab user's."""
        return statistics.median(self.design_ms) / statistics.median(self.lab_ms)


def call_cost(lab: Lab, *, calls: int = 200, service: str = "mpwallet") -> CallCost:
    """What the design's permissions cost a sync call: one worker running as the design's user
    of ``service``, answering through the reply exchange, and two callers taking turns, call by
    call: the lab's own user and the design's edge user, both with ``declare=[]``. Taking turns
    puts both under the same load, whatever else the machine does."""
    from ..design.apps import celery_apps_factory
    from ..design.rpc_backend import REPLY_EXCHANGE_BACKEND

    prepare(lab)
    task = f"{service}.sync.echo"
    with design_user(lab, service) as served, design_user(lab, "edge") as edge:
        worker = start_worker(
            lab, service, "sync", config={"result_backend": REPLY_EXCHANGE_BACKEND},
            broker_urls=(served.url("sync"), served.url("async")), wait=False,
        )  # fmt: skip
        apps = {}
        try:
            for who, urls in (("lab", (lab.sync.url, lab.async_.url)),
                              ("design", (edge.url("sync"), edge.url("async")))):  # fmt: skip
                apps[who], other = celery_apps_factory("PUBLISHER", *urls, service)
                other.close()
                apps[who].conf.result_backend = REPLY_EXCHANGE_BACKEND
            if _served(worker, apps["design"].send_task(task, kwargs={"user_id": 7}, declare=[]),
                       60.0) is not None:  # fmt: skip
                raise RuntimeError(f"the worker as the design's {service} user did not answer")
            times: dict[str, list[float]] = {who: [] for who in apps}
            for _ in range(calls):
                for who, app in apps.items():
                    start = time.perf_counter()
                    app.send_task(task, kwargs={"user_id": 7}, declare=[]).get(timeout=10)
                    times[who].append((time.perf_counter() - start) * 1000)
        finally:
            worker.stop()
            for app in apps.values():
                app.close()
    return CallCost(calls, times["lab"], times["design"])


def _purge(lab: Lab, queues: dict[str, list[str]]) -> None:
    """Empty the queues the attempts may have put messages in (as the lab's own user)."""
    from kombu import Connection

    for kind, names in queues.items():
        with Connection(lab.brokers[kind].url) as conn:
            channel = conn.channel()
            for name in names:
                channel.queue_purge(name)


# -- tables ---------------------------------------------------------------------------------


def steps_table(found: list[Found]) -> str:
    """Each search, its refusals in order, and what it ended with."""
    lines = []
    for f in found:
        end = "works" if f.worked else f"stopped: {f.error}"
        lines.append(f"{f.role} / {f.operation}: {len(f.steps)} grants, {end} ({f.seconds:.1f} s)")
        lines += [f"  {i:>2}. {step}" for i, step in enumerate(f.steps, 1)]
    return "\n".join(lines)


def attempts_table(attempts: list[Attempt]) -> str:
    """Who tried what, refused or allowed, and what landed where counted."""
    lines = [f"{'who':<9} {'outcome':<8} {'landed':<6} what (the broker's refusal)"]
    for a in attempts:
        landed = "-" if a.landed is None else str(a.landed)
        outcome = "allowed" if a.allowed else "refused"
        lines.append(f"{a.who:<9} {outcome:<8} {landed:<6} {a.what}")
        if a.said:
            lines.append(f"{'':<25} {a.said}")
    return "\n".join(lines)


def design_table(*, reply_exchange: bool = True) -> str:
    """The design's permissions, role by role, and the edge's topic permissions."""
    from ..design.access import ROLES, edge_topic_permissions, permissions_for

    lines = []
    for role in ROLES:
        lines.append(f"{role}:")
        for permission, regex in permissions_for(role, reply_exchange=reply_exchange).items():
            lines.append(f"  {permission:<9} {regex}")
    lines.append("edge, topic write (routing keys) per exchange:")
    lines += [f"  {ex:<9} {keys}" for ex, keys in edge_topic_permissions().items()]
    return "\n".join(lines)
