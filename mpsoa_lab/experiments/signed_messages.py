"""Celery's message signing (the ``auth`` serializer) on the lab's broker: what it refuses, what
it leaves open, and what it costs against JSON.

The keys are the lab's own (:func:`signing_keys`): the *caller* signs requests (the edge, say),
the *worker* signs results, both certificates in the store every party trusts; a *stranger*
has a key whose certificate the store does not hold. They live in a folder under the lab's home
that is deleted when the experiment ends.

Processes. Celery's ``setup_security()`` changes kombu's serializer registry for the whole
process: it registers ``auth`` with that process's key, disables every other serializer but
JSON, and makes ``auth`` the default. So it runs in the worker's process only (the worker's
settings, :func:`worker_settings`, make the service call it, see
:mod:`mpsoa_lab.design.services`). The caller in this process registers the ``auth`` codec
with the caller's key and nothing else (:func:`signing_caller`): the process's other apps keep
JSON, nothing is disabled, the default serializer stays JSON.

:func:`run` does it all with one service, ``mpwallet``, and its sync queue:

* *refusals and gaps*, with a signing worker: a signed call (the control), an unsigned JSON
  one, a signed message whose body was changed, one signed by the stranger, a signed read whose
  ``task`` header was changed to a write, a signed deposit published again as captured, and a
  signed read published again with ``reply_to`` changed to a queue of the attacker's. A copy of
  every request is taken by a *tap*: a queue bound to the service's exchange, as anyone allowed
  to bind can declare. Each message is followed by a signed call (the *sentinel*): when it has
  been answered, the worker has dealt with the message before it.
* *results*, with the worker stopped: a caller's request is taken from the queue; a forged
  JSON result is published to its ``reply_to``; a result the worker signed for another call is
  published to it; then the captured signed read is published in its place, with the
  caller's id, ``reply_to`` and correlation id, and a signing worker started to answer it.
* *cost*: the same number of sync calls with the signing worker and with the lab's JSON
  worker, one after the other in one run; the size of each request as the broker holds it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import statistics
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celery.security.serialization import DEFAULT_SEPARATOR
from kombu import Connection, Exchange, Producer, Queue

from ..design.apps import celery_apps_factory
from ..design.naming import queue_name
from ..plumbing.keys import Identity, key_folder, make_identity
from ..running.lab import Lab
from ..running.workers import Worker, start_worker
from .bad_messages import read_log

__all__ = [
    "SERVICE",
    "Keys",
    "signing_keys",
    "worker_settings",
    "signing_caller",
    "SignedParts",
    "read_signed",
    "Case",
    "ResultCase",
    "Cost",
    "Run",
    "run",
    "cases_table",
    "plot_cost",
]

SERVICE = "mpwallet"
QUEUE = queue_name(SERVICE, "sync")
DIGEST = "sha256"
#: What Celery's auth serializer puts between the parts of a signed body.
SEPARATOR = DEFAULT_SEPARATOR


@dataclass(frozen=True)
class Keys:
    caller: Identity  # signs requests; its certificate is in the store
    worker: Identity  # signs results; its certificate is in the store
    stranger: Identity  # a key whose certificate the store does not hold
    store: Path  # the trusted certificates, one file each

    @property
    def store_glob(self) -> str:
        return str(self.store / "*.pem")


@contextlib.contextmanager
def signing_keys(lab: Lab) -> Iterator[Keys]:
    """Three fresh identities and a store with the caller's and the worker's certificates, in a
    folder under the lab's home that is deleted on exit."""
    with key_folder(Path(lab.space_home), "signing") as folder:
        caller, worker, stranger = (
            make_identity(folder, n) for n in ("caller", "worker", "stranger")
        )
        store = folder / "store"
        store.mkdir()
        for identity in (caller, worker):
            shutil.copyfile(identity.cert, store / identity.cert.name)
        yield Keys(caller, worker, stranger, store)


