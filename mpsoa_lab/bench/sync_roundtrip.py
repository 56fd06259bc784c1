"""Part (a), the sync round trip: Celery's ``send_task(...).get()`` over ``rpc://`` against
a raw kombu request and reply over direct reply-to, with the same work on the other side.

The two sync workers (prefork, the recommended pool, and solo) take turns on their queue
through Celery's remote control; the raw responder has a queue of its own. p50 and p99 of the
round trip per round, their medians, and where the time of a round trip goes.
"""

from __future__ import annotations

import socket
import statistics
import time
import uuid
from collections import defaultdict
from typing import Any

from ..observe.latency import percentile
from .message_size import capture_celery_message, size_of
from .rounds import rotate
from .session import BenchSession
from .storage import Storage
from .workload import SYNC_QUEUE, SYNC_TASK

__all__ = ["sync_round_trips"]


def sync_round_trips(run: BenchSession) -> dict[str, Any]:
    """Round trips of every variant, round after round; the ``sync`` section of the results."""
    c = run.counts
    kwargs = {"account": "bench-sync"}
    variants = ["raw", "celery_prefork", "celery_solo"]
    worker_of = {
        "celery_solo": f"{run.prefix}sync-solo",
        "celery_prefork": f"{run.prefix}sync-prefork",
    }
    samples: dict[str, list[dict]] = {v: [] for v in variants}
    rounds = []

    def call(variant: str) -> dict:
        if variant == "raw":
            cid = run.prefix + uuid.uuid4().hex
            t0w, t0 = time.time(), time.perf_counter()
            run.raw.publish(SYNC_TASK, kwargs, cid)
            t1w = time.time()
            result = run.raw.wait(cid, 30)["result"]
            t2 = time.perf_counter()
        else:
            t0w, t0 = time.time(), time.perf_counter()
            async_result = run.sync_app.send_task(SYNC_TASK, kwargs=kwargs)
            t1w = time.time()
            result = async_result.get(timeout=30)
            t2 = time.perf_counter()
            cid = async_result.id
        return {
            "id": cid,
            "t0": t0w,
            "sent": t1w,
            "end": t0w + (t2 - t0),
            "rtt": t2 - t0,
            "result": result,
        }

    active = None
    for r in range(-1, c.sync_rounds):  # round -1 is the warm-up
        row = {}
        for variant in rotate(variants, max(r, 0)):
            if variant != "raw" and active != variant:
                run.consume_only("sync", SYNC_QUEUE, [worker_of[variant]])
                active = variant
            n = c.sync_warmup if r < 0 else c.sync_calls
            calls = [call(variant) for _ in range(n)]
            if r < 0:
                continue
            samples[variant] += calls
            rtts = [x["rtt"] for x in calls]
            row[variant] = {
                "p50_ms": percentile(rtts, 50) * 1e3,
                "p99_ms": percentile(rtts, 99) * 1e3,
            }
        if r >= 0:
            rounds.append(row)
            run.log(
                f"(a) round {r + 1}/{c.sync_rounds}: "
                + "  ".join(f"{v} p50 {row[v]['p50_ms']:.2f} ms" for v in variants)
            )

    results = {x["result"] for v in variants for x in samples[v]}
    median = {
        v: {k: statistics.median([row[v][k] for row in rounds]) for k in ("p50_ms", "p99_ms")}
        for v in variants
    }
    ratios = {
        f"{v}/raw": {
            k: statistics.median([row[v][k] / row["raw"][k] for row in rounds])
            for k in ("p50_ms", "p99_ms")
        }
        for v in variants
        if v != "raw"
    }
    pooled = {
        v: {
            "p50_ms": percentile([x["rtt"] for x in samples[v]], 50) * 1e3,
            "p99_ms": percentile([x["rtt"] for x in samples[v]], 99) * 1e3,
            "calls": len(samples[v]),
        }
        for v in variants
    }
    return {
        "task": SYNC_TASK,
        "kwargs": kwargs,
        "variants": variants,
        "rounds": rounds,
        "median": median,
        "ratios": ratios,
        "pooled": pooled,
        "results_agree": len(results) == 1,
        "breakdown_ms": _breakdown(run, samples, worker_of),
        "celery_caller_ms": _caller_timers(run, kwargs, worker_of["celery_prefork"]),
        "message": _sizes(run, kwargs),
    }


def _caller_timers(run: BenchSession, kwargs: dict, worker: str) -> dict[str, float]:
    """The caller's side of a Celery sync call, timed step by step (after the rounds)."""
    run.consume_only("sync", SYNC_QUEUE, [worker])
    n = min(run.counts.sync_calls, 200)
    backend = run.sync_app.backend
    spent: dict[str, list[float]] = defaultdict(list)
    on_task_call = backend.on_task_call

    def timed_on_task_call(*args, **kw):
        t = time.perf_counter()
        try:
            return on_task_call(*args, **kw)
        finally:
            spent["declare"].append(time.perf_counter() - t)

    backend.on_task_call = timed_on_task_call
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            result = run.sync_app.send_task(SYNC_TASK, kwargs=kwargs)
            t1 = time.perf_counter()
            result.get(timeout=10)
            spent["send"].append(t1 - t0)
            spent["get"].append(time.perf_counter() - t1)
    finally:
        del backend.on_task_call
    return {
        "send_task": round(statistics.median(spent["send"]) * 1e3, 3),
        "  of it the rpc:// reply queue declared again (a broker round trip)": round(
            statistics.median(spent["declare"]) * 1e3, 3
        ),
        "get(): waiting for the reply": round(statistics.median(spent["get"]) * 1e3, 3),
        "calls": n,
    }


def _breakdown(
    run: BenchSession, samples: dict[str, list[dict]], worker_of: dict[str, str]
) -> dict:
    """Where a round trip goes, from the caller's clock and the execution log's timestamps."""
    db = Storage(run.storage_path())
    try:
        hosts = {v: run.workers[n].hostname for v, n in worker_of.items()}
        hosts["raw"] = f"{run.responder_name}@{socket.gethostname()}"
        out = {}
        for variant, calls in samples.items():
            rows = {
                row["task_id"]: row
                for row in db.query(
                    "SELECT task_id, started, finished FROM executions WHERE hostname = ?",
                    (hosts[variant],),
                )
            }
            parts = defaultdict(list)
            for x in calls:
                row = rows.get(x["id"])
                if row is None:
                    continue
                parts["caller publishes"].append(x["sent"] - x["t0"])
                parts["request reaches the task (broker, consumer)"].append(
                    row["started"] - x["sent"]
                )
                parts["task body (same function)"].append(row["finished"] - row["started"])
                parts["reply reaches the caller (log row, reply, broker)"].append(
                    x["end"] - row["finished"]
                )
            out[variant] = {k: round(statistics.median(v) * 1e3, 3) for k, v in parts.items()}
            out[variant]["calls matched in the execution log"] = len(parts["caller publishes"])
        return out
    finally:
        db.close()


def _sizes(run: BenchSession, kwargs: dict) -> dict[str, Any]:
    """Bytes of a sync request: the payload, Celery's message and the raw one."""
    captured = capture_celery_message(
        lambda: run.sync_app.send_task(SYNC_TASK, kwargs=kwargs).get(timeout=10)
    )
    return {
        "payload": kwargs,
        "payload_bytes": size_of(kwargs, None)["body_bytes"],
        "celery": captured,
        "raw": size_of(kwargs, None),
        "delivery_mode": "transient (1), request and reply",
    }
