"""TCP ports for the lab's components, reserved machine-wide so that no two get the same one.

Checking a port with a bind that is released at once does not reserve it: two nodes of one
lab, or two labs (notebooks, test sessions) on one machine, can be handed the same port before
either component binds it, and one of them then fails with ``eaddrinuse``. A
:class:`PortAllocator` keeps the ports it hands out in one registry per user, a JSON file in the
temporary directory guarded by an ``fcntl`` lock, which every process of every lab reads and
writes under that lock. An entry lives while the process that holds it runs (the same pid *and*
the same start time, so a reused pid does not keep it) and, for a reservation not yet handed to
the component, until its expiry:

1. :meth:`PortAllocator.reserve` picks free ports and records them for the calling process,
   with an expiry (the time the component needs to start);
2. :meth:`PortAllocator.assign` hands them to the started component's process, without expiry:
   the entry lives as long as that process does;
3. :meth:`PortAllocator.release` drops them when the component is stopped (an entry whose
   process has died is dropped by the next call anyway).

A port is also checked with a bind on ``0.0.0.0`` and on ``127.0.0.1``, so that ports taken by
programs outside the lab are skipped. A component may still lose a race with a program outside
the lab; :func:`is_eaddrinuse` tells from its output whether that is why it failed, so that the
caller can try again on other ports.

The ranges lie below Linux's ephemeral range, from which the kernel picks the local port of
every outgoing connection (``/proc/sys/net/ipv4/ip_local_port_range``, 32768-60999 by
default): a port in it can be taken by any client socket between the check and the bind.
RabbitMQ's CLI tools (``rabbitmqctl``, ``rabbitmq-diagnostics``) listen on the node's
distribution port + 10000 to + 10010 (``RABBITMQ_CTL_DIST_PORT_MIN``/``_MAX``), a port the lab
does not reserve; distribution ports are therefore taken from :data:`DIST_PORTS` (20000-21999),
whose CLI ports (30000-32009) are below the ephemeral range and apart from
:data:`SERVICE_PORTS` (22000-29999), where every other port comes from.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import socket
import stat
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import LabError, PortsExhausted
from .processes import process_started, same_start

__all__ = [
    "PortAllocator",
    "PortsExhausted",
    "is_eaddrinuse",
    "DIST_PORTS",
    "SERVICE_PORTS",
    "CLI_DIST_PORT_OFFSET",
    "CLI_DIST_PORT_SPAN",
    "default_registry",
]

#: Erlang distribution ports ``[low, high)``. A node's CLI tools use dist + 10000 .. dist + 10010
#: (RabbitMQ's defaults for ``RABBITMQ_CTL_DIST_PORT_MIN``/``_MAX``), here 30000..32009: below
#: Linux's ephemeral range (32768 and up) and above :data:`SERVICE_PORTS`.
DIST_PORTS: tuple[int, int] = (20000, 22000)

#: Every other port ``[low, high)``: AMQP, management HTTP, epmd, HTTP apps, HAProxy.
SERVICE_PORTS: tuple[int, int] = (22000, 30000)

#: RabbitMQ's CLI tools listen on ``dist + CLI_DIST_PORT_OFFSET`` up to ``+ CLI_DIST_PORT_SPAN``.
CLI_DIST_PORT_OFFSET = 10000
CLI_DIST_PORT_SPAN = 10

#: Candidates tried per call before :class:`PortsExhausted` is raised (at least; more for a
#: large ``count``).
TRIES = 500

# RabbitMQ/Erlang (eaddrinuse), Python ([Errno 98] on Linux, 48 on macOS, "Address already in
# use"), uvicorn ("address already in use"), HAProxy ("cannot bind socket"), epmd in debug mode
# ("there is already a epmd running"; without -d it exits 0 and says nothing).
_EADDRINUSE = re.compile(
    r"eaddrinuse|address already in use|errno (?:98|48)\b|cannot bind socket"
    r"|already a epmd running",
    re.IGNORECASE,
)


def is_eaddrinuse(text: str) -> bool:
    """Whether a component's log or console output says that a port it wanted was taken."""
    return bool(_EADDRINUSE.search(text))


def default_registry() -> Path:
    """The registry every lab of this user on this machine shares."""
    return Path(tempfile.gettempdir()) / f"mpsoa-lab-ports-{os.getuid()}.json"


def _bindable(port: int) -> bool:
    """Whether ``port`` can be bound on 0.0.0.0 and on 127.0.0.1 (no SO_REUSEADDR) right now."""
    for host in ("0.0.0.0", "127.0.0.1"):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                return False
    return True


def _started(pid: int) -> float | None:
    """The start time of a running process (:func:`process_started`), or None if it is gone."""
    return process_started(pid)


