"""Notebook 09's instance changes under load, on both designs: one of two instances of
``mpwallet`` killed (``kill -9``) and then replaced, or made slower than the other.

* :func:`change_under_load`: an open loop on an edge, with a kill ``kill_after`` seconds in and,
  optionally, a new instance asked for ``add_after`` seconds in; :class:`ChangeRun` holds every
  request and the service's execution log of the run, and reads from them what failed, what ran
  twice, when traffic was normal again, when the new instance was up and when it took its
  first call, and the answers per second over time;
* :func:`amqp_change` / :func:`rest_change`: the same change on two Celery workers (early or
  late acks; one more worker started to add) and on two REST instances behind HAProxy (its
  retry settings; one more instance added through HAProxy's runtime API);
* :func:`amqp_slow` / :func:`rest_slow`: one instance of two made several times slower, under
  the same open loop; AMQP with Celery's default prefetch or prefetch 1 (late acks), HAProxy
  with ``roundrobin`` or ``leastconn``: :class:`SlowRun` holds the requests and who ran what.

All traffic goes to 127.0.0.1; every loop is bounded in count and time; every process a run
starts is stopped before it returns, whatever happened.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..observe.latency import percentile, rate_over_time
from .edge_load import Request, open_loop

__all__ = [
    "ChangeRun",
    "change_under_load",
    "amqp_change",
    "rest_change",
    "change_table",
    "answered_per_second",
    "SlowRun",
    "amqp_slow",
    "rest_slow",
    "slow_table",
    "plot_changes",
    "owner_session",
]

PATH = "/wallets/1/balance"
TASK = "mpwallet.sync.get_balance"


def owner_session() -> dict[str, str]:
    """The header of a session of user 1, the wallet the load reads, signed with the lab's key
    as ``mplogin`` signs one: what the edges check (by its signature) on every request."""
    from ..design.sessions import authorization, issue, key_from_env

    return authorization(issue(key_from_env(), 1, "user", ttl=3600)[0])


def _wallet_executions(since: float) -> list[dict[str, Any]]:
    """The wallet's executions of :data:`TASK` that started after ``since`` (wall clock)."""
    from ..design.services import mpwallet

    return [e for e in mpwallet.service.storage.executions(TASK) if e["started"] >= since]


@contextlib.contextmanager
def _edge_on_workers(lab: Any, workers: list, timeout: float, spared: list) -> Iterator[str]:
    """An edge on the lab's brokers, its URL; on the way out the edge and every worker of
    ``workers`` (also those added meanwhile) but those in ``spared`` (killed) are stopped."""
    from ..running.edge import edge_url, start_edge, stop_edge

    edge = None
    try:
        edge = start_edge(lab, timeout=timeout)
        yield edge_url(edge)
    finally:
        if edge is not None:
            stop_edge(lab, edge)
        for worker in workers:
            if worker not in spared:
                worker.stop()


@contextlib.contextmanager
def _edge_on_haproxy(
    lab: Any, instances: list, timeout: float, **haproxy_settings: Any
) -> Iterator[tuple[Any, str]]:
    """HAProxy in front of ``instances`` and an edge through it: ``(balancer, edge URL)``; on
    the way out the edge, HAProxy and every instance of ``instances`` (also those added
    meanwhile) are stopped."""
    from ..running.edge import edge_url, start_edge, stop_edge
    from ..running.haproxy import start_haproxy, stop_haproxy
    from ..running.rest import stop_rest

    balancer = edge = None
    try:
        balancer = start_haproxy(lab, {"mpwallet": instances}, **haproxy_settings)
        edge = start_edge(lab, timeout=timeout, rest_urls={"mpwallet": balancer.url("mpwallet")})
        yield balancer, edge_url(edge)
    finally:
        if edge is not None:
            stop_edge(lab, edge)
        if balancer is not None:
            stop_haproxy(lab, balancer)
        stop_rest(lab, instances)


def answered_per_second(requests: Sequence[Request], step: float = 0.5) -> tuple[list, list]:
    """Answers (2xx) per second over time, in bins of ``step`` seconds by when each came, from
    the start of the run: ``(bin starts, rates)``."""
    done = [r.done for r in requests if 200 <= r.status < 300]
    return rate_over_time(done, step=step, since=0.0)


