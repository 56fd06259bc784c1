"""What a service's own work costs per call, and where it goes (notebook 09).

A sync call through either design runs the same thing on the service's side: the task's
function (for ``mpwallet.sync.get_balance``, one SQLite transaction that reads a row) and the
execution log the lab keeps of every run (one more transaction, that writes a row). Measured
here in this process, on a scratch copy of the service's storage (the service's own files and
rows are left alone), without any middleware:

* :func:`time_service_work`: the median wall time per call of the whole run
  (``Service.execute``), of the task's function alone, and of the log's write alone;
* :func:`profile_service_work`: where the time of the whole run goes, by what SQLite is asked
  to do (open a connection, run a statement, close), from :mod:`cProfile` over the same calls.
  The profiler slows every call down; read its figures as shares, not as times.

And through the middleware, :func:`interleaved`: several calls (the realistic one and the echo,
through AMQP and through REST) asked in turn in one open loop, so that each is measured at the
same moments as the others: on a shared machine a slow moment then hits all of them alike, and
a difference between two of them is not the difference between two moments.
"""

from __future__ import annotations

import contextlib
import cProfile
import pstats
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..observe.latency import percentile
from .edge_load import Request, open_loop_mix, summary

__all__ = [
    "scratch_storage",
    "time_service_work",
    "profile_service_work",
    "SQLITE_STEPS",
    "interleaved",
    "interleaved_table",
    "p50_ms",
]

#: How cProfile names SQLite's own work, and what each is in a call.
SQLITE_STEPS = {
    "_sqlite3.connect": "open a connection",
    "method 'execute' of 'sqlite3.Connection' objects": "statements (BEGIN, query, COMMIT)",
    "method 'close' of 'sqlite3.Connection' objects": "close the connection",
}


@contextlib.contextmanager
def scratch_storage(service_module: Any, setup: Callable[[], Any] | None = None) -> Iterator[Any]:
    """The service's storage swapped for an empty one of the same schema in a temporary folder,
    with ``setup()`` run on it first (e.g. open the wallet the calls read); put back after."""
    from ..design.services.storage import Storage

    service = service_module.service
    real = service.storage
    with tempfile.TemporaryDirectory(prefix="mpsoa-service-work-") as folder:
        service.storage = Storage(Path(folder) / "scratch.sqlite3", service_module.SCHEMA)
        try:
            if setup is not None:
                setup()
            yield service.storage
        finally:
            service.storage = real


def _median_us(call: Callable[[], Any], calls: int) -> float:
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e6


def time_service_work(
    service_module: Any, task_name: str, kwargs: dict[str, Any], calls: int = 300
) -> dict[str, float]:
    """Median microseconds per call of the run (task and execution log), the task's function
    alone, and the log's write alone; ``calls`` of each, in turn, after 20 warm-up calls."""
    service = service_module.service
    task = service.tasks()[task_name]

    def logged() -> None:
        t = time.time()
        service.storage.record_execution(None, task_name, "profile", 0, t, t, True)

    runs = {
        "run": lambda: service.execute(task_name, kwargs),
        "task": lambda: task.run(**kwargs),
        "log": logged,
    }
    for run in runs.values():
        for _ in range(20):
            run()
    return {name: _median_us(run, calls) for name, run in runs.items()}


def profile_service_work(
    service_module: Any, task_name: str, kwargs: dict[str, Any], calls: int = 300
) -> dict[str, float]:
    """The share of a run's time (``Service.execute``) spent in each of :data:`SQLITE_STEPS`,
    and in the rest (Python: the task, the log's bookkeeping, the row objects)."""
    service = service_module.service
    for _ in range(20):
        service.execute(task_name, kwargs)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        service.execute(task_name, kwargs)
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # {(file, line, name): (cc, nc, tottime, cumtime, ...)}
    total = sum(entry[2] for entry in stats.values())
    shares = dict.fromkeys(SQLITE_STEPS.values(), 0.0)
    for (_, _, name), entry in stats.items():
        for key, step in SQLITE_STEPS.items():
            if key in name:
                shares[step] += entry[2]
    shares["Python around them"] = total - sum(shares.values())
    return {step: seconds / total for step, seconds in shares.items()}


def interleaved(
    targets: Mapping[str, str],
    rate: float,
    duration: float,
    rounds: int = 2,
    headers: Mapping[str, str] | None = None,
) -> dict[str, list[Request]]:
    """``rounds`` open loops of ``rate`` requests a second for ``duration`` seconds over every
    target in turn (name -> URL), the order reversed every other round; each target's requests
    (``rate / len(targets)`` a second of them), after 10 warm-up calls to each; ``headers`` go
    with every request (a session)."""
    import httpx

    names = list(targets)
    with httpx.Client(timeout=10, trust_env=False, headers=dict(headers or {})) as http:
        for url in targets.values():
            for _ in range(10):
                http.get(url).raise_for_status()
    found: dict[str, list[Request]] = {name: [] for name in names}
    offset = 0.0
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        runs = open_loop_mix([targets[n] for n in order], rate, duration, headers=headers)
        for index, req in runs:
            found[order[index]].append(Request(req.due + offset, req.done + offset, req.status))
        offset = max(req.done for _, req in runs) + offset + 1.0
    return found


def interleaved_table(found: Mapping[str, Sequence[Request]], rate: float) -> str:
    """One line per target: requests, answered, p50 and p99 (from when each was due)."""
    lines = [f"{'call':<24}{'requests':>9}{'ok':>6}{'p50 ms':>9}{'p99 ms':>9}"]
    for name, requests in found.items():
        s = summary(requests, rate / len(found))
        lines.append(
            f"{name:<24}{s['requests']:>9}{s['ok']:>6}{s['p50_ms']:>9.2f}{s['p99_ms']:>9.2f}"
        )
    return "\n".join(lines)


def p50_ms(requests: Sequence[Request]) -> float:
    """The median latency of ``requests``, in ms."""
    return percentile([r.latency for r in requests], 50) * 1e3
