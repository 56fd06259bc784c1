"""Port reservations: a live one is never handed out twice, in one process or across several."""

from __future__ import annotations

import multiprocessing
import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psutil
import pytest

from mpsoa_lab.plumbing.errors import LabError
from mpsoa_lab.plumbing.ports import (
    CLI_DIST_PORT_OFFSET,
    CLI_DIST_PORT_SPAN,
    DIST_PORTS,
    SERVICE_PORTS,
    PortAllocator,
    PortsExhausted,
    default_registry,
    is_eaddrinuse,
)
from mpsoa_lab.plumbing.util import wait_until

LOW, HIGH = SERVICE_PORTS


@pytest.fixture
def allocator(tmp_path: Path) -> PortAllocator:
    return PortAllocator(tmp_path / "ports.json")


def free_block(allocator: PortAllocator, count: int) -> int:
    """The first port of ``count`` consecutive ports that are free right now (not reserved)."""
    block = allocator.reserve(count, low=LOW, high=HIGH, contiguous=True)
    allocator.release(block)
    return block[0]


@contextmanager
def bound(*ports: int) -> Iterator[None]:
    """Listen on ``ports`` (one on 0.0.0.0, the others on 127.0.0.1) while inside."""
    with ExitStack() as stack:
        for i, port in enumerate(ports):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("0.0.0.0" if i == 0 else "127.0.0.1", port))
            sock.listen()
        yield


def _reserve_many(registry: str, low: int, high: int, n: int, start, done, out) -> None:
    allocator = PortAllocator(Path(registry))
    start.wait()
    ports = []
    for _ in range(n):
        ports += allocator.reserve(low=low, high=high)
    out.put(ports)
    done.wait()  # stay alive, so that the ports stay reserved until every process is finished


def _reserve_and_exit(registry: str, low: int, high: int, out) -> None:
    out.put(PortAllocator(Path(registry)).reserve(low=low, high=high))


def test_live_reservations_are_never_handed_out_twice(allocator):
    low = free_block(allocator, 1)
    low, high = max(LOW, low - 200), max(LOW, low - 200) + 400
    handed = []
    for i in range(150):
        handed += allocator.reserve(1 + i % 3, low=low, high=high)
    assert len(handed) == len(set(handed)) == 300
    assert all(low <= port < high for port in handed)
    assert set(allocator.reserved()) == set(handed)
    assert set(allocator.reserved().values()) == {os.getpid()}


def test_processes_reserving_at_once_get_distinct_ports(allocator):
    ctx = multiprocessing.get_context("spawn")
    start, done, out = ctx.Event(), ctx.Event(), ctx.Queue()
    low, high = LOW + 1000, LOW + 1400  # 200 of 400 ports: picks collide often
    procs = [
        ctx.Process(
            target=_reserve_many, args=(str(allocator.registry), low, high, 50, start, done, out)
        )
        for _ in range(4)
    ]
    for proc in procs:
        proc.start()
    try:
        start.set()
        handed = [port for _ in procs for port in out.get(timeout=60)]
    finally:
        done.set()
        for proc in procs:
            proc.join(timeout=30)
    assert [proc.exitcode for proc in procs] == [0, 0, 0, 0]
    assert len(handed) == len(set(handed)) == 200
    assert all(low <= port < high for port in handed)


def test_a_port_bound_by_another_socket_is_never_handed_out(allocator):
    first = free_block(allocator, 3)
    with bound(first, first + 1):
        for _ in range(20):
            assert allocator.reserve(low=first, high=first + 3) == [first + 2]
            allocator.release([first + 2])
        allocator.reserve(low=first, high=first + 3)
        with pytest.raises(PortsExhausted):
            allocator.reserve(low=first, high=first + 3)


def test_an_expired_reservation_is_reused(allocator):
    port = free_block(allocator, 1)
    assert allocator.reserve(low=port, high=port + 1, ttl=0.0) == [port]
    assert allocator.reserve(low=port, high=port + 1) == [port]
    with pytest.raises(PortsExhausted):
        allocator.reserve(low=port, high=port + 1)


def test_a_reservation_by_a_dead_process_is_reused_at_once(allocator):
    port = free_block(allocator, 1)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(
        target=_reserve_and_exit, args=(str(allocator.registry), port, port + 1, out)
    )
    proc.start()
    assert out.get(timeout=60) == [port]
    proc.join(timeout=30)
    assert proc.exitcode == 0
    assert allocator.reserve(low=port, high=port + 1, ttl=300.0) == [port]


