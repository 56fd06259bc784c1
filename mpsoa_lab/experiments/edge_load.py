"""The harness of notebook 08 (the HTTP edge): load sent to an edge, and what it measured.

* :func:`sign_up` and :func:`make_operator`: a :class:`Member` whose session (``headers``) the
  edge lets use its own wallet, or the ledger;
* :func:`open_loop`: requests sent at a fixed rate whatever the answers do (an *open loop*), a
  bounded number, each with a hard deadline; latency counts from when a request was *due*, so
  an edge that stalls is charged for the requests it kept waiting (no coordinated omission);
* :func:`summary`: one row per run: offered and answered per second, p50/p99, the statuses;
* :func:`amqp_connections`: the connections a process holds to a broker, read from the
  process's own sockets (immediate, unlike the management API's statistics);
* :class:`CpuMeter` (from :mod:`mpsoa_lab.observe.cpu`): the CPU seconds each named process
  used meanwhile, with its children that are not named themselves (each process counted once);
* :func:`plot_answered`: a latency ECDF that draws answered requests only and says how many
  failed or were given up;
* :func:`closed_loop`: ``n`` callers in threads, each making calls back to back, for the
  edge against a direct Celery caller at the same concurrency;
* :func:`run_wait`: one way of waiting (an edge started with ``wait=...``) under an open loop,
  with what the edge held meanwhile (AMQP connections, threads) and what the service ran at once;
* :func:`edge_and_direct`: the same sync call through the edge and from a direct caller, in
  alternating blocks, with the CPU each process used.

All traffic goes to 127.0.0.1; every loop is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..observe.cpu import CpuMeter
from ..observe.latency import ecdf, max_overlap, percentile

__all__ = [
    "Member",
    "sign_up",
    "make_operator",
    "WaitRun",
    "run_wait",
    "Cost",
    "edge_and_direct",
    "Request",
    "open_loop",
    "open_loop_mix",
    "summary",
    "amqp_connections",
    "tcp_connections",
    "closed_loop",
    "run_in_own_loop",
    "broker_pid",
    "closed_port_url",
    "ecdf_ms",
    "plot_answered",
    "log_ms_axis",
    "answered",
    "format_waits",
]


@dataclass(frozen=True)
class Request:
    """One request of a run: when it was due, when its answer (or its failure) came, and the
    HTTP status (0: no answer before the deadline, or the connection failed)."""

    due: float
    done: float
    status: int

    @property
    def latency(self) -> float:
        return self.done - self.due


@dataclass(frozen=True)
class Member:
    """Someone the edge knows: signed up (or made an operator inside the platform) and logged
    in through the edge; ``headers`` carry the session."""

    user_id: int
    username: str
    role: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        from ..design.sessions import authorization

        return authorization(self.token)


def _log_in(http: Any, username: str, password: str) -> Member:
    answer = http.post("/sessions", json={"username": username, "password": password})
    answer.raise_for_status()
    body = answer.json()
    return Member(body["user_id"], username, body["role"], body["token"])


def sign_up(
    http: Any, username: str | None = None, password: str = "pw", *, wallet: bool = True
) -> Member:
    """``POST /users`` and ``POST /sessions`` on the edge ``http`` (an :class:`httpx.Client`
    on its base URL) talks to, then ``PUT /wallets/{id}`` unless ``wallet=False``."""
    import uuid

    username = username or f"u-{uuid.uuid4().hex[:10]}"
    http.post("/users", json={"username": username, "password": password}).raise_for_status()
    member = _log_in(http, username, password)
    if wallet:
        http.put(f"/wallets/{member.user_id}", headers=member.headers).raise_for_status()
    return member


def make_operator(http: Any, username: str | None = None, password: str = "pw") -> Member:
    """An operator of the platform: registered by a publisher inside it (this process sends
    ``mplogin.sync.register`` with ``role="operator"``; the edge never makes one), then logged
    in through the edge."""
    import uuid

    from ..design.services import mplogin

    username = username or f"op-{uuid.uuid4().hex[:10]}"
    kwargs = {"username": username, "password": password, "role": "operator"}
    mplogin.sync_app.send_task("mplogin.sync.register", kwargs=kwargs).get(timeout=30)
    return _log_in(http, username, password)


def run_in_own_loop(coro_fn: Callable[[], Any]) -> Any:
    """``asyncio.run(coro_fn())`` in a thread of its own (a notebook's kernel already runs a loop)."""
    with ThreadPoolExecutor(1, thread_name_prefix="driver") as pool:
        return pool.submit(asyncio.run, coro_fn()).result()


def open_loop(
    url: str,
    path: str,
    rate: float,
    duration: float,
    deadline: float = 10.0,
    headers: Mapping[str, str] | None = None,
) -> list[Request]:
    """``rate`` GETs of ``url + path`` per second for ``duration`` seconds (``rate * duration``
    requests, at most), each given up ``deadline`` seconds after it was due; ``headers`` go
    with each (a session's ``Authorization``)."""
    return [r for _, r in open_loop_mix([url + path], rate, duration, deadline, headers)]


def open_loop_mix(
    urls: Sequence[str],
    rate: float,
    duration: float,
    deadline: float = 10.0,
    headers: Mapping[str, str] | None = None,
) -> list[tuple[int, Request]]:
    """An open loop over several targets in turn: request *i* is a GET of ``urls[i % n]``, so
    that every target is asked at the same moments of the run, and a slow moment of a shared
    machine hits them alike; ``(target index, Request)`` for each. Otherwise :func:`open_loop`."""
    import httpx

    if rate <= 0 or duration <= 0 or deadline <= 0:
        raise ValueError("rate, duration and deadline must be positive")
    if not urls:
        raise ValueError("give at least one URL")
    n = int(rate * duration)

    async def main() -> list[tuple[int, Request]]:
        loop = asyncio.get_running_loop()
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=n)
        async with httpx.AsyncClient(
            limits=limits, trust_env=False, headers=dict(headers or {})
        ) as client:
            start = loop.time() + 0.05

            async def one(i: int) -> tuple[int, Request]:
                due = start + i / rate
                await asyncio.sleep(max(0.0, due - loop.time()))
                try:
                    answer = await asyncio.wait_for(
                        client.get(urls[i % len(urls)], timeout=None), deadline
                    )
                    status = answer.status_code
                except (asyncio.TimeoutError, httpx.HTTPError):
                    status = 0
                return i % len(urls), Request(due - start, loop.time() - start, status)

            return list(await asyncio.gather(*(one(i) for i in range(n))))

    return run_in_own_loop(main)


