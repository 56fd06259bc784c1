"""Where the time of a publish goes: timers around each step of a Celery publish and of a raw
kombu one, then a cProfile listing of the Celery path (part (b) of the benchmark)."""

from __future__ import annotations

import cProfile
import pstats
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .session import BenchSession
from .workload import ASYNC_QUEUE, ASYNC_TASK

if TYPE_CHECKING:
    from kombu import Producer

__all__ = ["profile_top", "publish_breakdown"]


def publish_breakdown(
    run: BenchSession, raw_producer: Producer, payloads: Callable[[int, str], list[dict]]
) -> dict[str, Any]:
    """Timers around each step of a Celery publish (recommended path) and of a raw one, on
    an app used for nothing else; then a cProfile of the Celery path.

    Timed in small chunks, Celery and raw in turn, the queue emptied and the broker given
    a moment after each: a long run of persistent messages makes the broker push back
    (the socket write blocks), which would drown the client's own costs.
    """
    import celery.app.amqp as celery_amqp

    n = run.counts.profile_messages
    chunk = max(50, min(250, n // 8))
    spent: dict[str, float] = defaultdict(float)

    def timed(key: str, fn: Callable) -> Callable:
        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[key] += time.perf_counter() - t

        return wrapper

    def settle() -> None:
        run.purge("async", ASYNC_QUEUE)
        time.sleep(0.2)

    per_chunk: dict[str, list[dict[str, float]]] = {"celery": [], "raw": []}
    _, app = run.publisher_apps()
    amqp = app.amqp
    original_saferepr = celery_amqp.saferepr
    try:
        with app.producer_or_acquire() as producer:
            app.send_task(ASYNC_TASK, kwargs=payloads(1, "p")[0], producer=producer)  # warm
            amqp.router.route = timed("route", amqp.router.route)
            amqp.create_task_message = timed("build", amqp.create_task_message)
            amqp.send_task_message = timed("send", amqp.send_task_message)
            producer.publish = timed("kombu", producer.publish)
            producer.channel.basic_publish = timed("amqp", producer.channel.basic_publish)
            send = timed("total", app.send_task)
            timed_saferepr = timed("build: argsrepr/kwargsrepr", original_saferepr)
            raw_publish = timed("kombu", raw_producer.publish)
            raw_channel = raw_producer.channel
            raw_channel.basic_publish = timed("amqp", raw_channel.basic_publish)
            try:
                for i in range(max(1, n // chunk)):
                    settle()
                    spent.clear()
                    celery_amqp.saferepr = timed_saferepr
                    for kw in payloads(chunk, f"timers-{i}"):
                        send(ASYNC_TASK, kwargs=kw, producer=producer)
                    celery_amqp.saferepr = original_saferepr
                    per_chunk["celery"].append({k: v / chunk * 1e6 for k, v in spent.items()})
                    settle()
                    spent.clear()
                    for kw in payloads(chunk, f"timers-raw-{i}"):
                        raw_publish(kw, delivery_mode=2)
                    per_chunk["raw"].append({k: v / chunk * 1e6 for k, v in spent.items()})
            finally:
                del raw_channel.basic_publish
            settle()
            profile = cProfile.Profile()
            for i in range(max(1, n // chunk)):
                batch = payloads(chunk, f"profile-{i}")
                profile.enable()
                for kw in batch:
                    app.send_task(ASYNC_TASK, kwargs=kw, producer=producer)
                profile.disable()
                settle()
    finally:
        celery_amqp.saferepr = original_saferepr
        app.close()
    t = {k: statistics.median([c[k] for c in per_chunk["celery"]]) for k in per_chunk["celery"][0]}
    r = {k: statistics.median([c[k] for c in per_chunk["raw"]]) for k in per_chunk["raw"][0]}
    celery_parts = {
        "Celery send_task: options, task id, producer, result": t["total"]
        - t["route"]
        - t["build"]
        - t["send"],
        "Celery router (task_routes)": t["route"],
        "Celery message building (as_task_v2)": t["build"] - t["build: argsrepr/kwargsrepr"],
        "  of it argsrepr/kwargsrepr (saferepr)": t["build: argsrepr/kwargsrepr"],
        "Celery send_task_message (signals, options)": t["send"] - t["kombu"],
        "kombu Producer.publish (body, declare, retry)": t["kombu"] - t["amqp"],
        "py-amqp basic_publish (frames, headers table, socket)": t["amqp"],
    }
    return {
        "timers": {
            "celery_total": round(t["total"], 2),
            "celery": {k: round(v, 2) for k, v in celery_parts.items()},
            "raw_total": round(r["kombu"], 2),
            "raw": {
                "kombu Producer.publish (body)": round(r["kombu"] - r["amqp"], 2),
                "py-amqp basic_publish (frames, socket)": round(r["amqp"], 2),
            },
            "messages": chunk * max(1, n // chunk),
            "chunk": chunk,
            "statistic": "median over chunks of the mean per message",
        },
        "profile": profile_top(profile, chunk * max(1, n // chunk)),
    }


def profile_top(profile: cProfile.Profile, messages: int, top: int = 10) -> list[dict[str, Any]]:
    """The functions with the most own time in a profiled publish, per message."""
    stats = pstats.Stats(profile)
    total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
    rows = sorted(
        stats.stats.items(),  # type: ignore[attr-defined]
        key=lambda kv: kv[1][2],
        reverse=True,
    )[:top]
    out = []
    for (filename, line, func), (_, ncalls, tottime, _cumtime, _) in rows:
        # Package-relative names: no machine paths in the results.
        where = (
            filename.split("site-packages/")[-1]
            if "site-packages/" in filename
            else Path(filename).name
        )
        out.append(
            {
                "function": f"{where}:{line}({func})" if line else func,
                "calls_per_message": round(ncalls / messages, 2),
                "own_us_per_message": round(tottime / messages * 1e6, 2),
                "share_of_own_time": round(tottime / total, 3),
            }
        )
    return out