def test_assigned_ports_live_as_long_as_their_process(allocator):
    port = free_block(allocator, 1)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        allocator.reserve(low=port, high=port + 1, ttl=0.0)
        allocator.assign([port], sleeper.pid)
        assert allocator.reserved() == {port: sleeper.pid}
        with pytest.raises(PortsExhausted):  # no expiry: held although the ttl is over
            allocator.reserve(low=port, high=port + 1)
        sleeper.kill()  # not reaped: a zombie holds nothing
        wait_until(lambda: psutil.Process(sleeper.pid).status() == psutil.STATUS_ZOMBIE)
        assert allocator.reserved() == {}
    finally:
        sleeper.kill()
        sleeper.wait()
    assert allocator.reserve(low=port, high=port + 1) == [port]


def test_assigning_to_a_process_that_is_gone_releases(allocator):
    sleeper = subprocess.Popen(["sleep", "0"])
    sleeper.wait()
    ports = allocator.reserve(2, low=LOW, high=HIGH)
    allocator.assign(ports, sleeper.pid)
    assert allocator.reserved() == {}


def test_release_frees_ports_for_the_next_reservation(allocator):
    port = free_block(allocator, 1)
    allocator.reserve(low=port, high=port + 1)
    allocator.release([port])
    assert allocator.reserve(low=port, high=port + 1) == [port]


def test_contiguous_blocks_are_consecutive_and_do_not_overlap(allocator):
    low, high = LOW + 2000, LOW + 2200
    blocks = [allocator.reserve(11, low=low, high=high, contiguous=True) for _ in range(10)]
    for block in blocks:
        assert block == list(range(block[0], block[0] + 11))
        assert low <= block[0] and block[-1] < high
    ports = [port for block in blocks for port in block]
    assert len(ports) == len(set(ports))


def test_a_tiny_range_fully_bound_is_exhausted(allocator):
    first = free_block(allocator, 3)
    with bound(first, first + 1, first + 2):
        with pytest.raises(PortsExhausted, match=rf"\[{first}, {first + 3}\)") as caught:
            allocator.reserve(low=first, high=first + 3)
        assert isinstance(caught.value, LabError)
        with pytest.raises(PortsExhausted):
            allocator.reserve(2, low=first, high=first + 3, contiguous=True)
    with pytest.raises(PortsExhausted):
        allocator.reserve(4, low=first, high=first + 3)


def test_a_planted_symlink_is_not_followed(tmp_path):
    registry = tmp_path / "ports.json"
    (tmp_path / "elsewhere").write_text("")
    (tmp_path / "ports.json.lock").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OSError):  # O_NOFOLLOW: a planted symlink is not followed
        PortAllocator(registry).reserve(low=LOW, high=HIGH)


def test_the_default_registry_is_per_user():
    assert default_registry().name == f"mpsoa-lab-ports-{os.getuid()}.json"
    assert PortAllocator().registry == default_registry()


def test_the_ranges_stay_below_the_ephemeral_range_and_apart():
    ephemeral = Path("/proc/sys/net/ipv4/ip_local_port_range")
    first_ephemeral = int(ephemeral.read_text().split()[0]) if ephemeral.exists() else 32768
    cli_high = DIST_PORTS[1] - 1 + CLI_DIST_PORT_OFFSET + CLI_DIST_PORT_SPAN
    assert DIST_PORTS[1] <= SERVICE_PORTS[0]
    assert SERVICE_PORTS[1] <= DIST_PORTS[0] + CLI_DIST_PORT_OFFSET
    assert cli_high < first_ephemeral


@pytest.mark.parametrize(
    "line",
    [
        "2026-11-24 08:38:49.198085+00:00 [error] <0.766.0> Failed to start Ranch listener "
        "{acceptor,{127,0,0,1},24403} for reason eaddrinuse (address already in use)",
        "{listen_error,{acceptor,{127,0,0,1},24403},eaddrinuse}",
        "OSError: [Errno 98] Address already in use",
        "ERROR:    [Errno 98] error while attempting to bind on address ('127.0.0.1', 22001): "
        "address already in use",
        "[ALERT]    (12345) : Starting frontend http: cannot bind socket (Address already in use) "
        "[127.0.0.1:22002]",
        "epmd: Fri Nov 27 15:29:50 2026: there is already a epmd running at port 22003",
    ],
)
def test_eaddrinuse_is_recognised(line):
    assert is_eaddrinuse(line)


@pytest.mark.parametrize(
    "line",
    [
        "2026-11-24 08:38:49.198085+00:00 [info] <0.223.0> started TCP listener on 127.0.0.1:24403",
        "ConnectionRefusedError: [Errno 111] Connection refused",
        "OSError: [Errno 980] something else",
        "",
    ],
)
def test_other_output_is_not_eaddrinuse(line):
    assert not is_eaddrinuse(line)
