"""TLS for the design's broker: who gets in, and what it costs against plain AMQP (notebook 13).

:func:`who_gets_in` tries a TLS-only node (:func:`~mpsoa_lab.running.tls.tls_broker`) with the
lab's client certificate, with none, with one from another authority, with an expired one, and
with plain AMQP. :func:`cost` measures, in one run, connection set-up (a new AMQP connection,
opened and closed) and sync-call latency (``mpwallet.sync.echo``, one prefork worker each way)
over plain AMQP on the lab's node and over TLS on the TLS node, taking turns in blocks of
:data:`TURN` connections or calls, so that the load of anything running beside it falls on both
alike.
"""

from __future__ import annotations

import ssl
import statistics
import time
from dataclasses import dataclass
from typing import Any

from kombu import Connection

from ..design.apps import celery_apps_factory
from ..running.lab import Lab
from ..running.tls import TLSBroker
from ..running.workers import Worker, start_worker
from .signed_messages import timed_echo_calls

__all__ = ["who_gets_in", "Cost", "cost", "REFUSED", "CLOSED"]

REFUSED = "refused in the TLS handshake"
CLOSED = "closed by the node"
TASK = "mpwallet.sync.echo"
#: Connections opened, or sync calls made, one way before the other way's turn.
TURN = 10


def _connects(url: str, options: dict[str, Any] | None) -> str:
    try:
        with Connection(url, ssl=options, connect_timeout=5) as conn:
            conn.connect()
        return "connected"
    except ssl.SSLError:  # an alert, or the node closing the handshake (SSLEOFError)
        return REFUSED
    except OSError:  # reset (3.10), or closed before the AMQP greeting (4.0)
        return CLOSED


def who_gets_in(broker: TLSBroker) -> dict[str, str]:
    """Each kind of client, and how its connection to the TLS node ended."""
    return {
        "the lab's client certificate": _connects(broker.url, broker.ssl()),
        "no certificate": _connects(broker.url, broker.ssl(False)),
        "a certificate from another authority": _connects(
            broker.url, broker.ssl(broker.issue("stranger", other_ca=True))
        ),
        "an expired certificate": _connects(broker.url, broker.ssl(broker.issue("old", days=-1))),
        "plain AMQP to the TLS port": _connects(broker.plain_url, None),
    }


@dataclass
class Cost:
    connects: int
    calls: int
    plain_connect_ms: list[float]
    tls_connect_ms: list[float]
    plain_call_ms: list[float]
    tls_call_ms: list[float]

    def median(self, name: str) -> float:
        return statistics.median(getattr(self, f"{name}_ms"))


def _connect_ms(url: str, options: dict[str, Any] | None, rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        start = time.perf_counter()
        with Connection(url, ssl=options, connect_timeout=5) as conn:
            conn.connect()
        out.append((time.perf_counter() - start) * 1000)
    return out


def _serving(lab: Lab, url: str, options: dict[str, Any] | None) -> tuple[Worker, Any]:
    """A sync worker of mpwallet on ``url`` and a caller app, once it has answered a call."""
    config = {"broker_use_ssl": options} if options else None
    worker = start_worker(
        lab, "mpwallet", "sync", config=config, broker_urls=(url, url), wait=False
    )
    app, other = celery_apps_factory("PUBLISHER", url, url, "mpwallet")
    other.close()
    if options:
        app.conf.broker_use_ssl = options
    deadline = time.monotonic() + 60
    while True:
        try:
            app.send_task(TASK, kwargs={"user_id": 7}).get(timeout=2)
            return worker, app
        except Exception:
            if time.monotonic() > deadline or not worker.is_running():
                worker.kill()
                app.close()
                raise


def cost(lab: Lab, broker: TLSBroker, *, connects: int = 30, calls: int = 200) -> Cost:
    """Connection set-up and sync-call latency, plain (the lab's sync node, this space) and TLS,
    taking turns in blocks of :data:`TURN`: ``connects`` new connections each way, then ``calls``
    sync calls each way (both rounded down to a multiple of :data:`TURN`), both workers serving
    throughout."""
    lab.prepare_topology()
    ways = {"plain": (lab.sync.url, None), "tls": (broker.url, broker.ssl())}
    connect: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(connects // TURN):  # in blocks: a node still closing the other way's
        for name, (url, options) in ways.items():  # last connection delays only a block's first
            connect[name] += _connect_ms(url, options, TURN)
    measured: dict[str, list[float]] = {name: [] for name in ways}
    serving: dict[str, tuple[Worker, Any]] = {}
    try:
        for name, (url, options) in ways.items():
            serving[name] = _serving(lab, url, options)
        for _ in range(calls // TURN):
            for name, (_worker, app) in serving.items():
                measured[name] += timed_echo_calls(app, TURN)
    finally:
        for worker, app in serving.values():
            worker.stop()
            app.close()
    return Cost(
        connects // TURN * TURN, calls // TURN * TURN, connect["plain"], connect["tls"],
        measured["plain"], measured["tls"],
    )  # fmt: skip
