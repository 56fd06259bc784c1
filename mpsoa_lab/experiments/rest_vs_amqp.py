"""The harness of notebook 09 (REST against AMQP): the same sync call through both designs.

* :func:`parse_wrk` / :func:`run_wrk`: wrk 4.1's closed-loop throughput (``--latency``
  output read into a :class:`WrkRun`), a bounded ``-d`` on a loopback URL only;
* :class:`Side` / :func:`compare`: each way of reaching the service (the edge over AMQP, the
  edge over REST through HAProxy or straight to one instance, a trivial handler) driven by wrk
  for throughput and by the open loop of notebook 08 for latency, in one run, with the CPU
  each process used; :func:`table` and :func:`plot_latency` show the result;
* :func:`worker_conf`, :func:`process_env`, :func:`haproxy_addresses`: what each side is
  configured with, read from the running processes (Celery's ``inspect conf``, the process's
  own environment, HAProxy's generated config and ``show servers state``).

All traffic goes to 127.0.0.1; every loop is bounded in count and time.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..observe.cpu import CpuMeter
from ..observe.latency import percentile
from .edge_load import (
    Request,
    open_loop,
    run_in_own_loop,
    summary,
    tcp_connections,
)

__all__ = [
    "WrkRun",
    "parse_wrk",
    "wrk_args",
    "run_wrk",
    "Side",
    "SideRun",
    "compare",
    "paused",
    "closed_loop_for",
    "table",
    "plot_latency",
    "plot_throughput",
    "worker_conf",
    "process_env",
    "haproxy_addresses",
    "tool_versions",
    "listening_ports",
]

_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_DURATION = re.compile(r"^([\d.]+)(us|ms|s|m|h)$")
_COUNT = re.compile(r"^([\d.]+)([kMG]?)$")


def _ms(token: str) -> float:
    match = _DURATION.match(token.strip())
    if not match:
        raise ValueError(f"not a wrk duration: {token!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


@dataclass(frozen=True)
class WrkRun:
    """What wrk printed: requests per second, the latency percentiles it measured (in ms, from
    when each request was *sent*: closed loop), requests, seconds, and every error it counted."""

    requests_per_s: float
    percentiles_ms: dict[int, float]
    requests: int
    seconds: float
    max_ms: float = 0.0
    non_2xx: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)

    @property
    def p50_ms(self) -> float:
        return self.percentiles_ms[50]

    @property
    def p99_ms(self) -> float:
        return self.percentiles_ms[99]

    @property
    def errors(self) -> int:
        return self.non_2xx + sum(self.socket_errors.values())


def parse_wrk(text: str) -> WrkRun:
    """Read the output of ``wrk --latency`` (4.x); a clear error when a line is missing."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    total = re.search(r"^\s*(\d+) requests in ([\d.]+\w+),", text, re.M)
    if not rps or not total:
        raise ValueError("no 'Requests/sec' or 'N requests in' line: is this wrk's output?")
    percentiles = {
        int(p): _ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)\s*$", text, re.M)
    }
    if 50 not in percentiles or 99 not in percentiles:
        raise ValueError("no latency distribution: run wrk with --latency")
    latency = re.search(r"^\s+Latency\s+(\S+)\s+(\S+)\s+(\S+)", text, re.M)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    socket_errors = (
        dict(zip(("connect", "read", "write", "timeout"), map(int, sockets.groups()), strict=True))
        if sockets
        else {}
    )
    return WrkRun(
        float(rps.group(1)),
        percentiles,
        int(total.group(1)),
        _ms(total.group(2)) / 1e3,
        _ms(latency.group(3)) if latency else 0.0,
        int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors,
    )


def wrk_args(
    url: str,
    *,
    connections: int,
    seconds: float,
    threads: int = 1,
    headers: Mapping[str, str] | None = None,
) -> list[str]:
    """wrk's command line for ``url``: loopback only, a bounded duration and request timeout,
    ``headers`` sent with every request."""
    host = urlsplit(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"load goes to loopback addresses only, not {host!r}")
    if not 0 < seconds <= 30 or connections < 1 or threads < 1:
        raise ValueError("need 0 < seconds <= 30 and at least one connection and thread")
    threads = min(threads, connections)
    return [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "5s",
        "--latency",
        *[arg for name, value in (headers or {}).items() for arg in ("-H", f"{name}: {value}")],
        url,
    ]


def run_wrk(
    url: str,
    *,
    connections: int = 8,
    seconds: float = 3,
    threads: int = 1,
    headers: Mapping[str, str] | None = None,
) -> WrkRun:
    """Run wrk on ``url`` (closed loop: ``connections`` requests in flight, each sent when the
    one before it on its connection came back) and read its output."""
    if shutil.which("wrk") is None:
        raise FileNotFoundError(
            "wrk is not installed: make setup installs it (apt-get install wrk)"
        )
    args = wrk_args(url, connections=connections, seconds=seconds, threads=threads, headers=headers)
    done = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 20, check=True)
    return parse_wrk(done.stdout)