# -- an instance killed, then one added ------------------------------------------------------
@dataclass
class ChangeRun:
    """An open loop at ``rate`` during which one instance was killed (SIGKILL) ``killed_at``
    seconds in and, if ``added_at`` is set, a new one asked for then: every request, the
    service's execution log of the run (one row per finished execution, ``started`` in run
    seconds), and the added instance's name in that log."""

    name: str
    rate: float
    requests: list[Request]
    killed_at: float
    executions: list[dict[str, Any]]
    slow_s: float
    added_at: float | None = None
    added_ready: float | None = None  # run seconds: the new instance was up and in rotation
    added_name: str = ""

    @property
    def failed(self) -> int:
        """Requests with no 2xx answer (a 5xx, or none before the deadline)."""
        return sum(1 for r in self.requests if not 200 <= r.status < 300)

    def failed_between(self, start: float, end: float = float("inf")) -> int:
        """Failed requests among those due in ``[start, end)`` seconds."""
        return sum(1 for r in self.requests if start <= r.due < end and not 200 <= r.status < 300)

    @property
    def duplicated(self) -> int:
        """Executions beyond the first of the same task id in the log."""
        ids = [e["task_id"] for e in self.executions if e["task_id"]]
        return len(ids) - len(set(ids))

    def abnormal(self, r: Request) -> bool:
        return not 200 <= r.status < 300 or r.latency > self.slow_s

    @property
    def recovery_s(self) -> float:
        """Seconds from the kill until the last failed or slow request had its answer (or
        failed): after that, every request was normal (0 when none was abnormal)."""
        late = [r.done for r in self.requests if self.abnormal(r)]
        return max(0.0, max(late) - self.killed_at) if late else 0.0

    @property
    def first_work(self) -> float | None:
        """Run seconds when the added instance started its first call (None: it ran none)."""
        mine = [e["started"] for e in self.executions if e["hostname"] == self.added_name]
        return min(mine) if mine and self.added_name else None

    @property
    def added_share(self) -> float:
        """The share of the calls started after the added instance was up that it ran."""
        if self.added_ready is None:
            return 0.0
        after = [e for e in self.executions if e["started"] >= self.added_ready]
        mine = [e for e in after if e["hostname"] == self.added_name]
        return len(mine) / len(after) if after else 0.0

    def row(self) -> dict[str, Any]:
        row = {
            "side": self.name,
            "requests": len(self.requests),
            "failed": self.failed,
            "slow": sum(1 for r in self.requests if self.abnormal(r) and 200 <= r.status < 300),
            "statuses": dict(sorted(collections.Counter(r.status for r in self.requests).items())),
            "duplicated": self.duplicated,
            "recovery_s": self.recovery_s,
            "max_ms": max(r.latency for r in self.requests) * 1e3,
        }
        if self.added_at is not None:
            first = self.first_work
            row |= {
                "up_s": (self.added_ready or float("nan")) - self.added_at,
                "first_work_s": float("nan") if first is None else first - self.added_at,
                "failed_after_add": self.failed_between(self.added_at),
                "added_share": self.added_share,
            }
        return row


def change_under_load(
    name: str,
    url: str,
    *,
    rate: float,
    duration: float,
    kill_after: float,
    kill: Callable[[], None],
    slow_s: float,
    add_after: float | None = None,
    add: Callable[[], str] | None = None,
    deadline: float = 8.0,
) -> ChangeRun:
    """An open loop of GETs of ``url`` + :data:`PATH`; ``kill()`` is called ``kill_after``
    seconds in and ``add()`` (which starts an instance, puts it in rotation and returns its
    name in the execution log) ``add_after`` seconds in, both from a thread of their own."""
    if (add_after is None) != (add is None):
        raise ValueError("give add_after and add together, or neither")
    if add_after is not None and add_after < kill_after:
        raise ValueError("the new instance is asked for after the kill (add_after >= kill_after)")
    since = time.time()
    started = time.monotonic() + 0.05  # the open loop's first request is due then
    wall_zero = time.time() + (started - time.monotonic())  # wall clock at run second 0
    events: dict[str, Any] = {}

    def changes() -> None:
        try:
            time.sleep(max(0.0, started + kill_after - time.monotonic()))
            events["killed"] = time.monotonic() - started
            kill()
            if add is not None and add_after is not None:
                time.sleep(max(0.0, started + add_after - time.monotonic()))
                events["added"] = time.monotonic() - started
                events["name"] = add()
                events["ready"] = time.monotonic() - started
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            events["error"] = exc

    thread = threading.Thread(target=changes, name="instance-changes", daemon=True)
    thread.start()
    try:
        requests = open_loop(url, PATH, rate, duration, deadline, owner_session())
    finally:
        thread.join(90)
    if "error" in events:
        raise events["error"]
    ran = [
        {**e, "started": e["started"] - wall_zero} for e in _wallet_executions(since)
    ]  # started in run seconds
    return ChangeRun(
        name,
        rate,
        requests,
        events.get("killed", kill_after),
        ran,
        slow_s,
        events.get("added"),
        events.get("ready"),
        events.get("name", ""),
    )