def worker_settings(keys: Keys, *, signed_results: bool = True) -> dict[str, Any]:
    """A worker's Celery settings for signed messages (they make it call ``setup_security()``).
    Celery's documentation sets ``task_serializer`` and ``accept_content``; without
    ``result_serializer = "auth"`` the worker answers in JSON, which a signing caller refuses."""
    settings: dict[str, Any] = {
        "task_serializer": "auth",
        "accept_content": ["auth"],
        "security_key": str(keys.worker.key),
        "security_certificate": str(keys.worker.cert),
        "security_cert_store": keys.store_glob,
        "security_digest": DIGEST,
    }
    if signed_results:
        settings["result_serializer"] = "auth"
    return settings


def signing_caller(lab: Lab, keys: Keys) -> Any:
    """The service's sync app for a caller that signs with the caller's key and accepts signed
    results only. Registers the ``auth`` codec in this process (one key per process)."""
    from celery.security.serialization import register_auth

    register_auth(
        keys.caller.key.read_text(), None, keys.caller.cert.read_text(), keys.store_glob, DIGEST
    )
    sync_app, async_app = celery_apps_factory("PUBLISHER", lab.sync.url, lab.async_.url, SERVICE)
    async_app.close()
    sync_app.conf.update(task_serializer="auth", accept_content=["auth"])
    return sync_app


def json_caller(lab: Lab) -> Any:
    sync_app, async_app = celery_apps_factory("PUBLISHER", lab.sync.url, lab.async_.url, SERVICE)
    async_app.close()
    return sync_app


@dataclass(frozen=True)
class SignedParts:
    """A body signed by Celery's ``auth`` serializer, read without any key."""

    signer: str  # the certificate's issuer and serial number
    signature: bytes
    content_type: str
    content_encoding: str
    body: bytes  # what was signed: the serialized body, readable by anyone

    def with_body(self, body: bytes) -> bytes:
        """The same signature and signer over another body, packed as Celery packs it."""
        fields = [
            base64.b64encode(self.signer.encode()),
            base64.b64encode(self.signature),
            self.content_type.encode(),
            self.content_encoding.encode(),
            body,
        ]
        return base64.b64encode(SEPARATOR.join(fields))


def read_signed(body: bytes | str) -> SignedParts:
    """Unpack a signed body: base64 of signer, signature, content type, encoding and body
    (Celery 5's format), with no key needed."""
    raw = base64.b64decode(body if isinstance(body, bytes) else body.encode())
    signer, signature, content_type, encoding, inner = raw.split(SEPARATOR, 4)
    return SignedParts(
        base64.b64decode(signer).decode(),
        base64.b64decode(signature),
        content_type.decode(),
        encoding.decode(),
        inner,
    )


class _Tap:
    """A queue bound to the service's exchange for its sync routing keys: a copy of every
    request, as anyone allowed to declare and bind a queue can take."""

    def __init__(self, url: str):
        self.conn = Connection(url)
        self.channel = self.conn.channel()
        self.name = f"tap-{uuid.uuid4().hex[:8]}"
        exchange = Exchange(SERVICE, type="topic", durable=True)
        Queue(self.name, exchange, routing_key=f"{SERVICE}.sync.#", exclusive=True)(
            self.channel
        ).declare()
        self._seen: dict[str, Any] = {}

    def take(self, task_id: str, timeout: float = 5.0) -> Any:
        """The copy of the request with this task id."""
        deadline = time.monotonic() + timeout
        while task_id not in self._seen and time.monotonic() < deadline:
            message = self.channel.basic_get(self.name, no_ack=True)
            if message is None:
                time.sleep(0.02)
                continue
            self._seen[(message.headers or {}).get("id", "")] = message
        if task_id not in self._seen:
            raise TimeoutError(f"no copy of request {task_id} in {self.name} within {timeout} s")
        return self._seen.pop(task_id)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.channel.queue_delete(self.name)
        self.conn.release()


