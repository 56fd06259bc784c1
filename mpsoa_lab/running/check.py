"""``python -m mpsoa_lab check`` (``make check``): can this machine run the lab?

For a workshop leader, the week before: one line per check, ``ok`` or ``FAIL`` with what is
wrong and how to fix it, within a minute. What is checked: the Python version, the RabbitMQ
server and Erlang, HAProxy and wrk (the REST notebooks), free ports in the lab's ranges, memory
and disk, then the real thing in a scratch lab home of its own: two nodes that start, a worker
that answers a control ping, the edge that answers ``GET /health``, all stopped again. With
brokers given by URL (``MPSOA_SYNC_BROKER_URL`` / ``MPSOA_ASYNC_BROKER_URL``) the lab starts no
node: the brokers must accept a connection, and the worker and the edge run on them.

:func:`run_checks` returns the :class:`Check` list; :func:`main` prints it and returns 0 only
when every check passed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ..plumbing import settings as settings_mod
from ..plumbing.ports import DIST_PORTS, SERVICE_PORTS, PortAllocator

__all__ = ["Check", "run_checks", "format_check", "main", "LEAST_MEMORY_GIB", "LEAST_DISK_GIB"]

#: How the lab's errors start the line that says what to do (an install hint, a setting).
_ADVICE = re.compile(r"(Install|Run|Set|Unset|Start|Stop|Use|Check|Free|Give|Export)\b")
#: Memory the notebooks need free: the two nodes, a three-node cluster, workers and a kernel.
LEAST_MEMORY_GIB = 2.0
#: Disk the lab home needs free: nodes' data, logs, the saved notebooks' outputs.
LEAST_DISK_GIB = 2.0
#: The Python the lab is tested on and the oldest it installs on (pyproject's requires-python).
LEAST_PYTHON = (3, 10)


@dataclass(frozen=True)
class Check:
    """One line of the answer: what was checked, whether it passed, what was found, the fix."""

    name: str
    ok: bool
    found: str
    fix: str = ""


def format_check(check: Check) -> str:
    """``ok    name  found`` or ``FAIL  name  found; fix: ...``, on one line."""
    text = f"{'ok' if check.ok else 'FAIL':<6}{check.name:<16}{check.found.rstrip('.')}"
    if not check.ok and check.fix:
        text += f"; fix: {check.fix}"
    return " ".join(text.split("\n"))


def _failed(name: str, exc: BaseException) -> Check:
    """A failed check naming ``exc``: its first line is what is wrong, the next line the lab's
    own errors give (how to fix it) is the fix."""
    message = [line.strip() for line in str(exc).strip().split("\n")]
    fix = next((line for line in message[1:] if _ADVICE.match(line)), "")
    return Check(name, False, f"{type(exc).__name__}: {message[0]}", fix)


def _guarded(name: str, probe: Callable[[], Check]) -> Check:
    """``probe()``, or a failed check that names the error it raised."""
    try:
        return probe()
    except Exception as exc:  # noqa: BLE001 - every failure is one line of the answer
        return _failed(name, exc)


def check_python(version: tuple[int, ...] = tuple(sys.version_info[:3])) -> Check:
    found = ".".join(map(str, version))
    if version[:2] >= LEAST_PYTHON:
        return Check("python", True, found)
    need = ".".join(map(str, LEAST_PYTHON))
    return Check("python", False, f"{found}, older than {need}",
                 f"install Python {need} or newer (make setup finds python3.11 where it can)")  # fmt: skip


def _first_line(argv: list[str], timeout: float = 15.0) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else f"(no output, status {done.returncode})"


def check_rabbitmq() -> Check:
    from ..plumbing.install import find_rabbitmq_server
    from ..plumbing.versions import check_supported, installed_server_version

    server = find_rabbitmq_server(os.environ.get("MPSOA_RABBITMQ_SERVER"))
    version = installed_server_version()
    check_supported(version)
    return Check("rabbitmq-server", True, f"{version} ({server})")


def check_erlang() -> Check:
    from ..plumbing.install import find_epmd, install_hint

    erl = shutil.which(
        "erl", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/lib/erlang/bin"])
    )
    if erl is None:
        find_epmd()  # raises with the install hint when Erlang is missing altogether
        return Check("erlang", False, "erl not found on PATH", install_hint())
    release = _first_line([erl, "-noshell", "-eval",
                           'io:fwrite("~s", [erlang:system_info(otp_release)]), halt().'])  # fmt: skip
    return Check("erlang", True, f"OTP {release}")


def check_haproxy() -> Check:
    from ..plumbing.haproxy import find_haproxy

    program = find_haproxy()
    return Check("haproxy", True, f"{_first_line([program, '-v'])} ({program})")


def check_wrk() -> Check:
    program = shutil.which("wrk")
    if program is None:
        return Check("wrk", False, "not found on PATH",
                     "sudo apt-get install -y wrk (or make setup; notebook 09 needs it)")  # fmt: skip
    return Check("wrk", True, f"{_first_line([program, '--version'])} ({program})")


def check_ports(allocator: PortAllocator | None = None) -> Check:
    """Ports free in both of the lab's ranges (reserved for a moment, then released), and the
    kernel's ephemeral range clear of them."""
    allocator = allocator or PortAllocator()
    taken = []
    for low, high in (SERVICE_PORTS, DIST_PORTS):
        ports = allocator.reserve(10, low=low, high=high, ttl=30)
        allocator.release(ports)
        taken.append(f"{low}-{high - 1}")
    found = f"10 free in each of {', '.join(taken)}"
    ephemeral = Path("/proc/sys/net/ipv4/ip_local_port_range")
    if ephemeral.exists():
        low = int(ephemeral.read_text().split()[0])
        if low < DIST_PORTS[1] + 10000 + 10:
            return Check("ports", False, f"{found}, but the kernel hands out ports from {low}",
                         "sysctl -w net.ipv4.ip_local_port_range='32768 60999'")  # fmt: skip
    return Check("ports", True, found)