def amqp_change(
    lab: Any,
    *,
    acks_late: bool,
    rate: float,
    duration: float,
    kill_after: float,
    delay_ms: float,
    timeout: float,
    add_after: float | None = None,
    threads: int = 10,
) -> ChangeRun:
    """Two ``mpwallet`` sync workers (threads pool, prefetch multiplier 1, early or late acks,
    each call ``delay_ms``), an edge that waits ``timeout`` s; one worker killed under load
    and, with ``add_after``, one more worker started then (it takes work once it consumes)."""
    from ..running.workers import start_worker, start_workers

    lab.prepare_topology()
    options = dict(
        pool="threads",
        concurrency=threads,
        delay_ms=delay_ms,
        config={"worker_prefetch_multiplier": 1, "task_acks_late": acks_late},
    )
    workers = start_workers(lab, "mpwallet", "sync", 2, **options)
    killed: list = []

    def kill() -> None:
        workers[0].kill()
        killed.append(workers[0])

    def add() -> str:
        worker = start_worker(lab, "mpwallet", "sync", **options)
        workers.append(worker)
        return worker.hostname

    with _edge_on_workers(lab, workers, timeout, spared=killed) as url:
        return change_under_load(
            f"AMQP, {'late' if acks_late else 'early'} acks",
            url,
            rate=rate,
            duration=duration,
            kill_after=kill_after,
            kill=kill,
            slow_s=1.5 * delay_ms / 1e3,
            add_after=add_after,
            add=add if add_after is not None else None,
            deadline=timeout + 3,
        )


def rest_change(
    lab: Any,
    *,
    rate: float,
    duration: float,
    kill_after: float,
    delay_ms: float,
    timeout: float,
    add_after: float | None = None,
    label: str = "",
    **haproxy_settings: Any,
) -> ChangeRun:
    """Two REST instances of ``mpwallet`` (each call ``delay_ms``) behind HAProxy
    (``haproxy_settings``: retries, redispatch, retry_on, check_inter_ms...), an edge through
    it; one instance killed under load and, with ``add_after``, one more instance started then
    and added to the backend through HAProxy's runtime API."""
    from ..running.haproxy import add_instance
    from ..running.rest import start_rest

    instances = start_rest(lab, "mpwallet", 2, delay_ms=delay_ms)
    behind: list = []  # the balancer, once started

    def add() -> str:
        (instance,) = start_rest(lab, "mpwallet", 1, delay_ms=delay_ms)
        instances.append(instance)
        add_instance(lab, behind[0], "mpwallet", instance)
        return instance.name

    with _edge_on_haproxy(lab, instances, timeout, **haproxy_settings) as (balancer, url):
        behind.append(balancer)
        return change_under_load(
            f"REST + HAProxy{label}",
            url,
            rate=rate,
            duration=duration,
            kill_after=kill_after,
            kill=instances[0].kill,
            slow_s=1.5 * delay_ms / 1e3,
            add_after=add_after,
            add=add if add_after is not None else None,
            deadline=timeout + 3,
        )


def change_table(runs: Sequence[ChangeRun]) -> str:
    """One line per run: requests, failed, slow, duplicated, the longest latency, seconds to
    normal after the kill, and, when an instance was added, seconds until it was up and until
    its first call, the requests that failed after it was asked for, its share of the calls."""
    lines = [
        f"{'side':<26} {'requests':>8} {'failed':>6} {'slow':>5} {'dup':>4} {'max ms':>7} "
        f"{'to normal':>9} | {'added: up':>9} {'1st call':>8} {'failed':>6} {'share':>5}"
    ]
    for run in runs:
        r = run.row()
        line = (
            f"{r['side']:<26} {r['requests']:>8} {r['failed']:>6} {r['slow']:>5} "
            f"{r['duplicated']:>4} {r['max_ms']:>7.0f} {r['recovery_s']:>8.1f}s |"
        )
        if "up_s" in r:
            line += (
                f" {r['up_s']:>8.1f}s {r['first_work_s']:>7.1f}s {r['failed_after_add']:>6} "
                f"{r['added_share']:>5.0%}"
            )
        lines.append(line)
    return "\n".join(lines)


# -- one slow instance -----------------------------------------------------------------------
@dataclass
class SlowRun:
    """An open loop at ``rate`` on two instances, ``slow`` the name (in the execution log) of
    the one made slower: every request and who ran which call."""

    name: str
    rate: float
    requests: list[Request]
    executions: list[dict[str, Any]] = field(repr=False)
    slow: str

    def row(self) -> dict[str, Any]:
        ok = [r.latency for r in self.requests if 200 <= r.status < 300]
        ran = [e["hostname"] for e in self.executions]
        return {
            "side": self.name,
            "requests": len(self.requests),
            "failed": len(self.requests) - len(ok),
            "p50_ms": percentile(ok, 50) * 1e3 if ok else float("nan"),
            "p99_ms": percentile(ok, 99) * 1e3 if ok else float("nan"),
            "max_ms": max(ok) * 1e3 if ok else float("nan"),
            "slow_share": ran.count(self.slow) / len(ran) if ran else 0.0,
        }