@dataclass(frozen=True)
class Side:
    """One way of reaching the service: a name, the base URL the load goes to, the path, the
    processes whose CPU counts (name -> pid), and the headers every request carries (the
    session of the wallet's owner)."""

    name: str
    url: str
    path: str
    pids: Mapping[str, int | None]
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class SideRun:
    """A side measured in ``len(wrk)`` rounds: wrk's closed loop of each round, the open loop's
    requests at ``rate`` (all rounds pooled), and the CPU share of each process (CPU seconds
    per second, 1.0 = one core) during the open loops."""

    side: Side
    wrk: list[WrkRun]
    rate: float
    requests: list[Request]
    cpu: dict[str, float]

    @property
    def wrk_rps(self) -> float:
        """wrk's requests per second, the median of the rounds."""
        return percentile([w.requests_per_s for w in self.wrk], 50)

    def row(self) -> dict[str, Any]:
        s = summary(self.requests, self.rate)
        return {
            "side": self.side.name,
            "wrk_rps": self.wrk_rps,
            "wrk_p50_ms": percentile([w.p50_ms for w in self.wrk], 50),
            "wrk_p99_ms": percentile([w.p99_ms for w in self.wrk], 50),
            "wrk_errors": sum(w.errors for w in self.wrk),
            "p50_ms": s["p50_ms"],
            "p99_ms": s["p99_ms"],
            "ok": s["ok"],
            "requests": s["requests"],
            "cpu": self.cpu,
        }


def compare(
    sides: Sequence[Side],
    *,
    rate: float,
    duration: float,
    connections: int,
    wrk_seconds: float,
    rounds: int = 2,
    deadline: float = 5.0,
    progress: Any = None,
) -> dict[str, SideRun]:
    """``rounds`` rounds; in each, every side in turn (the order reversed every other round,
    so a slow moment of the machine hits all sides alike): wrk for throughput, then the open
    loop at ``rate`` for ``duration`` seconds with a :class:`CpuMeter` on the side's
    processes. Each side is warmed first."""
    import httpx

    if rounds < 1:
        raise ValueError("need at least one round")
    for side in sides:
        with httpx.Client(
            base_url=side.url, timeout=10, trust_env=False, headers=dict(side.headers)
        ) as http:
            for _ in range(20):  # warm: connections, the first import, SQLite's cache
                http.get(side.path).raise_for_status()
    wrks: dict[str, list[WrkRun]] = {s.name: [] for s in sides}
    requests: dict[str, list[Request]] = {s.name: [] for s in sides}
    cpu: dict[str, dict[str, float]] = {s.name: {} for s in sides}
    wall = dict.fromkeys(wrks, 0.0)
    steps = [(r, s) for r in range(rounds) for s in (sides if r % 2 == 0 else sides[::-1])]
    for _, side in progress(steps, desc="sides x rounds") if progress else steps:
        url = side.url + side.path
        wrks[side.name].append(
            run_wrk(url, connections=connections, seconds=wrk_seconds, headers=side.headers)
        )
        meter = CpuMeter(side.pids).start()
        offset = max((r.done for r in requests[side.name]), default=0.0) + 1.0
        for r in open_loop(side.url, side.path, rate, duration, deadline, side.headers):
            requests[side.name].append(Request(r.due + offset, r.done + offset, r.status))
        meter.stop()
        wall[side.name] += meter.wall
        for name, seconds in meter.seconds.items():
            cpu[side.name][name] = cpu[side.name].get(name, 0.0) + seconds
    return {
        s.name: SideRun(
            s,
            wrks[s.name],
            rate,
            requests[s.name],
            {n: v / wall[s.name] for n, v in cpu[s.name].items()},
        )
        for s in sides
    }


def closed_loop_for(
    url: str,
    path: str,
    connections: int,
    seconds: float,
    headers: Mapping[str, str] | None = None,
) -> list[float]:
    """A naive closed loop: ``connections`` keep-alive connections, each sending its next GET
    as soon as the previous answer came back, for ``seconds``; every request's seconds from
    when it was *sent* (what a closed-loop tool without correction reports)."""
    import asyncio

    import httpx

    if connections < 1 or not 0 < seconds <= 30:
        raise ValueError("need at least one connection and 0 < seconds <= 30")

    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        limits = httpx.Limits(max_connections=connections)
        async with httpx.AsyncClient(
            base_url=url, limits=limits, trust_env=False, headers=dict(headers or {})
        ) as client:

            async def one() -> list[float]:
                took = []
                while loop.time() < end:
                    t0 = loop.time()
                    (await client.get(path, timeout=10)).raise_for_status()
                    took.append(loop.time() - t0)
                return took

            return [
                t
                for each in await asyncio.gather(*(one() for _ in range(connections)))
                for t in each
            ]

    return run_in_own_loop(main)