def _meminfo(path: Path = Path("/proc/meminfo")) -> dict[str, int]:
    fields = {}
    for line in path.read_text().splitlines():
        name, _, rest = line.partition(":")
        fields[name] = int(rest.split()[0]) * 1024 if rest.split() else 0
    return fields


def check_memory(available: int | None = None) -> Check:
    if available is None:
        available = _meminfo().get("MemAvailable", 0) if Path("/proc/meminfo").exists() else -1
    if available < 0:
        return Check("memory", True, "not read on this system (no /proc/meminfo)")
    gib = available / 2**30
    if gib >= LEAST_MEMORY_GIB:
        return Check("memory", True, f"{gib:.1f} GiB available")
    return Check("memory", False, f"{gib:.1f} GiB available, under {LEAST_MEMORY_GIB:.0f} GiB",
                 "close other programs, or use a machine with 4 GiB or more")  # fmt: skip


def check_disk(home: Path, free: int | None = None) -> Check:
    place = home if home.exists() else next(p for p in home.parents if p.exists())
    free = shutil.disk_usage(place).free if free is None else free
    gib = free / 2**30
    if gib >= LEAST_DISK_GIB:
        return Check("disk", True, f"{gib:.1f} GiB free under {place}")
    return Check("disk", False, f"{gib:.1f} GiB free under {place}, under {LEAST_DISK_GIB:.0f} GiB",
                 "free some space, or set MPSOA_LAB_HOME to a disk with more")  # fmt: skip


def check_running(env: dict[str, str] | None = None) -> list[Check]:
    """The lab for real, in a scratch home of its own: its nodes (or the given brokers), a
    worker, the edge; everything stopped and the home deleted on the way out."""
    from .lab import up

    env = dict(os.environ if env is None else env)
    home = tempfile.mkdtemp(prefix="mpsoa-check-")
    env.update(MPSOA_LAB_HOME=home, MPSOA_SPACE="default")
    name = "brokers by URL" if env.get("MPSOA_SYNC_BROKER_URL") else "nodes"
    started = time.monotonic()
    try:
        lab = up(settings_mod.load(env))
    except Exception as exc:  # noqa: BLE001 - one line of the answer
        shutil.rmtree(home, ignore_errors=True)
        return [_failed(name, exc)]
    try:
        what = "answered" if lab.external else "started"
        took = time.monotonic() - started
        return [
            Check(name, True, f"sync and async {what} in {took:.0f} s"),
            _guarded("worker", lambda: _worker(lab)),
            _guarded("edge", lambda: _edge(lab)),
        ]
    finally:
        lab.down()
        shutil.rmtree(home, ignore_errors=True)


def _worker(lab) -> Check:
    from .workers import start_worker

    t0 = time.monotonic()
    # its URLs given: this process's own services are not on the scratch lab
    with start_worker(lab, "mplogin", "sync", broker_urls=(lab.sync.url, lab.async_.url)):
        took = time.monotonic() - t0
    return Check("worker", True, f"mplogin.sync answered a control ping in {took:.0f} s")


def _edge(lab) -> Check:
    from .edge import edge_url, start_edge, stop_edge

    t0 = time.monotonic()
    edge = start_edge(lab)
    try:  # loopback only: the edge listens on 127.0.0.1
        with urllib.request.urlopen(edge_url(edge) + "/health", timeout=10) as answer:  # noqa: S310
            status = answer.status
    finally:
        stop_edge(lab, edge)
    took = time.monotonic() - t0
    return Check("edge", status == 200, f"GET /health answered {status} in {took:.0f} s")


def run_checks(env: dict[str, str] | None = None) -> list[Check]:
    """Every check, in order; the lab's own run only when its server (or brokers) can be had."""
    settings = settings_mod.load(env)
    checks = [check_python()]
    for name, probe in (("rabbitmq-server", check_rabbitmq), ("erlang", check_erlang),
                        ("haproxy", check_haproxy), ("wrk", check_wrk), ("ports", check_ports)):  # fmt: skip
        checks.append(_guarded(name, probe))
    checks.append(_guarded("memory", check_memory))
    checks.append(_guarded("disk", lambda: check_disk(settings.home)))
    server = next(c for c in checks if c.name == "rabbitmq-server")
    if server.ok or settings.external:
        checks += check_running(env)
    else:
        checks.append(Check("nodes", False, "not tried: no rabbitmq-server (above)", server.fix))
    return checks


def main(env: dict[str, str] | None = None, out: TextIO | None = None) -> int:
    """Print one line per check; 0 when every check passed, 1 otherwise."""
    out = out or sys.stdout
    started = time.monotonic()
    checks = run_checks(env)
    for check in checks:
        print(format_check(check), file=out)
    failed = [c.name for c in checks if not c.ok]
    took = time.monotonic() - started
    if failed:
        print(f"check: {len(failed)} problem(s): {', '.join(failed)} ({took:.0f} s)", file=out)
        return 1
    print(f"check: this machine can run the lab ({len(checks)} checks, {took:.0f} s)", file=out)
    return 0
