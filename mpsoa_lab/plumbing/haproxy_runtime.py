"""A small client for HAProxy's runtime API (its "stats socket", a Unix socket at level admin).

One command per connection, as ``socat`` sends them; the answers parsed where the lab reads
them. Every command here was checked against HAProxy 2.6 (``tests/integration/test_haproxy.py``):

* ``show servers state [<backend>]``: :meth:`HAProxyRuntime.servers` (one :class:`ServerState`
  per server: operational and administrative state, check state, address and port);
* ``add server <backend>/<server> <addr>:<port> check inter ... fall ... rise ...``, then
  ``enable health`` and ``enable server``: :meth:`~HAProxyRuntime.add_server` (a dynamic server
  is created in maintenance with its checks off, and takes no default-server settings; once
  enabled it is UP at once, before its first check, so add only an instance that answers);
* ``disable server`` / ``enable server`` (maintenance), ``set server ... state
  ready|drain|maint``, ``set server ... health up|stopping|down``, ``disable|enable health``;
* ``del server`` (only a server in maintenance with no connection left);
* ``show stat``: per-server counters (requests, 5xx, retries, redispatches), as CSV;
* ``show info``: the process's own figures.

A refused command raises :class:`~mpsoa_lab.plumbing.errors.HAProxyCommandError` with HAProxy's
answer (``No such server.``, ``Only servers in maintenance mode can be deleted.``, ...).
"""

from __future__ import annotations

import csv
import io
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import HAProxyCommandError

__all__ = ["HAProxyRuntime", "ServerState", "SERVER_STATES", "HEALTH_STATES"]

#: Administrative states of ``set server <b>/<s> state``.
SERVER_STATES = ("ready", "drain", "maint")
#: Forced health states of ``set server <b>/<s> health``.
HEALTH_STATES = ("up", "stopping", "down")

_OP_STATES = {0: "DOWN", 1: "STARTING", 2: "UP", 3: "STOPPING"}
# srv_admin_state bits (management guide, "show servers state")
_FORCED_MAINT, _INHERITED_MAINT, _CONFIG_MAINT, _FORCED_DRAIN, _INHERITED_DRAIN = 1, 2, 4, 8, 16
_RESOLVE_MAINT = 0x20
_CHECK_ENABLED = 0x04


@dataclass(frozen=True)
class ServerState:
    """One line of ``show servers state``."""

    backend: str
    server: str
    addr: str
    port: int
    op_state: int
    admin_state: int
    check_status: int
    check_result: int
    check_health: int
    check_state: int

    @property
    def maint(self) -> bool:
        """In maintenance (forced, inherited, from the config or a failed resolution)."""
        return bool(
            self.admin_state & (_FORCED_MAINT | _INHERITED_MAINT | _CONFIG_MAINT | _RESOLVE_MAINT)
        )

    @property
    def drain(self) -> bool:
        return bool(self.admin_state & (_FORCED_DRAIN | _INHERITED_DRAIN))

    @property
    def checked(self) -> bool:
        """Whether its health check is enabled."""
        return bool(self.check_state & _CHECK_ENABLED)

    @property
    def up(self) -> bool:
        """Whether it takes new requests: operationally UP and neither in maintenance nor
        draining."""
        return self.op_state == 2 and not self.maint and not self.drain

    @property
    def status(self) -> str:
        """``MAINT``, ``DRAIN``, or the operational state (``UP``, ``DOWN``, ...)."""
        if self.maint:
            return "MAINT"
        if self.drain:
            return "DRAIN"
        return _OP_STATES.get(self.op_state, str(self.op_state))


def _server_states(text: str) -> list[ServerState]:
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or lines[0].strip() != "1":
        raise HAProxyCommandError(f"unexpected 'show servers state' answer: {text[:200]!r}")
    header = lines[1].lstrip("# ").split()
    states = []
    for line in lines[2:]:
        if line.startswith("#"):
            continue
        row = dict(zip(header, line.split(), strict=False))
        states.append(
            ServerState(
                backend=row["be_name"],
                server=row["srv_name"],
                addr=row["srv_addr"],
                port=int(row["srv_port"]),
                op_state=int(row["srv_op_state"]),
                admin_state=int(row["srv_admin_state"]),
                check_status=int(row["srv_check_status"]),
                check_result=int(row["srv_check_result"]),
                check_health=int(row["srv_check_health"]),
                check_state=int(row["srv_check_state"]),
            )
        )
    return states