class PortAllocator:
    """Reservations of TCP ports shared by every process of every lab of this user.

    ``registry`` is the JSON file (default: :func:`default_registry`); its lock file is next to
    it, with the suffix ``.lock``. Each call takes the lock, reads the registry once, drops
    entries that are no longer live, and writes it back once.
    """

    def __init__(self, registry: Path | None = None):
        self.registry = Path(registry) if registry is not None else default_registry()
        self.lock_path = self.registry.with_name(self.registry.name + ".lock")

    def __repr__(self) -> str:
        return f"PortAllocator({str(self.registry)!r})"

    # -- public API ----------------------------------------------------------------------------

    def reserve(
        self, count: int = 1, *, low: int, high: int, ttl: float = 300.0, contiguous: bool = False
    ) -> list[int]:
        """``count`` free ports in ``[low, high)``, reserved for this process for ``ttl`` seconds.

        A port is handed out when no live entry holds it and it binds on 0.0.0.0 and 127.0.0.1;
        with ``contiguous`` the ports are one block ``p, p+1, ..., p+count-1``. Call
        :meth:`assign` once the component that uses them has started, or :meth:`release`.
        Raises :class:`PortsExhausted` when no such ports are found after a bounded number of
        tries.
        """
        if count < 1:
            raise ValueError(f"count must be at least 1, not {count}")
        if not 0 < low < high <= 65536:
            raise ValueError(f"not a port range: [{low}, {high})")
        if count > high - low:
            raise PortsExhausted(
                f"{count} ports asked for, but [{low}, {high}) has only {high - low}"
            )
        me = os.getpid()
        with self._locked() as entries:
            pick = self._pick_block if contiguous else self._pick_ports
            ports = pick(entries, count, low, high)
            owner = {"pid": me, "created": _started(me), "expires": time.time() + ttl}
            for port in ports:
                entries[str(port)] = dict(owner)
        return ports

    def assign(self, ports: Iterable[int], pid: int) -> None:
        """Hand ``ports`` over to process ``pid``, without expiry: they stay reserved while it
        runs. If ``pid`` has already exited, the ports are released instead."""
        created = _started(pid)
        with self._locked() as entries:
            for port in ports:
                if created is None:
                    entries.pop(str(port), None)
                else:
                    entries[str(port)] = {"pid": pid, "created": created, "expires": None}

    def release(self, ports: Iterable[int]) -> None:
        """Drop the reservations of ``ports``, whoever holds them."""
        with self._locked() as entries:
            for port in ports:
                entries.pop(str(port), None)

    def reserved(self) -> dict[int, int]:
        """The ports reserved right now by live entries, each with the pid that holds it."""
        with self._locked() as entries:
            return {int(port): entry["pid"] for port, entry in entries.items()}

    # -- picking -------------------------------------------------------------------------------

    @staticmethod
    def _pick_ports(entries: dict[str, Any], count: int, low: int, high: int) -> list[int]:
        ports: list[int] = []
        tried: set[int] = set()
        for _ in range(max(TRIES, 4 * count)):
            port = low + secrets.randbelow(high - low)
            if port in tried:
                if len(tried) == high - low:
                    break
                continue
            tried.add(port)
            if str(port) not in entries and _bindable(port):
                ports.append(port)
                if len(ports) == count:
                    return sorted(ports)
        raise PortsExhausted(
            f"found only {len(ports)} of {count} free ports in [{low}, {high}) "
            f"after trying {len(tried)}: the others are bound or reserved"
        )

    @staticmethod
    def _pick_block(entries: dict[str, Any], count: int, low: int, high: int) -> list[int]:
        starts = high - low - count + 1
        tried: set[int] = set()
        for _ in range(TRIES):
            start = low + secrets.randbelow(starts)
            if start in tried:
                if len(tried) == starts:
                    break
                continue
            tried.add(start)
            block = list(range(start, start + count))
            if all(str(p) not in entries for p in block) and all(map(_bindable, block)):
                return block
        raise PortsExhausted(
            f"no block of {count} consecutive free ports in [{low}, {high}) "
            f"after trying {len(tried)} starts: the others are bound or reserved"
        )

    # -- the registry --------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """The live entries (port as a string -> owner), under the lock; written back after."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            self._check_owner(os.fstat(fd), self.lock_path)
            fcntl.flock(fd, fcntl.LOCK_EX)
            entries = self._live(self._read())
            yield entries
            self._write(entries)
        finally:
            os.close(fd)  # releases the lock

    @staticmethod
    def _check_owner(st: os.stat_result, path: Path) -> None:
        if st.st_uid != os.getuid() or not stat.S_ISREG(st.st_mode):
            raise LabError(
                f"{path} is not a file of this user's: the lab cannot trust its port "
                f"registry. Remove it (or pass another registry path)."
            )

    def _read(self) -> dict[str, Any]:
        try:
            fd = os.open(self.registry, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return {}
        with os.fdopen(fd) as f:
            self._check_owner(os.fstat(f.fileno()), self.registry)
            text = f.read()
        try:
            data = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError:  # written atomically, so only a hand edit gets here
            return {}
        return data.get("ports", {}) if isinstance(data, dict) else {}

    def _write(self, entries: dict[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.registry.parent, prefix=self.registry.name + ".")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"ports": entries}, f, separators=(",", ":"))
            os.replace(tmp, self.registry)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @staticmethod
    def _live(entries: dict[str, Any]) -> dict[str, Any]:
        now = time.time()
        started: dict[int, float | None] = {}
        live = {}
        for port, entry in entries.items():
            try:
                pid, created, expires = entry["pid"], entry["created"], entry["expires"]
            except (KeyError, TypeError):
                continue
            if expires is not None and expires <= now:
                continue
            if pid not in started:
                started[pid] = _started(pid)
            running = started[pid]
            if running is None or not same_start(created, pid):
                continue
            live[port] = entry
        return live