def _republish(url: str, message: Any, body: bytes | str | None = None, **change: Any) -> str:
    """Publish a captured request again to the service's exchange, with ``change`` applied to
    its headers (``id``, ``task``) and properties (``reply_to``, ``correlation_id``)."""
    headers = dict(message.headers)
    for name in ("id", "task"):
        if name in change:
            headers[name] = change.pop(name)
    properties = {
        "reply_to": message.properties.get("reply_to", ""),
        "correlation_id": message.properties.get("correlation_id", headers["id"]),
    }
    properties.update(change)
    with Connection(url) as conn:
        producer = Producer(conn.channel(), exchange=Exchange(SERVICE, type="topic", durable=True))
        producer.publish(
            message.body if body is None else body,
            routing_key=f"{SERVICE}.sync.{headers['task'].rsplit('.', 1)[-1]}",
            content_type=message.content_type,
            content_encoding=message.content_encoding,
            headers=headers,
            **properties,
        )
    return headers["id"]


@dataclass
class Case:
    key: str
    what: str  # what was published
    runs: int  # how many times the worker has run a task with this message's id
    effect: str  # what it changed, or what the attacker got
    log: str = ""  # the worker's first warning or error about it


@dataclass
class ResultCase:
    key: str
    what: str  # what arrived on the caller's reply queue
    answer: str  # what the caller's get() returned or raised


@dataclass
class Cost:
    calls: int
    json_ms: list[float]
    signed_ms: list[float]
    json_bytes: int  # the request's body as the broker holds it
    signed_bytes: int
    codec_json_ms: float  # median CPU time to serialize and read back one request body, here
    codec_signed_ms: float
    codec_pickle_ms: float  # the same body in pickle, what the 2014 settings sent

    @property
    def json_median(self) -> float:
        return statistics.median(self.json_ms)

    @property
    def signed_median(self) -> float:
        return statistics.median(self.signed_ms)


@dataclass
class Run:
    cases: dict[str, Case] = field(default_factory=dict)
    results: dict[str, ResultCase] = field(default_factory=dict)
    cost: Cost | None = None
    unsigned_headers: list[str] = field(default_factory=list)  # a signed request's, all unsigned
    unsigned_properties: list[str] = field(default_factory=list)
    readable_body: str = ""  # a signed request's body as anyone reads it
    seconds: float = 0.0


