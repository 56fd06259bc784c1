"""What the benchmark measures and how much: task and queue names, worker settings, counts.

The raw responder's queue sits on the service's own topic exchange, beside its Celery queue;
requests reach it with the task name behind :data:`RAW_PREFIX` as routing key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "ASYNC_QUEUE",
    "ASYNC_TASK",
    "CONCURRENCY",
    "DIRECT_REPLY_TO",
    "E2E_POOLS",
    "FULL",
    "POOLS",
    "PREFETCH_MULTIPLIER",
    "QUICK",
    "RAW_PREFIX",
    "RAW_QUEUE",
    "SYNC_QUEUE",
    "SYNC_TASK",
    "WORKER_OPTIONS",
    "Counts",
]

SYNC_TASK = "mpledger.sync.entry_count"
ASYNC_TASK = "mpledger.async.record_entry"
SYNC_QUEUE, ASYNC_QUEUE = "mpledger.sync", "mpledger.async"
#: The raw responder's queue: bound to the service's own topic exchange, beside its Celery queue.
RAW_QUEUE, RAW_PREFIX = "bench.raw.mpledger.sync", "bench.raw."
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
#: Worker pools measured in (a), the recommended one first (see RECOMMENDED); (c) measures
#: ``E2E_POOLS`` unless told otherwise (``--e2e-pools prefork,solo``: solo bursts stall here).
POOLS = ("prefork", "solo")
E2E_POOLS = ("prefork",)
CONCURRENCY, PREFETCH_MULTIPLIER = 1, 4
#: Options of every Celery worker the benchmark starts (the raw responder prefetches as many).
WORKER_OPTIONS: dict[str, Any] = {
    "concurrency": CONCURRENCY,
    "prefetch_multiplier": PREFETCH_MULTIPLIER,
    "loglevel": "WARNING",
}


@dataclass(frozen=True)
class Counts:
    """How much each part measures: rounds, and calls or messages per round."""

    sync_rounds: int
    sync_calls: int
    sync_warmup: int
    publish_rounds: int
    publish_messages: int
    publish_connection_messages: int  # a connection per message is slow: fewer
    publish_warmup: int
    profile_messages: int
    e2e_rounds: int
    e2e_tasks: int
    e2e_warmup: int
    lab_start_rounds: int = 0  # up against the nodes by hand (about 15 s a round)


FULL = Counts(
    sync_rounds=5,
    sync_calls=300,
    sync_warmup=50,
    publish_rounds=7,
    publish_messages=4000,
    publish_connection_messages=300,
    publish_warmup=500,
    profile_messages=2000,
    e2e_rounds=5,
    e2e_tasks=1000,
    e2e_warmup=100,
    lab_start_rounds=3,
)
QUICK = Counts(
    sync_rounds=3,
    sync_calls=30,
    sync_warmup=10,
    publish_rounds=3,
    publish_messages=300,
    publish_connection_messages=20,
    publish_warmup=50,
    profile_messages=200,
    e2e_rounds=1,
    e2e_tasks=60,
    e2e_warmup=10,
)