def _slow_run(name: str, url: str, rate: float, duration: float, deadline: float, slow: str):
    since = time.time()
    requests = open_loop(url, PATH, rate, duration, deadline, owner_session())
    return SlowRun(name, rate, requests, _wallet_executions(since), slow)


def amqp_slow(
    lab: Any,
    *,
    prefetch_one: bool,
    delays_ms: tuple[float, float],
    concurrency: int,
    rate: float,
    duration: float,
    timeout: float,
) -> SlowRun:
    """Two ``mpwallet`` sync workers (threads pool of ``concurrency``), each call taking its
    worker's delay (``delays_ms``, the second the slow one); Celery's default prefetch (a
    multiplier of 4, early acks) or prefetch 1 with late acks; an open loop through an edge."""
    from ..running.workers import start_worker

    lab.prepare_topology()
    config = {"worker_prefetch_multiplier": 1, "task_acks_late": True} if prefetch_one else {}
    workers: list = []
    with _edge_on_workers(lab, workers, timeout, spared=[]) as url:
        for delay in delays_ms:
            workers.append(
                start_worker(
                    lab,
                    "mpwallet",
                    "sync",
                    wait=False,
                    pool="threads",
                    concurrency=concurrency,
                    delay_ms=delay,
                    config=config,
                )
            )
        for worker in workers:
            worker.wait_ready(60)
        name = "AMQP, prefetch 1" if prefetch_one else f"AMQP, default prefetch ({4 * concurrency})"
        return _slow_run(name, url, rate, duration, timeout + 3, workers[1].hostname)


def rest_slow(
    lab: Any,
    *,
    balance: str,
    delays_ms: tuple[float, float],
    concurrency: int,
    rate: float,
    duration: float,
    timeout: float,
) -> SlowRun:
    """Two REST instances of ``mpwallet`` running at most ``concurrency`` calls at once each
    (the rest wait in the instance, as a worker's prefetched messages do), each call taking its
    instance's delay (``delays_ms``, the second the slow one), behind HAProxy with ``balance``
    (``roundrobin`` or ``leastconn``); an open loop through an edge."""
    from ..running.rest import start_rest

    instances = start_rest(lab, "mpwallet", 2, delay_ms=list(delays_ms), concurrency=concurrency)
    with _edge_on_haproxy(lab, instances, timeout, balance=balance) as (_, url):
        return _slow_run(
            f"REST + HAProxy {balance}", url, rate, duration, timeout + 3, instances[1].name
        )


def slow_table(runs: Sequence[SlowRun]) -> str:
    """One line per run: requests, failed, p50, p99, the longest, the slow instance's share."""
    lines = [
        f"{'side':<28} {'requests':>8} {'failed':>6} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} "
        f"{'slow one ran':>12}"
    ]
    for run in runs:
        r = run.row()
        lines.append(
            f"{r['side']:<28} {r['requests']:>8} {r['failed']:>6} {r['p50_ms']:>7.0f} "
            f"{r['p99_ms']:>7.0f} {r['max_ms']:>7.0f} {r['slow_share']:>12.0%}"
        )
    return "\n".join(lines)


def plot_changes(runs: Sequence[ChangeRun], top: Any, bottom: Any, failed_at_ms: float) -> None:
    """Top: answers per second over time, one line per run; bottom: each request's latency by
    when it was due, a cross at ``failed_at_ms`` for each failed one; the kill (dotted) and the
    added instance (dashed) marked on both."""
    for i, run in enumerate(runs):
        top.step(*answered_per_second(run.requests), where="post", label=run.name, color=f"C{i}")
        ok = [(r.due, r.latency * 1e3) for r in run.requests if 200 <= r.status < 300]
        if ok:
            bottom.scatter(*zip(*ok), s=10, color=f"C{i}")
        failed = [r.due for r in run.requests if not 200 <= r.status < 300]
        bottom.scatter(failed, [failed_at_ms] * len(failed), marker="x", color=f"C{i}", s=30)
    for ax in (top, bottom):
        ax.axvline(runs[0].killed_at, color="grey", linestyle=":")
        if runs[0].added_at is not None:
            ax.axvline(runs[0].added_at, color="green", linestyle="--")
    top.set(ylabel="answered per second")
    top.legend(fontsize=8, ncol=4)
    bottom.set(xlabel="seconds into the run", ylabel="latency (ms, by when due)")