def summary(requests: Sequence[Request], rate: float) -> dict[str, Any]:
    """Offered and answered per second (2xx answers over the time from the first request due
    to the last answer), p50 and p99 of every request (a failure counts when it failed), and
    the count of each status."""
    ok = [r for r in requests if 200 <= r.status < 300]
    span = max(r.done for r in requests) - min(r.due for r in requests)
    latencies = [r.latency for r in requests]
    return {
        "offered_rps": rate,
        "answered_rps": len(ok) / span if span > 0 else 0.0,
        "p50_ms": percentile(latencies, 50) * 1e3,
        "p99_ms": percentile(latencies, 99) * 1e3,
        "requests": len(requests),
        "ok": len(ok),
        "statuses": dict(sorted(collections.Counter(r.status for r in requests).items())),
    }


def tcp_connections(pid: int) -> list[Any]:
    """Every TCP socket of process ``pid`` and its children (psutil's ``net_connections``)."""
    import psutil

    process = psutil.Process(pid)
    found = []
    for proc in [process, *process.children(recursive=True)]:
        found += proc.net_connections(kind="tcp")
    return found


def amqp_connections(pid: int, port: int) -> int:
    """How many TCP connections process ``pid`` (and its children) holds to 127.0.0.1:``port``."""
    import psutil

    return sum(
        1
        for conn in tcp_connections(pid)
        if conn.raddr and conn.raddr.port == port and conn.status == psutil.CONN_ESTABLISHED
    )


def ecdf_ms(requests: Sequence[Request]) -> tuple[list[float], list[float]]:
    """The latency distribution of ``requests`` in milliseconds (sorted values, share <= each)."""
    return ecdf(r.latency * 1e3 for r in requests)


def answered(request: Request) -> bool:
    """Whether a request got a successful answer (2xx): anything else failed or was given up."""
    return 200 <= request.status < 300


