"""Part (c), end to end: a burst of ``record_entry`` tasks, from the first publish to the last
execution recorded in the service's storage, with one and with two Celery workers.

Every task is counted in the execution log and the ledger: published, executed, lost,
duplicated; and each burst's longest gap between two tasks (a stall) is noted.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections import Counter, defaultdict
from typing import Any

from .rounds import rotate, wait_for
from .session import BenchSession
from .storage import Storage
from .workload import ASYNC_QUEUE, ASYNC_TASK

__all__ = ["end_to_end"]


def end_to_end(run: BenchSession) -> dict[str, Any]:
    """Bursts against one and two workers of each pool, started afresh for every burst.

    Workers are started and stopped here rather than parked with ``cancel_consumer``: a solo
    worker stalled for up to 10 s in bursts after ``add_consumer`` or after another worker
    on its queue left (measured while writing this benchmark); fresh workers measure the
    pool, not the parking. Stalls that happen anyway are counted (``stalls``).
    """
    c = run.counts
    names = [f"{pool}_{k}" for pool in run.e2e_pools for k in (1, 2)]
    db = Storage(run.storage_path())
    run.stack.callback(db.close)
    rounds, totals = [], Counter()
    per_worker: dict[str, Counter] = defaultdict(Counter)
    body_ms = defaultdict(list)

    stalls: Counter = Counter()

    for r in range(c.e2e_rounds):
        row: dict[str, float] = {}
        for name in rotate(names, r):
            pool, k = name.rsplit("_", 1)
            workers = [f"{run.prefix}async-{name}-r{r}-{i}" for i in range(1, int(k) + 1)]
            try:
                run.start_async_workers(workers, pool)
                _burst(run, db, c.e2e_warmup * int(k), f"warm-{name}-{r}")  # fresh processes
                result = _burst(run, db, c.e2e_tasks, f"{name}-{r}")
            finally:
                run.stop_workers([w for w in workers if w in run.workers])
            row[name] = result["tasks_per_s"]
            for key in ("published", "executed", "distinct", "stored", "lost", "duplicated"):
                totals[key] += result[key]
            stalls[name] += result["stalls"]
            per_worker[name].update(
                {f"worker {w.rsplit('-', 1)[1]}": n for w, n in result["per_worker"].items()}
            )
            body_ms[name].append(result["task_body_ms"])
        rounds.append(row)
        run.log(
            f"(c) round {r + 1}/{c.e2e_rounds}: " + "  ".join(f"{v} {row[v]:,.0f}/s" for v in names)
        )
    median = {v: statistics.median([row[v] for row in rounds]) for v in names}
    scaling = {
        pool: statistics.median([row[f"{pool}_2"] / row[f"{pool}_1"] for row in rounds])
        for pool in run.e2e_pools
    }
    return {
        "task": ASYNC_TASK,
        "tasks_per_burst": c.e2e_tasks,
        "configs": names,
        "rounds": rounds,
        "median_tasks_per_s": median,
        "two_over_one": scaling,
        "counts": dict(totals),
        "share_per_worker": {k: dict(v) for k, v in per_worker.items()},
        "stalls": {"bursts with a gap of over 1 s between two tasks": dict(stalls)},
        "median_task_body_ms": {k: round(statistics.median(v), 3) for k, v in body_ms.items()},
        "publisher": "Celery, recommended settings (one long-lived producer)",
        "workers": "started afresh for every burst, warmed with "
        f"{c.e2e_warmup} tasks each before it",
    }


def _burst(run: BenchSession, db: Storage, n: int, tag: str) -> dict[str, Any]:
    """Publish ``n`` tasks as fast as Celery can; wait until the storage holds them all."""
    since = db.last_id()
    prefix = f"{run.prefix}{tag}-"
    batch = [
        {"entry_id": f"{prefix}{i}", "account": "bench-async", "amount_cents": 100}
        for i in range(n)
    ]
    first_publish = time.time()
    with run.async_app.producer_or_acquire() as producer:
        for kw in batch:
            run.async_app.send_task(ASYNC_TASK, kwargs=kw, producer=producer)
    query = (
        "SELECT COUNT(*) AS n, COUNT(DISTINCT task_id) AS d, MAX(finished) AS last, "
        "AVG(finished - started) AS body FROM executions WHERE id > ? AND task_name = ?"
    )
    wait_for(lambda: db.query(query, (since, ASYNC_TASK))[0]["n"] >= n, 30 + n / 20)
    time.sleep(0.2)  # a duplicate delivery, if any, would land now
    row = db.query(query, (since, ASYNC_TASK))[0]
    stored = db.query("SELECT COUNT(*) AS n FROM entries WHERE entry_id LIKE ?", (prefix + "%",))[
        0
    ]["n"]
    shares = {
        r["hostname"].split("@")[0].removeprefix(run.prefix): r["n"]
        for r in db.query(
            "SELECT hostname, COUNT(*) AS n FROM executions WHERE id > ? AND task_name = ? "
            "GROUP BY hostname",
            (since, ASYNC_TASK),
        )
    }
    starts = [
        x["started"]
        for x in db.query(
            "SELECT started FROM executions WHERE id > ? AND task_name = ? ORDER BY started",
            (since, ASYNC_TASK),
        )
    ]
    gap = max((b - a for a, b in itertools.pairwise(starts)), default=0.0)
    left = run.queue_state("async", ASYNC_QUEUE)[0]
    if row["n"] < n or left:
        run.log(f"(c) {tag}: {row['n']} of {n} tasks executed, {left} left in the queue")
    return {
        "published": n,
        "executed": row["n"],
        "distinct": row["d"],
        "stored": stored,
        "lost": n - row["d"],
        "duplicated": row["n"] - row["d"],
        "tasks_per_s": row["d"] / (row["last"] - first_publish) if row["last"] else 0.0,
        "per_worker": shares,
        "task_body_ms": (row["body"] or 0) * 1e3,
        "longest_gap_s": gap,
        "stalls": int(gap > 1.0),
    }
