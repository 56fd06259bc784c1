"""Part (b), the async publish rate: ``send_task`` several ways against kombu's
``Producer.publish`` of the same arguments to the same exchange and routing key.

Both persistent, no publisher confirms; messages per second on the publishing side. Every
message is then counted in the queue, and the queue purged before the next burst.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from .message_size import capture_celery_message, size_of
from .publish_breakdown import publish_breakdown
from .rounds import rotate, wait_for
from .session import BenchSession
from .workload import ASYNC_QUEUE, ASYNC_TASK

__all__ = ["publish_rates"]


def publish_rates(run: BenchSession) -> dict[str, Any]:
    """Bursts of every variant, round after round; the ``async_publish`` section."""
    from kombu import Producer

    from ..design.topology import service_exchange

    c = run.counts
    channel = run.broker["async"].channel()
    run.stack.callback(channel.close)
    raw_producer = Producer(
        channel, exchange=service_exchange("mpledger"), routing_key=ASYNC_TASK, serializer="json"
    )

    def payloads(n: int, tag: str) -> list[dict]:
        return [
            {"entry_id": f"{run.prefix}{tag}-{i}", "account": "bench-async", "amount_cents": 100}
            for i in range(n)
        ]

    def celery_burst(app, per_call: bool = False, **extra) -> Callable[[list[dict]], None]:
        def burst(batch: list[dict]) -> None:
            if per_call:
                for kw in batch:
                    app.send_task(ASYNC_TASK, kwargs=kw, **extra)
                return
            with app.producer_or_acquire() as producer:
                for kw in batch:
                    app.send_task(ASYNC_TASK, kwargs=kw, producer=producer, **extra)

        return burst

    def connection_per_message(batch: list[dict]) -> None:
        # What BROKER_POOL_LIMIT = 0 does: connect, publish, close, for every message. Not
        # measured through the setting itself: kombu's pool limit is one for the whole
        # process, so an app with limit 0 would unpool every other app here too.
        for kw in batch:
            with run.async_app.connection_for_write() as conn:
                run.async_app.send_task(ASYNC_TASK, kwargs=kw, connection=conn)

    def raw_burst(batch: list[dict]) -> None:
        for kw in batch:
            raw_producer.publish(kw, delivery_mode=2)

    variants: dict[str, tuple[Callable, int]] = {
        "raw": (raw_burst, c.publish_messages),
        "celery_recommended": (celery_burst(run.async_app), c.publish_messages),
        "celery_producer_per_call": (
            celery_burst(run.async_app, per_call=True),
            c.publish_messages,
        ),
        "celery_stripped": (
            celery_burst(run.async_app, argsrepr="", kwargsrepr="", declare=[], retry=False),
            c.publish_messages,
        ),
        "celery_connection_per_message": (connection_per_message, c.publish_connection_messages),
    }
    names = list(variants)
    rounds, counted = [], Counter()
    for r in range(-1, c.publish_rounds):
        row = {}
        for name in rotate(names, max(r, 0)):
            burst, n = variants[name]
            n = min(n, c.publish_warmup) if r < 0 else n
            batch = payloads(n, f"{name}-{r}")
            started = time.perf_counter()
            burst(batch)
            elapsed = time.perf_counter() - started
            in_queue = wait_for(lambda n=n: run.queue_state("async", ASYNC_QUEUE)[0] >= n, 10)
            queued = run.queue_state("async", ASYNC_QUEUE)[0]
            purged = run.purge("async", ASYNC_QUEUE)
            if r >= 0:
                row[name] = n / elapsed
                counted.update(
                    {
                        f"{name} published": n,
                        f"{name} counted in queue": queued,
                        f"{name} purged": purged,
                    }
                )
                if not in_queue:
                    run.log(f"(b) {name}: only {queued} of {n} messages reached the queue")
        if r >= 0:
            rounds.append(row)
            run.log(
                f"(b) round {r + 1}/{c.publish_rounds}: "
                + "  ".join(f"{v} {row[v]:,.0f}/s" for v in names)
            )
    median = {v: statistics.median([row[v] for row in rounds]) for v in names}
    ratios = {
        f"{v}/raw": statistics.median([row[v] / row["raw"] for row in rounds])
        for v in names
        if v != "raw"
    }
    sizes = {
        "payload_bytes": size_of(payloads(1, "size")[0], None)["body_bytes"],
        "celery": capture_celery_message(
            lambda: run.async_app.send_task(ASYNC_TASK, kwargs=payloads(1, "size")[0])
        ),
        "raw": size_of(payloads(1, "size")[0], None),
        "delivery_mode": "persistent (2)",
        "publisher_confirms": False,
    }
    run.purge("async", ASYNC_QUEUE)
    breakdown = publish_breakdown(run, raw_producer, payloads)
    return {
        "task": ASYNC_TASK,
        "exchange": "mpledger",
        "routing_key": ASYNC_TASK,
        "variants": names,
        "rounds": rounds,
        "median_msgs_per_s": median,
        "ratios": ratios,
        "counts": dict(counted),
        "message": sizes,
        "breakdown_us_per_message": breakdown["timers"],
        "profile_top": breakdown["profile"],
    }