def plot_answered(ax: Any, requests: Sequence[Request], label: str, **style: Any) -> None:
    """The latency ECDF of ``requests`` on ``ax``, drawn from the answered ones only, each
    rising by 1 / *all* requests: a side where some failed or were given up stops below 1.0,
    and its legend entry says how many (a failure is never drawn as a latency)."""
    ok = sorted(r.latency * 1e3 for r in requests if answered(r))
    failed = len(requests) - len(ok)
    if failed:
        label = f"{label}: {failed} of {len(requests)} failed or given up, not drawn"
    if not ok:
        ax.plot([], [], label=f"{label} (none answered)", **style)
        return
    ys = [(i + 1) / len(requests) for i in range(len(ok))]
    (line,) = ax.step(ok, ys, where="post", label=label, **style)
    if failed:  # where the curve stops: the share answered
        ax.plot([ok[-1]], [ys[-1]], marker="x", color=line.get_color(), markersize=8)


def log_ms_axis(ax: Any, label: str = "latency (ms, log)") -> None:
    """A log x axis of milliseconds whose ticks are plain numbers at 1, 2 and 5 of each decade
    (matplotlib's default writes 3x10^0 and 4x10^0 over each other)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(label)


def closed_port_url() -> str:
    """An AMQP URL on a port of 127.0.0.1 where nothing listens (a broker that is down)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"amqp://guest:guest@127.0.0.1:{port}//"


def broker_pid(broker: Any) -> int | None:
    """The pid of the Erlang VM behind ``broker`` (None for a broker the lab did not start)."""
    beam = broker.node._beam() if broker.node is not None else None
    return beam.pid if beam is not None else None


def closed_loop(
    n: int,
    calls: int,
    prepare: Callable[[int], Any],
    call: Callable[[Any], Any],
    timeout: float = 60.0,
) -> list[float]:
    """``n`` callers in threads, each ``prepare(i)`` once, then ``calls`` calls back to back
    (``call(state)``), all released together; returns every call's seconds. The run stops
    with an error after ``timeout`` seconds."""
    if n < 1 or calls < 1:
        raise ValueError("need at least one caller and one call")
    release = threading.Barrier(n + 1, timeout=timeout)
    deadline = time.monotonic() + timeout

    def caller(i: int) -> list[float]:
        state = prepare(i)
        release.wait()
        seconds = []
        for _ in range(calls):
            if time.monotonic() > deadline:
                raise TimeoutError(f"callers still busy after {timeout:g} s")
            t0 = time.perf_counter()
            call(state)
            seconds.append(time.perf_counter() - t0)
        return seconds

    with ThreadPoolExecutor(n, thread_name_prefix="caller") as pool:
        futures = [pool.submit(caller, i) for i in range(n)]
        release.wait()
        return [s for future in futures for s in future.result()]


# -- the three ways of waiting ---------------------------------------------------------------
@dataclass
class WaitRun:
    """One way of waiting under an open loop: its requests, the edge's threadpool size, the
    AMQP connections the edge held to the sync broker right after the load, the most calls
    the service ran at once (from its execution log) and the CPU share of edge and worker."""

    wait: str
    rate: float
    requests: list[Request]
    threads: int
    connections: int
    service_at_once: int
    cpu: dict[str, float]

    def row(self) -> dict[str, Any]:
        return {
            "wait": self.wait,
            **summary(self.requests, self.rate),
            "threads": self.threads,
            "amqp_connections": self.connections,
            "service_at_once": self.service_at_once,
            **{f"cpu_{name}": round(share, 2) for name, share in self.cpu.items()},
        }