def _start_signing(lab: Lab, keys: Keys, caller: Any, timeout: float = 40.0) -> Worker:
    """A signing worker on the service's sync queue, ready when it answers a *signed* ping
    (its control mailbox accepts ``auth`` only, so the lab's JSON ping goes unanswered)."""
    worker = start_worker(lab, SERVICE, "sync", config=worker_settings(keys), wait=False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not worker.is_running():
            break
        with contextlib.suppress(Exception):
            if caller.control.ping(destination=[worker.hostname], timeout=0.5):
                return worker
    log = read_log(worker)[-600:]
    worker.stop()
    raise RuntimeError(f"the signing worker did not answer a signed ping: {log}")


def _stop(worker: Worker, caller: Any) -> None:
    """Warm stop; a signed ping first wakes an idle worker up (the lab's own is JSON)."""
    with contextlib.suppress(Exception):
        caller.control.ping(destination=[worker.hostname], timeout=0.05)
    worker.stop()


def _first_complaint(text: str) -> str:
    lines = [line for line in text.splitlines() if "ERROR" in line or "WARNING" in line]
    return lines[0].split("] ", 1)[-1][:160] if lines else ""


def run(lab: Lab, *, calls: int = 200, wait: float = 2.0) -> Run:
    """Every experiment of this module, in one run (see the module's documentation)."""
    from ..design.services import mpwallet

    started = time.monotonic()
    lab.prepare_topology()
    out = Run()
    # user A has a wallet, user B has none
    user_a, user_b = (int(uuid.uuid4().int % 10**9) + 1 for _ in range(2))
    with signing_keys(lab) as keys:
        caller, plain = signing_caller(lab, keys), json_caller(lab)
        try:
            gaps = _Gaps(lab, keys, caller, plain, mpwallet.service.storage, user_a, user_b)
            stolen, read_a, sizes = gaps.run(out)
            worker = _results(lab, keys, caller, stolen, read_a, user_b, wait, out)
            try:
                signed_ms = timed_echo_calls(caller, calls, user_a)
            finally:
                _stop(worker, caller)
            with start_worker(lab, SERVICE, "sync"):
                json_ms = timed_echo_calls(plain, calls, user_a)
            out.cost = Cost(calls, json_ms, signed_ms, *sizes, *_codec_ms(CODEC_ROUNDS, user_a))
        finally:
            caller.close()
            plain.close()
    out.seconds = time.monotonic() - started
    return out


class _Gaps:
    """With a signing worker: what it refuses, and what it runs that its signer never sent."""

    def __init__(self, lab, keys, caller, plain, storage, user_a, user_b):
        self.lab, self.keys, self.caller, self.plain = lab, keys, caller, plain
        self.storage, self.user_a, self.user_b = storage, user_a, user_b
        self.worker: Worker | None = None

    def call(self, task: str, **kwargs: Any) -> Any:
        return self.caller.send_task(f"{SERVICE}.sync.{task}", kwargs=kwargs)

    def balance(self, user_id: int) -> str:
        try:
            return f"{self.call('get_balance', user_id=user_id).get(timeout=10)} cents"
        except Exception as exc:  # noqa: BLE001 - no wallet is an answer here
            return type(exc).__name__

    def publish(
        self, message: Any, body: bytes | str | None = None, **change: Any
    ) -> tuple[str, str]:
        """Publish, then wait for a signed call after it; the task id and what the worker logged."""
        mark = len(read_log(self.worker))
        task_id = _republish(self.lab.sync.url, message, body, **change)
        self.call("echo", user_id=self.user_a).get(timeout=10)
        return task_id, _first_complaint(read_log(self.worker)[mark:])

    def case(self, out: Run, key: str, what: str, task_id: str, effect: str, log: str = "") -> None:
        ran = sum(1 for e in self.storage.executions() if e["task_id"] == task_id)
        out.cases[key] = Case(key, what, ran, effect, log)

    def run(self, out: Run) -> tuple[Any, Any, tuple[int, int]]:
        tap = _Tap(self.lab.sync.url)
        self.worker = _start_signing(self.lab, self.keys, self.caller)
        try:
            return self._run(out, tap)
        finally:
            tap.close()
            _stop(self.worker, self.caller)

    def _run(self, out: Run, tap: _Tap) -> tuple[Any, Any, tuple[int, int]]:
        from celery.security.certificate import Certificate
        from celery.security.key import PrivateKey
        from celery.security.serialization import SecureSerializer

        a, b = self.user_a, self.user_b
        self.call("open_wallet", user_id=a).get(timeout=10)
        deposit = self.call("deposit", user_id=a, amount_cents=100)
        deposit.get(timeout=10)
        signed = tap.take(deposit.id)
        parts = read_signed(signed.body)
        out.unsigned_headers = sorted(signed.headers)
        out.unsigned_properties = sorted(
            k for k in ("reply_to", "correlation_id") if signed.properties.get(k)
        )
        out.readable_body = parts.body.decode()
        self.case(out, "signed", "a deposit of 100 cents, signed with the caller's key",
                  deposit.id, f"user A's balance {self.balance(a)}")  # fmt: skip

        mark = len(read_log(self.worker))
        unsigned = self.plain.send_task(
            f"{SERVICE}.sync.deposit", kwargs={"user_id": a, "amount_cents": 100}
        )
        self.call("echo", user_id=a).get(timeout=10)
        sizes = (len(tap.take(unsigned.id).body), len(signed.body))
        self.case(out, "unsigned", "the same deposit from a JSON caller", unsigned.id,
                  f"user A's balance {self.balance(a)}",
                  _first_complaint(read_log(self.worker)[mark:]))  # fmt: skip

        changed = json.loads(parts.body)
        changed[1]["amount_cents"] = 900
        task_id, log = self.publish(
            signed, parts.with_body(json.dumps(changed).encode()), id=str(uuid.uuid4())
        )
        self.case(out, "body changed", "the signed deposit, 900 cents written into its body",
                  task_id, f"user A's balance {self.balance(a)}", log)  # fmt: skip

        stranger = SecureSerializer(
            PrivateKey(self.keys.stranger.key.read_text()),
            Certificate(self.keys.stranger.cert.read_text()),
            None,
            DIGEST,
            "json",
        )
        task_id, log = self.publish(
            signed, stranger.serialize(json.loads(parts.body)), id=str(uuid.uuid4())
        )
        self.case(out, "stranger's key", "the deposit signed with a key the store does not hold",
                  task_id, f"user A's balance {self.balance(a)}", log)  # fmt: skip

        # What the signature does not cover: the headers and the properties.
        read_b = self.call("get_balance", user_id=b)
        with contextlib.suppress(Exception):  # user B has no wallet
            read_b.get(timeout=10)
        task_id, log = self.publish(
            tap.take(read_b.id), id=str(uuid.uuid4()), task=f"{SERVICE}.sync.open_wallet"
        )
        self.case(out, "task header", "a signed read of user B's balance, its task header "
                  "changed to open_wallet", task_id,
                  f"user B's balance {self.balance(b)} (a wallet opened)", log)  # fmt: skip

        task_id, log = self.publish(signed)
        self.case(out, "replay", "the captured signed deposit, published again as it was",
                  task_id, f"user A's balance {self.balance(a)}", log)  # fmt: skip

        read_a = self.call("get_balance", user_id=a)
        read_a.get(timeout=10)
        captured_a = tap.take(read_a.id)
        stolen = self._redirect(out, captured_a)
        return stolen, captured_a, sizes

    def _redirect(self, out: Run, captured: Any) -> Any:
        attacker = f"attacker-{uuid.uuid4().hex[:8]}"
        with Connection(self.lab.sync.url) as conn:
            channel = conn.channel()
            channel.queue_declare(attacker, exclusive=True)  # gone with this connection
            try:
                task_id, log = self.publish(
                    captured, id=str(uuid.uuid4()), reply_to=attacker, correlation_id=None
                )
                got = _get(channel, attacker, 5.0)
            finally:
                channel.queue_delete(attacker)
        result = json.loads(read_signed(got.body).body) if got is not None else {}
        self.case(out, "reply_to", "a signed read of user A's balance, its reply_to changed to "
                  "a queue of the attacker's", task_id,
                  f"the attacker's queue got user A's balance, {result.get('result')!r} cents, "
                  "read with no key", log)  # fmt: skip
        return got


def _get(channel: Any, queue: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = channel.basic_get(queue, no_ack=True)
        if message is not None:
            return message
        time.sleep(0.02)
    return None


def _take_request(url: str, task_id: str, timeout: float = 5.0) -> Any:
    """The caller's request, taken out of the service's queue (no worker is running)."""
    with Connection(url) as conn:
        message = _get(conn.channel(), QUEUE, timeout)
    if message is None or message.headers.get("id") != task_id:
        raise RuntimeError(f"expected request {task_id} first in {QUEUE}, found {message!r}")
    return message


def _reply(url: str, request: Any, body: bytes | str, content_type: str, encoding: str) -> None:
    with Connection(url) as conn:
        Producer(conn.channel()).publish(
            body,
            exchange="",
            routing_key=request.properties["reply_to"],
            correlation_id=request.properties.get("correlation_id"),
            content_type=content_type,
            content_encoding=encoding,
        )


def _answer(result: Any, timeout: float) -> str:
    try:
        return f"returned {result.get(timeout=timeout)!r}"
    except Exception as exc:  # noqa: BLE001 - the refusal is the observation
        return f"raised {type(exc).__name__}"


def _results(lab, keys, caller, stolen, read_a, user_b, wait, out: Run) -> Worker:
    """With no worker running: what a signing caller does with results nobody signed for it.
    Returns the signing worker it starts last (the caller's cost is measured with it)."""
    with Connection(lab.sync.url) as conn:
        conn.channel().queue_purge(QUEUE)
    url = lab.sync.url

    def victim() -> tuple[Any, Any]:
        result = caller.send_task(f"{SERVICE}.sync.get_balance", kwargs={"user_id": user_b})
        return result, _take_request(url, result.id)

    result, request = victim()
    meta = {"task_id": result.id, "status": "SUCCESS", "result": 10**6, "traceback": None,
            "children": [], "date_done": None}  # fmt: skip
    _reply(url, request, json.dumps(meta), "application/json", "utf-8")
    out.results["forged JSON"] = ResultCase(
        "forged JSON", "an unsigned JSON result: 1000000 cents", _answer(result, wait)
    )
    result, request = victim()
    _reply(url, request, stolen.body, stolen.content_type, stolen.content_encoding)
    out.results["signed for another call"] = ResultCase(
        "signed for another call",
        "the result the worker signed for the redirected read of user A",
        _answer(result, wait),
    )
    result, request = victim()
    _republish(url, read_a, id=result.id, reply_to=request.properties["reply_to"],
               correlation_id=request.properties.get("correlation_id"))  # fmt: skip
    worker = _start_signing(lab, keys, caller)
    out.results["request swapped"] = ResultCase(
        "request swapped",
        "the caller's request (user B) replaced by the captured signed read of user A, with "
        "the caller's id, reply_to and correlation id; the worker answers it",
        _answer(result, 10),
    )
    return worker


#: Rounds of :func:`_codec_ms`: 200 take about 60 ms.
CODEC_ROUNDS = 200


def _codec_ms(rounds: int, user_id: int) -> tuple[float, float, float]:
    """Median CPU time of this thread, in ms, to serialize a deposit's body and read it back:
    in JSON, with the ``auth`` codec registered here (one signature and one check), and in
    pickle. They alternate round by round, and CPU time leaves out any wait for a core: a busy
    machine changes none of them."""
    from kombu.serialization import dumps, loads

    body = ([], {"user_id": user_id, "amount_cents": 100}, {"callbacks": None})
    times: dict[str, list[float]] = {"json": [], "auth": [], "pickle": []}
    for _ in range(rounds):
        for name, spent in times.items():
            start = time.thread_time()
            content_type, encoding, data = dumps(body, serializer=name)
            loads(data, content_type, encoding, accept=[content_type])
            spent.append((time.thread_time() - start) * 1000)
    return tuple(statistics.median(times[name]) for name in ("json", "auth", "pickle"))


def timed_echo_calls(app: Any, calls: int, user_id: int = 7) -> list[float]:
    """Milliseconds of each of ``calls`` sync calls to ``mpwallet.sync.echo``, one after another."""
    out = []
    for _ in range(calls):
        start = time.perf_counter()
        app.send_task(f"{SERVICE}.sync.echo", kwargs={"user_id": user_id}).get(timeout=10)
        out.append((time.perf_counter() - start) * 1000)
    return out


def cases_table(run: Run) -> str:
    """One line per case: what was sent, whether the worker ran it, what it changed."""
    lines = [f"{'case':<16} {'runs':<4} what was sent -> effect"]
    for case in run.cases.values():
        lines.append(f"{case.key:<16} {case.runs:<4} {case.what} -> {case.effect}")
        if case.log:
            lines.append(f"{'':<21} the worker logged: {case.log}")
    return "\n".join(lines)


def plot_cost(cost: Cost) -> Any:
    """The two latency distributions side by side, the medians marked."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 2.6))
    ax.boxplot([cost.json_ms, cost.signed_ms], vert=False, showfliers=False, widths=0.5)
    ax.set_yticks([1, 2], [f"JSON\n{cost.json_bytes} B", f"signed (auth)\n{cost.signed_bytes} B"])
    ax.set_xlabel(f"sync call latency, ms ({cost.calls} calls each, whiskers 1.5 IQR)")
    for y, median in ((1, cost.json_median), (2, cost.signed_median)):
        ax.annotate(f"{median:.2f} ms", (median, y + 0.3), ha="center", fontsize=8)
    ax.set_title("what signing costs a sync call (mpwallet.sync.echo, one worker)")
    fig.tight_layout()
    return fig
