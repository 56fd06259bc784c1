"""What watching with Flower costs a measurement (notebook 05's appendix).

The lab's workers send no events, so nothing the notebooks measure pays for them. Watching with
Flower means task events: each task's worker publishes ``task-received``, ``task-started`` and
``task-succeeded`` to the ``celeryev`` exchange, and Flower consumes them. :func:`events_cost`
runs Flower on both brokers throughout and times the same work with the workers' task events
off and on, in alternate rounds (:func:`~mpsoa_lab.running.flower.watching`): a burst of async
tasks drained by one worker, and sync calls one after the other. It also reads back from
Flower's own HTTP API how many tasks Flower saw: those of the rounds with events on, none of
the others.
"""

from __future__ import annotations

import statistics
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from ..plumbing.util import wait_until
from ..running.flower import flower_url, flowers, stop_flower, wait_idle, watching
from ..running.lab import Lab
from ..running.workers import start_worker

__all__ = ["EventsCost", "events_cost", "flower_tasks"]

MODES = ("off", "on")


@dataclass
class EventsCost:
    """Per mode (``off``, ``on``): seconds to drain each burst, each sync call's seconds."""

    tasks: int
    calls: int
    drain_s: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in MODES})
    sync_s: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in MODES})
    seen_by_flower: dict[str, int] = field(default_factory=dict)  # tasks Flower saw, by broker
    sent_with_events: dict[str, int] = field(default_factory=lambda: {"sync": 0, "async": 0})

    def sync_median_ms(self, mode: str) -> float:
        """The median sync call with events ``mode`` (``off`` or ``on``), in milliseconds."""
        return statistics.median(self.sync_s[mode]) * 1000

    def drain_ratio(self) -> float:
        """Median drain time with events on over off."""
        return statistics.median(self.drain_s["on"]) / statistics.median(self.drain_s["off"])

    def sync_ratio(self) -> float:
        """Median sync call with events on over off."""
        return statistics.median(self.sync_s["on"]) / statistics.median(self.sync_s["off"])


def flower_tasks(flower: Any) -> dict[str, Any]:
    """Every task Flower has seen, from its HTTP API (``GET /api/tasks``), by task id."""
    import requests

    with requests.Session() as http:
        http.trust_env = False  # loopback: never through a proxy
        answer = http.get(flower_url(flower) + "/api/tasks", timeout=10)
        answer.raise_for_status()
        return answer.json()


def _drain(async_app: Any, storage: Any, tasks: int, timeout: float) -> float:
    ids = set()
    t0 = time.perf_counter()
    with async_app.producer_or_acquire() as producer:
        for i in range(tasks):
            kwargs = {"entry_id": f"watch-{uuid.uuid4()}", "account": "watch", "amount_cents": i}
            sent = async_app.send_task(
                "mpledger.async.record_entry", kwargs=kwargs, producer=producer
            )
            ids.add(sent.id)
    wait_until(
        lambda: ids <= {e["task_id"] for e in storage.executions()}, timeout=timeout, interval=0.02
    )
    return time.perf_counter() - t0


def _calls(sync_app: Any, calls: int) -> list[float]:
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        sync_app.send_task("mpledger.sync.balance", kwargs={"account": "watch"}).get(timeout=10)
        times.append(time.perf_counter() - t0)
    return times


def events_cost(
    lab: Lab, *, tasks: int = 200, calls: int = 40, rounds: int = 3, timeout: float = 60.0
) -> EventsCost:
    """Flower on both brokers; one watchable ``mpledger`` worker of each kind; ``rounds``
    rounds of (events off, events on), each a burst of ``tasks`` async tasks drained and
    ``calls`` sync calls. Everything is stopped at the end."""
    from ..design.services import mpledger

    storage = mpledger.service.storage
    lab.prepare_topology()
    result = EventsCost(tasks, calls)
    started = flowers(lab, quiet=True)
    workers = []
    try:
        workers = [
            start_worker(lab, "mpledger", kind, watchable=True) for kind in ("sync", "async")
        ]
        _calls(mpledger.sync_app, 3)  # warm: connections and the reply queue
        for _ in range(rounds):
            for mode in MODES:
                storage.reset()
                wait_idle(workers)  # the last round's last task reported, before a switch
                if mode == "on":
                    with watching(workers):
                        result.drain_s[mode].append(
                            _drain(mpledger.async_app, storage, tasks, timeout)
                        )
                        result.sync_s[mode] += _calls(mpledger.sync_app, calls)
                        wait_idle(workers)  # every watched task's last event sent
                    result.sent_with_events["async"] += tasks
                    result.sent_with_events["sync"] += calls
                else:
                    result.drain_s[mode].append(_drain(mpledger.async_app, storage, tasks, timeout))
                    result.sync_s[mode] += _calls(mpledger.sync_app, calls)
        time.sleep(1.0)  # Flower's last events, in flight to it
        result.seen_by_flower = {role: len(flower_tasks(f)) for role, f in started.items()}
    finally:
        for worker in workers:
            worker.stop()
        for flower in started.values():
            stop_flower(lab, flower)
    return result