def run_wait(
    lab: Any,
    wait: str,
    path: str,
    *,
    rate: float,
    duration: float,
    deadline: float,
    worker: Any,
    executions: Callable[[], Sequence[Mapping[str, Any]]],
    headers: Mapping[str, str] | None = None,
) -> WaitRun:
    """Start an edge that waits the ``wait`` way, send it :func:`open_loop` load on ``path``
    (with ``headers``: the session of the wallet's owner), read what it held, stop it (quickly:
    an edge whose event loop is blocked cannot finish its requests, so it is killed after 2 s)."""
    from urllib.parse import urlsplit

    import httpx

    from ..running.edge import edge_url, start_edge, stop_edge

    edge = start_edge(lab, wait=wait, timeout=deadline)
    try:
        url = edge_url(edge)
        with httpx.Client(base_url=url, timeout=30, trust_env=False) as http:
            for _ in range(3):  # warm: connections, reply queues, the first import
                http.get(path, headers=headers).raise_for_status()
            threads = http.get("/stats").json()["threads"]
        meter = CpuMeter({"edge": edge.process.pid, "worker": worker.process.pid}).start()
        since = time.time()
        requests = open_loop(url, path, rate, duration, deadline, headers)
        meter.stop()
        port = urlsplit(str(lab.sync.url)).port or 5672
        connections = amqp_connections(edge.process.pid, port)
        ran = [(e["started"], e["finished"]) for e in executions() if e["started"] >= since]
    finally:
        stop_edge(lab, edge, timeout=2)
    return WaitRun(wait, rate, requests, threads, connections, max_overlap(ran), meter.share())


def format_waits(rows: Mapping[str, Mapping[str, Any]]) -> str:
    """The table of :meth:`WaitRun.row` rows, one line per way of waiting."""
    head = f"{'wait':<11} {'answered/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'2xx':>5} {'failed':>6}"
    lines = [head + f" {'at once':>7} {'AMQP conns':>10} {'CPU edge':>8}"]
    for wait, r in rows.items():
        lines.append(
            f"{wait:<11} {r['answered_rps']:>10.1f} {r['p50_ms']:>8.0f} {r['p99_ms']:>8.0f} "
            f"{r['ok']:>5} {r['requests'] - r['ok']:>6} {r['service_at_once']:>7} "
            f"{r['amqp_connections']:>10} {r.get('cpu_edge', 0.0):>8.2f}"
        )
    return "\n".join(lines)


# -- what the edge costs ----------------------------------------------------------------------
@dataclass
class Cost:
    """The same call through the edge and from a direct caller: seconds per call of each, by
    block, and each process's CPU share (CPU seconds per second; 1.0 = one core) during each
    side's blocks."""

    concurrency: int
    direct: list[list[float]]
    edge: list[list[float]]
    cpu: dict[str, dict[str, float]]

    def p50_ms(self, side: str) -> float:
        return percentile([s for block in getattr(self, side) for s in block], 50) * 1e3

    def p99_ms(self, side: str) -> float:
        return percentile([s for block in getattr(self, side) for s in block], 99) * 1e3

    @property
    def ratio(self) -> float:
        """The edge's p50 over the direct caller's, all blocks pooled."""
        return self.p50_ms("edge") / self.p50_ms("direct")

    def block_ratios(self) -> list[float]:
        """The same ratio, block pair by block pair (its spread within this run)."""
        return [
            percentile(e, 50) / percentile(d, 50)
            for d, e in zip(self.direct, self.edge, strict=True)
        ]


def edge_and_direct(
    concurrency: int,
    calls: int,
    rounds: int,
    direct: tuple[Callable[[int], Any], Callable[[Any], Any]],
    edge: tuple[Callable[[int], Any], Callable[[Any], Any]],
    pids: Mapping[str, int],
) -> Cost:
    """``rounds`` rounds of two blocks, the direct caller's then the edge's (``(prepare, call)``
    each, see :func:`closed_loop`), ``concurrency`` callers making ``calls`` calls each; the CPU
    of the processes in ``pids`` is summed per side."""
    sides: dict[str, list[list[float]]] = {"direct": [], "edge": []}
    cpu: dict[str, dict[str, float]] = {"direct": {}, "edge": {}}
    wall = {"direct": 0.0, "edge": 0.0}
    for prepare, call in (direct, edge):
        closed_loop(concurrency, 5, prepare, call)  # warm
    for _ in range(rounds):
        for side, (prepare, call) in (("direct", direct), ("edge", edge)):
            meter = CpuMeter(pids).start()
            sides[side].append(closed_loop(concurrency, calls, prepare, call))
            meter.stop()
            wall[side] += meter.wall
            for name, seconds in meter.seconds.items():
                cpu[side][name] = cpu[side].get(name, 0.0) + seconds
    shares = {side: {n: s / wall[side] for n, s in cpu[side].items()} for side in cpu}
    return Cost(concurrency, sides["direct"], sides["edge"], shares)