class HAProxyRuntime:
    """HAProxy's runtime API on the Unix socket at ``path``."""

    def __init__(self, path: Path | str, timeout: float = 2.0):
        self.path = Path(path)
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"<HAProxyRuntime {self.path}>"

    def command(self, line: str) -> str:
        """Send one command and return HAProxy's whole answer (it closes the connection)."""
        if "\n" in line or ";" in line:
            raise ValueError(f"one command at a time, without ';' or a newline: {line!r}")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(self.timeout)
            sock.connect(str(self.path))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")

    def _ok(self, line: str, *, expect: str = "") -> str:
        """Run a command whose success answer is ``expect`` (empty for most); raise otherwise."""
        answer = self.command(line).strip()
        if answer != expect:
            raise HAProxyCommandError(f"HAProxy refused {line!r}: {answer or '(no answer)'}")
        return answer

    # -- reading -----------------------------------------------------------------------------
    def servers(self, backend: str | None = None) -> list[ServerState]:
        """``show servers state [<backend>]``, one :class:`ServerState` per server."""
        line = "show servers state" + (f" {backend}" if backend else "")
        answer = self.command(line)
        if not answer.lstrip().startswith("1"):
            raise HAProxyCommandError(f"HAProxy refused {line!r}: {answer.strip()}")
        return _server_states(answer)

    def server(self, backend: str, server: str) -> ServerState:
        for state in self.servers(backend):
            if state.server == server:
                return state
        raise HAProxyCommandError(f"no server {server!r} in backend {backend!r}")

    def stats(self) -> list[dict[str, str]]:
        """``show stat``: one row per frontend, backend and server (``pxname``, ``svname``,
        ``status``, ``stot`` sessions, ``hrsp_5xx``, ``wretr`` retries, ``wredis``
        redispatches, ...), as strings."""
        text = self.command("show stat")
        if not text.startswith("# "):
            raise HAProxyCommandError(f"HAProxy refused 'show stat': {text.strip()}")
        return list(csv.DictReader(io.StringIO(text[2:])))

    def info(self) -> dict[str, str]:
        """``show info``: name, version, pid, uptime, connection counters."""
        text = self.command("show info")
        return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)

    # -- changing ----------------------------------------------------------------------------
    def add_server(
        self,
        backend: str,
        server: str,
        addr: str,
        port: int,
        *,
        check: bool = True,
        inter_ms: int = 200,
        fall: int = 2,
        rise: int = 1,
        enable: bool = True,
    ) -> None:
        """``add server``, then (with ``enable``) ``enable health`` and ``enable server``.

        A dynamic server takes no ``default-server`` settings, so its check is given here. It
        is UP as soon as it is enabled, before a first check: add an instance that answers.
        """
        args = f"{addr}:{int(port)}"
        if check:
            args += f" check inter {int(inter_ms)}ms fall {int(fall)} rise {int(rise)}"
        self._ok(f"add server {backend}/{server} {args}", expect="New server registered.")
        if enable:
            if check:
                self.enable_health(backend, server)
            self.enable_server(backend, server)

    def del_server(self, backend: str, server: str) -> None:
        """``disable server`` then ``del server`` (refused while it has connections)."""
        self.disable_server(backend, server)
        self._ok(f"del server {backend}/{server}", expect="Server deleted.")

    def enable_server(self, backend: str, server: str) -> None:
        """``enable server``: out of maintenance (and its checks on again)."""
        self._ok(f"enable server {backend}/{server}")

    def disable_server(self, backend: str, server: str) -> None:
        """``disable server``: into maintenance, no traffic and no checks."""
        self._ok(f"disable server {backend}/{server}")

    def enable_health(self, backend: str, server: str) -> None:
        self._ok(f"enable health {backend}/{server}")

    def disable_health(self, backend: str, server: str) -> None:
        """``disable health``: checks stop and the server counts as UP."""
        self._ok(f"disable health {backend}/{server}")

    def set_server_state(self, backend: str, server: str, state: str) -> None:
        """``set server <b>/<s> state ready|drain|maint``."""
        if state not in SERVER_STATES:
            raise ValueError(f"state must be one of {SERVER_STATES}, not {state!r}")
        self._ok(f"set server {backend}/{server} state {state}")

    def set_server_health(self, backend: str, server: str, health: str) -> None:
        """``set server <b>/<s> health up|stopping|down`` (until the next check says else)."""
        if health not in HEALTH_STATES:
            raise ValueError(f"health must be one of {HEALTH_STATES}, not {health!r}")
        self._ok(f"set server {backend}/{server} health {health}")

    def wait_status(self, backend: str, server: str, status: str, timeout: float = 10.0) -> float:
        """Wait until the server's :attr:`ServerState.status` is ``status``; the seconds it
        took, or TimeoutError with the last state seen."""
        started = time.monotonic()
        while True:
            state = self.server(backend, server)
            if state.status == status:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise TimeoutError(
                    f"{backend}/{server} is {state.status}, not {status}, after {timeout:g} s"
                )
            time.sleep(0.05)