@contextlib.contextmanager
def paused(pid: int, after: float, seconds: float) -> Iterator[None]:
    """Freeze process ``pid`` (SIGSTOP) ``after`` seconds into the block, for ``seconds``
    (a GC pause, a stalled disk); it is always resumed (SIGCONT), also when the block fails."""
    if not 0 < seconds <= 10:
        raise ValueError("a pause of 0 to 10 seconds")
    done = threading.Event()

    def pause() -> None:
        if done.wait(after):
            return
        os.kill(pid, signal.SIGSTOP)
        try:
            done.wait(seconds)
        finally:
            os.kill(pid, signal.SIGCONT)

    thread = threading.Thread(target=pause, name="pause", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        os.kill(pid, signal.SIGCONT)


def table(runs: Mapping[str, SideRun]) -> str:
    """One line per side: wrk's requests/s and closed-loop p50/p99, the open loop's p50/p99
    and failures, and the CPU of each process during the open loop."""
    width = max(16, *(len(name) for name in runs))
    head = f"{'side':<{width}} {'wrk req/s':>9} {'wrk p50':>8} {'wrk p99':>8} | {'p50 ms':>7}"
    lines = [head + f" {'p99 ms':>7} {'failed':>6} | CPU (cores) during the open loop"]
    for name, run in runs.items():
        r = run.row()
        cpu = ", ".join(f"{n} {v:.2f}" for n, v in r["cpu"].items())
        lines.append(
            f"{name:<{width}} {r['wrk_rps']:>9.0f} {r['wrk_p50_ms']:>8.1f} {r['wrk_p99_ms']:>8.1f} | "
            f"{r['p50_ms']:>7.1f} {r['p99_ms']:>7.1f} {r['requests'] - r['ok']:>6} | {cpu}"
        )
    return "\n".join(lines)


def plot_latency(runs: Mapping[str, SideRun], ax: Any) -> None:
    """The open loop's latency distribution of each side (ECDF, log x), answered requests
    only; a side with failures stops below 1.0 (:func:`~.edge_load.plot_answered`)."""
    from .edge_load import log_ms_axis, plot_answered

    for name, run in runs.items():
        plot_answered(ax, run.requests, name)
    log_ms_axis(ax, "latency from when the request was due (ms, log)")
    ax.set(ylabel="share of requests answered <= x", ylim=(0, 1.02))
    ax.legend(fontsize=8)


def plot_throughput(runs: Mapping[str, SideRun], ax: Any, reference: str = "AMQP") -> None:
    """What wrk got through on each side, as bars on a linear axis from zero, each labelled
    with its requests per second and its ratio to the ``reference`` side."""
    names = list(runs)
    values = [runs[n].wrk_rps for n in names]
    base = runs[reference].wrk_rps if reference in runs else None
    bars = ax.barh(names, values, color="tab:blue")
    labels = [
        f"{v:,.0f}/s" + (f" ({v / base:.2f}x {reference})" if base and n != reference else "")
        for n, v in zip(names, values, strict=True)
    ]
    ax.bar_label(bars, labels=labels, padding=3, fontsize=8)
    ax.set_xlim(0, max(values, default=1) * 1.45)  # from zero, with room for the labels
    ax.set_xlabel("requests/s under wrk (linear from 0; more is better)")
    ax.invert_yaxis()


# -- what each side is configured with -------------------------------------------------------
def worker_conf(worker: Any, keys: Sequence[str], timeout: float = 3.0) -> dict[str, Any]:
    """Settings of a running Celery worker, asked through Celery's ``inspect conf`` (the
    worker's own answer, passwords masked by Celery)."""
    answer = worker.app.control.inspect([worker.hostname], timeout=timeout).conf() or {}
    conf = answer.get(worker.hostname)
    if conf is None:
        raise TimeoutError(f"{worker.hostname} did not answer inspect conf in {timeout:g} s")
    return {key: conf.get(key) for key in keys}


def process_env(pid: int, prefix: str = "MPSOA_") -> dict[str, str]:
    """The environment variables of a running process that start with ``prefix``, read from
    the process itself (what it was started with), sorted by name."""
    import psutil

    env = psutil.Process(pid).environ()
    return {k: env[k] for k in sorted(env) if k.startswith(prefix)}


def haproxy_addresses(config_text: str) -> dict[str, list[str]]:
    """The addresses in a HAProxy config: ``bind`` lines per frontend and ``server`` lines per
    backend (``section -> [addr:port, ...]``)."""
    found: dict[str, list[str]] = {}
    section = ""
    for line in config_text.splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if not line[0].isspace():
            section = " ".join(words[:2])
            continue
        if words[0] == "bind":
            found.setdefault(section, []).append(words[1])
        elif words[0] == "server" and len(words) >= 3:
            found.setdefault(section, []).append(words[2])
    return found


def tool_versions() -> dict[str, str]:
    """The versions of the installed haproxy and wrk (first line of each, the version word)."""
    found = {}
    for name, args, index in (("haproxy", ["haproxy", "-v"], 2), ("wrk", ["wrk", "--version"], 1)):
        try:
            out = subprocess.run(args, capture_output=True, text=True, timeout=10).stdout.split()
            found[name] = out[index] if len(out) > index else "?"
        except FileNotFoundError:
            found[name] = "not installed"
    return found


def listening_ports(pid: int) -> list[int]:
    """The TCP ports process ``pid`` (and its children) listens on: a web server has one, a
    Celery worker none."""
    import psutil

    return sorted({c.laddr.port for c in tcp_connections(pid) if c.status == psutil.CONN_LISTEN})
