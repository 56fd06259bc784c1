"""What tracing costs, measured: one record written, and a sync round trip with tracing on and off.

:func:`measure_overhead` runs two sync workers side by side, one traced and one not, lets one of
them consume at a time, and alternates blocks of calls between "tracing off" and "tracing on"
(publisher side too); the ratio is taken block pair by block pair, so load from elsewhere on a
shared machine hits both sides.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import statistics
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..observe.latency import percentile
from ..observe.tracing import EVENTS, Tracer, TraceWriter, read_records, trace_dir

__all__ = ["record_cost", "measure_overhead", "overhead_report"]


def record_cost(directory: Path | str, n: int = 5000) -> float:
    """Median seconds to write one trace record, measured over ``n`` records in this process."""
    writer = TraceWriter(directory, "cost-probe")
    try:
        times = []
        for i in range(n):
            t0 = time.perf_counter()
            writer.write(
                "started",
                f"probe-{i:06d}-0000-0000-0000-000000000000",
                "mpledger.sync.entry_count",
                "probe@host",
            )
            times.append(time.perf_counter() - t0)
    finally:
        path = writer.path
        writer.close()
        path.unlink(missing_ok=True)
    return statistics.median(times)


def measure_overhead(
    lab: Any,
    calls: int = 300,
    *,
    service: str = "mpledger",
    task: str = "mpledger.sync.entry_count",
    kwargs: Mapping[str, Any] | None = None,
    block: int = 10,
    warmup: int = 20,
    progress: Any = None,
) -> dict[str, Any]:
    """Sync round trip with tracing off and on, side by side in one run.

    Two sync workers of ``service`` run at once, one traced and one not, on the service's
    sync queue; Celery's remote control (``cancel_consumer`` / ``add_consumer``) lets exactly
    one of them consume at a time. Blocks of ``block`` calls alternate between "off" (plain
    worker, no publisher tracing) and "on" (traced worker, :class:`Tracer` stamping and
    recording every call, :meth:`Tracer.get` for the result), ``calls`` calls each, so both
    modes see the same machine load. ``task`` is called with the same ``kwargs`` every time,
    so it must succeed when repeated (``mpledger.sync.entry_count``, ``mpledger.sync.balance``).
    ``progress`` is an optional tqdm class.

    Returns the percentiles of each mode in milliseconds and their ratios; ``paired_ratio``,
    the median over consecutive block pairs of (median "on" / median "off"), which a burst of
    load from elsewhere on the machine hardly moves; ``noise_ratio``, the same for pairs of
    consecutive "off" blocks (tracing off on both sides: the noise floor); the median cost of
    one trace record; and the conditions of the run.
    """
    from celery import __version__ as celery_version
    from celery.exceptions import TimeoutError as CeleryTimeout

    from ..design.services import load
    from ..running.workers import start_worker, stop_all

    module = load(service)
    app = module.sync_app
    queue = f"{service}.sync"
    kwargs = dict(kwargs or {})
    directory = trace_dir(lab)
    plain = start_worker(lab, service, "sync", wait=False)
    traced = start_worker(lab, service, "sync", wait=False, trace=True)
    workers = {"off": plain, "on": traced}
    timings: dict[str, list[float]] = {"off": [], "on": []}
    blocks: list[tuple[str, float]] = []  # (mode, median of the block), in run order
    try:
        for worker in workers.values():
            worker.wait_ready()

        def consumer_count() -> int:
            with app.connection_for_write() as conn:
                return conn.default_channel.queue_declare(queue, passive=True).consumer_count

        def consuming() -> set[str] | None:
            """The workers that consume ``queue`` now, by their own account; None if one of
            them did not answer. A worker answers control messages in the order they came, and
            runs the actions they queued before it reads the next one: this answer includes
            every add/cancel that worker answered before."""
            active = app.control.inspect(
                [plain.hostname, traced.hostname], timeout=5
            ).active_queues()
            if set(active or {}) != {plain.hostname, traced.hostname}:
                return None
            return {
                host for host, queues in active.items() if any(q["name"] == queue for q in queues)
            }

        def only(mode: str) -> None:
            """Let only the worker of ``mode`` consume; checked on both workers and the broker.

            ``add_consumer`` and ``cancel_consumer`` reply *before* they act (the worker queues
            the action with ``call_soon``), and actions queued together run in no set order. So
            a command is sent again only once the worker has answered without it taking effect,
            and the switch is done when two checks in a row (the second one after any action
            still queued at the first) see it. Returning early, on the broker's count alone, let
            a late ``cancel`` land after the next ``add``: no consumer at all, and a call that
            waited in the queue until its 30 s timeout (seen under load).
            """
            keep, drop = workers[mode].hostname, workers["on" if mode == "off" else "off"].hostname
            want = {keep}
            app.control.add_consumer(queue, destination=[keep], reply=True, timeout=5)
            app.control.cancel_consumer(queue, destination=[drop], reply=True, timeout=5)
            seen, deadline = 0, time.monotonic() + 60
            while time.monotonic() < deadline:
                now = consuming()
                if now == want and consumer_count() == 1:
                    seen += 1
                    if seen == 2:
                        return
                    continue
                seen = 0
                if now is not None and keep not in now:
                    app.control.add_consumer(queue, destination=[keep], reply=True, timeout=5)
                if now is not None and drop in now:
                    app.control.cancel_consumer(queue, destination=[drop], reply=True, timeout=5)
                time.sleep(0.05)
            raise RuntimeError(
                f"could not switch {queue} to {keep} alone within 60 s: workers say "
                f"{consuming()}, the broker counts {consumer_count()} consumers"
            )

        def one_call(tracer: Tracer | None) -> float:
            t0 = time.perf_counter()
            result = app.send_task(task, kwargs=kwargs)
            try:  # a call takes milliseconds; 30 s without a result is a hang, said where
                if tracer is None:
                    result.get(timeout=30)
                else:
                    tracer.get(result, timeout=30)
            except CeleryTimeout as exc:
                with app.connection_for_write() as conn:
                    state = conn.default_channel.queue_declare(queue, passive=True)
                raise RuntimeError(
                    f"no result for {task} (tracing {'on' if tracer else 'off'}) in 30 s: {queue} "
                    f"holds {state.message_count} ready messages, {state.consumer_count} consumers; "
                    f"workers consuming it: {consuming()}"
                ) from exc
            return time.perf_counter() - t0

        tracer = Tracer(directory)
        for mode in ("off", "on"):  # warm both paths up, unmeasured
            only(mode)
            with tracer if mode == "on" else contextlib.nullcontext():
                for _ in range(warmup):
                    one_call(tracer if mode == "on" else None)
        tracer.task_ids.clear()
        bar = progress(total=2 * calls, desc="tracing off/on", leave=False) if progress else None
        done = {"off": 0, "on": 0}
        modes = itertools.cycle(("off", "on"))
        while min(done.values()) < calls:
            mode = next(modes)
            n = min(block, calls - done[mode])
            if n <= 0:
                continue
            only(mode)
            with tracer if mode == "on" else contextlib.nullcontext():
                block_times = [one_call(tracer if mode == "on" else None) for _ in range(n)]
            timings[mode] += block_times
            blocks.append((mode, statistics.median(block_times)))
            done[mode] += n
            if bar is not None:
                bar.update(n)
        if bar is not None:
            bar.close()
        traces = tracer.collect(wait=5.0)
        run_started = min(t.published for t in traces)
    finally:
        stop_all([plain, traced])
    # calls of the "off" blocks that the traced worker received anyway (must be none)
    on_ids = set(tracer.task_ids)
    misrouted = sum(
        1
        for r in read_records(directory, modified_since=run_started - 1.0)
        if r["e"] == "received"
        and r.get("host") == traced.hostname
        and r["t"] >= run_started
        and r["id"] not in on_ids
    )

    def summary(values: list[float]) -> dict[str, float]:
        return {
            "p50_ms": percentile(values, 50) * 1e3,
            "p90_ms": percentile(values, 90) * 1e3,
            "p99_ms": percentile(values, 99) * 1e3,
        }

    off, on = summary(timings["off"]), summary(timings["on"])
    paired = [b[1] / a[1] for a, b in itertools.pairwise(blocks) if (a[0], b[0]) == ("off", "on")]
    offs = [median for mode, median in blocks if mode == "off"]
    noise = [b / a for a, b in itertools.pairwise(offs)]
    complete = [
        t
        for t in traces
        if None not in (t.published, t.received, t.started, t.finished, t.returned)
    ]
    return {
        "off": off,
        "on": on,
        "p50_ratio": on["p50_ms"] / off["p50_ms"],
        "p90_ratio": on["p90_ms"] / off["p90_ms"],
        "p50_delta_ms": on["p50_ms"] - off["p50_ms"],
        "paired_ratio": statistics.median(paired),
        "noise_ratio": statistics.median(noise) if noise else None,
        "noise_spread": (percentile(noise, 10), percentile(noise, 90)) if noise else None,
        "record_cost_us": record_cost(directory) * 1e6,
        "records_per_call": len(EVENTS),
        "traced_calls": len(traces),
        "complete_traces": len(complete),
        "misrouted": misrouted,
        "timings_ms": {m: [v * 1e3 for v in vs] for m, vs in timings.items()},
        "conditions": {
            "calls_per_mode": calls,
            "block": block,
            "warmup": warmup,
            "task": task,
            "kwargs": kwargs,
            "workers": "1 at a time (prefork, concurrency 1, prefetch multiplier 4)",
            "delivery_mode": "transient (sync)",
            "result_backend": app.conf.result_backend,
            "celery": celery_version,
            "cpu_count": os.cpu_count(),
        },
    }


def overhead_report(overhead: Mapping[str, Any], on_path: int = 4) -> str:
    """What :func:`measure_overhead` found, as the lines a notebook prints: the conditions, the
    percentiles of each mode, tracing's cost per call against the noise floor, and what the
    ``on_path`` records written while a caller waits (published, received, started, returned)
    cost at the measured price of one record. Every figure comes from ``overhead``."""
    c = overhead["conditions"]
    added_us = 1000 * (overhead["paired_ratio"] - 1) * overhead["off"]["p50_ms"]
    lines = [
        f"sync round trip {c['task']}: {c['calls_per_mode']} calls each way, blocks of "
        f"{c['block']} alternating; workers: {c['workers']}; {c['delivery_mode']} messages",
        f"{'':>14}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}",
    ]
    for mode in ("off", "on"):
        row = overhead[mode]
        lines.append(
            f"{'tracing ' + mode:>14}{row['p50_ms']:>9.2f}{row['p90_ms']:>9.2f}{row['p99_ms']:>9.2f}"
        )
    noise = overhead["noise_ratio"]
    spread = overhead["noise_spread"]
    lines.append(
        f"tracing on/off, median of block pairs: {overhead['paired_ratio']:.3f} "
        f"({100 * (overhead['paired_ratio'] - 1):+.1f} %, {added_us:+.0f} µs per call); "
        + (
            f"untraced/untraced (the noise floor): {noise:.3f} ({100 * (noise - 1):+.1f} %), "
            f"single pairs {spread[0]:.2f} to {spread[1]:.2f}"
            if noise is not None
            else "no noise floor (fewer than two untraced blocks)"
        )
    )
    lines.append(
        f"one trace record costs {overhead['record_cost_us']:.1f} µs (median, written in a loop); "
        f"{on_path} on a caller's path: {on_path * overhead['record_cost_us']:.0f} µs"
    )
    return "\n".join(lines)
