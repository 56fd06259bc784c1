"""HAProxy as a lab component: one frontend per service, in HTTP mode (the REST alternative's
load balancer) or in TCP mode (one AMQP address in front of a RabbitMQ cluster).

:class:`HAProxy` runs the installed ``haproxy`` in the foreground (``haproxy -db -f <cfg>``), as
the current user, with a config generated under its own directory (:func:`haproxy_config`): no
root, no daemon, no pid file, no chroot, no system log. For each service it has a frontend on a
port reserved on the machine-wide allocator (127.0.0.1 only) and a backend of that service's
instances, with

* ``balance roundrobin`` or ``balance leastconn`` (both let servers be added at run time);
* active health checks, ``option httpchk GET /health`` and ``http-check expect status 200``,
  every ``inter`` milliseconds, a server DOWN after ``fall`` failures, UP after ``rise``;
* ``retries`` and ``option redispatch`` (a request whose connection failed is tried again,
  the last time on another server), and ``retry-on`` when given (HAProxy's default is
  ``conn-failure`` only: a request a server received is never sent twice);
* keep-alive on both sides (``option http-keep-alive``; HAProxy reuses idle server
  connections by default).

In TCP mode (``BalancerOptions(mode="tcp")``) it relays connections, not requests: the checks
only connect (a node whose AMQP port refuses is DOWN), ``on-marked-down shutdown-sessions``
closes the connections of a server marked DOWN so that their clients reconnect through the
frontend to a live one, and a server may be a ``backup`` (used only when no other is UP).

Its runtime API listens on a Unix socket in its directory (``stats socket <path> mode 600 level
admin``); :attr:`HAProxy.runtime` is a client for it
(:class:`~mpsoa_lab.plumbing.haproxy_runtime.HAProxyRuntime`). It is ready when that socket
answers and every frontend accepts a connection. SIGUSR1 stops it gracefully (finish the
requests in flight, ``hard-stop-after`` bounds that), as the component's ``stop()`` does.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, NamedTuple

from .component import SERVICE_PORTS, Component, NotReady
from .errors import HAProxyNotInstalled
from .haproxy_runtime import HAProxyRuntime

__all__ = [
    "HAProxy",
    "BalancerOptions",
    "Server",
    "BALANCE_ALGORITHMS",
    "MODES",
    "find_haproxy",
    "haproxy_install_hint",
    "haproxy_config",
    "check_config",
]

#: The algorithms the lab offers: both are dynamic, so ``add server`` works with them.
BALANCE_ALGORITHMS = ("roundrobin", "leastconn")
#: ``http``: requests to REST instances; ``tcp``: long-lived connections, e.g. AMQP.
MODES = ("http", "tcp")
_SEARCH_DIRS = ("/usr/sbin", "/usr/local/sbin", "/opt/homebrew/sbin", "/opt/homebrew/bin")
#: The longest Unix socket path (sun_path is 108 bytes on Linux, 104 on macOS, with its NUL).
_MAX_SOCKET_PATH = 103


def haproxy_install_hint() -> str:
    """What to run to get HAProxy on this OS."""
    if sys.platform == "darwin":
        how = "brew install haproxy"
    elif shutil.which("apt-get"):
        how = "sudo apt-get update && sudo apt-get install -y haproxy"
    else:
        how = "install HAProxy 2.4 or newer from your OS packages"
    return f"Install it with:  {how}  (or run `make setup`, which installs it where it may)."


def find_haproxy(explicit: str | None = None) -> str:
    """The ``haproxy`` program (``MPSOA_HAPROXY`` or PATH and the sbin folders), or
    :class:`~mpsoa_lab.plumbing.errors.HAProxyNotInstalled` saying how to install it."""
    explicit = explicit or os.environ.get("MPSOA_HAPROXY") or None
    if explicit:
        if os.access(explicit, os.X_OK):
            return explicit
        raise HAProxyNotInstalled(
            f"MPSOA_HAPROXY={explicit!r} is not an executable file.\n" + haproxy_install_hint()
        )
    found = shutil.which(
        "haproxy", path=os.pathsep.join([os.environ.get("PATH", ""), *_SEARCH_DIRS])
    )
    if not found:
        raise HAProxyNotInstalled(
            "haproxy is not installed on this machine (looked in PATH and "
            f"{', '.join(_SEARCH_DIRS)}); the REST alternative needs it.\n" + haproxy_install_hint()
        )
    return found


class Server(NamedTuple):
    """One server of a backend: a REST instance's (or a broker node's) name and address; a
    ``backup`` server gets connections only while no other server of its backend is UP."""

    name: str
    addr: str
    port: int
    backup: bool = False


@dataclass(frozen=True)
class BalancerOptions:
    """How HAProxy balances and checks (times in milliseconds unless named otherwise)."""

    mode: str = "http"
    balance: str = "roundrobin"
    check_inter_ms: int = 200
    fall: int = 2
    rise: int = 1
    retries: int = 2
    redispatch: bool = True
    retry_on: str | None = None
    timeout_connect_ms: int = 500
    timeout_client_ms: int = 30_000
    timeout_server_ms: int = 30_000
    keep_alive_ms: int = 30_000
    health_path: str = "/health"
    nbthread: int = 1
    maxconn: int = 2000
    hard_stop_after_ms: int = 3000

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.balance not in BALANCE_ALGORITHMS:
            raise ValueError(
                f"balance must be one of {', '.join(BALANCE_ALGORITHMS)}, not {self.balance!r}"
            )
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int) and not isinstance(value, bool) and value < 0:
                raise ValueError(f"{f.name} must be >= 0, not {value}")
        for name in ("check_inter_ms", "fall", "rise", "nbthread", "maxconn"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        if not self.health_path.startswith("/") or any(c.isspace() for c in self.health_path):
            raise ValueError(f"health_path must be a path without spaces: {self.health_path!r}")
        if self.retry_on is not None and not self.retry_on.strip():
            raise ValueError("retry_on is None (HAProxy's default) or a list of keywords")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> BalancerOptions:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in known})


def _ms(value: int) -> str:
    return f"{int(value)}ms"


def _check_args(options: BalancerOptions) -> str:
    return f"check inter {options.check_inter_ms}ms fall {options.fall} rise {options.rise}"


def haproxy_config(
    frontends: Mapping[str, int],
    servers: Mapping[str, Iterable[Server]],
    socket_path: Path | str,
    options: BalancerOptions | None = None,
    *,
    title: str = "",
) -> str:
    """The config text: a frontend per service on ``127.0.0.1:<frontends[service]>``, its
    backend with ``servers[service]``, the runtime API on ``socket_path``."""
    o = options or BalancerOptions()
    lines = [
        f"# Generated by mpsoa-lab{' for ' + title if title else ''}: rewritten at every start.",
        "global",
        f"    stats socket {socket_path} mode 600 level admin",
        "    stats timeout 10s",
        f"    nbthread {o.nbthread}",
        f"    maxconn {o.maxconn}",
        f"    hard-stop-after {_ms(o.hard_stop_after_ms)}",
        "",
        "defaults",
        f"    mode {o.mode}",
        f"    timeout connect {_ms(o.timeout_connect_ms)}",
        f"    timeout client {_ms(o.timeout_client_ms)}",
        f"    timeout server {_ms(o.timeout_server_ms)}",
    ]
    if o.mode == "http":
        lines += [
            f"    timeout http-keep-alive {_ms(o.keep_alive_ms)}",
            "    option http-keep-alive",
        ]
    lines += [
        f"    retries {o.retries}",
        "    option redispatch" if o.redispatch else "    no option redispatch",
    ]
    if o.retry_on:
        lines.append(f"    retry-on {o.retry_on}")
    for service, port in frontends.items():
        lines += [
            "",
            f"frontend {service}",
            f"    bind 127.0.0.1:{int(port)}",
            f"    default_backend {service}",
            "",
            f"backend {service}",
            f"    balance {o.balance}",
        ]
        if o.mode == "http":
            lines += [
                f"    option httpchk GET {o.health_path}",
                "    http-check expect status 200",
                f"    default-server {_check_args(o)}",
            ]
        else:  # a connect check; a server marked DOWN loses its connections at once
            lines.append(f"    default-server {_check_args(o)} on-marked-down shutdown-sessions")
        lines += [
            f"    server {s.name} {s.addr}:{int(s.port)}{' backup' if s.backup else ''}"
            for s in servers.get(service, ())
        ]
    return "\n".join(lines) + "\n"


def check_config(path: Path | str, executable: str | None = None) -> tuple[bool, str]:
    """``haproxy -c -f <path>``: whether HAProxy accepts the config, and what it said."""
    done = subprocess.run(
        [executable or find_haproxy(), "-c", "-f", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return done.returncode == 0, (done.stdout + done.stderr).strip()


class HAProxy(Component):
    """One HAProxy process: a frontend per service, each balancing that service's instances."""

    TYPE = "haproxy"
    FIELDS = ("servers", "options", "executable")
    STOP_ORDER = -1  # before the instances behind it: no check fails while they stop
    STOP_TIMEOUT = 10.0

    def __init__(
        self,
        name: str,
        base_dir: Path | str,
        servers: Mapping[str, Iterable[Server | tuple[str, str, int]]],
        *,
        options: BalancerOptions | None = None,
        executable: str | None = None,
        owner: int | None = None,
        mark: str | None = None,
    ):
        """``servers`` maps each service (a frontend, and its backend) to its servers; a
        service may start with none and get them from :meth:`add_server`."""
        executable = executable or find_haproxy()  # before any port is reserved
        socket_path = Path(base_dir) / "admin.sock"
        if len(str(socket_path)) > _MAX_SOCKET_PATH:
            raise ValueError(
                f"HAProxy's runtime socket path would be too long for a Unix socket "
                f"({len(str(socket_path))} > {_MAX_SOCKET_PATH} characters): {socket_path}. "
                "Use a shorter MPSOA_LAB_HOME."
            )
        self.PORTS = {service: SERVICE_PORTS for service in servers}  # type: ignore[misc]
        super().__init__(name, base_dir, owner=owner, mark=mark)
        self.servers = {s: [Server(*x) for x in members] for s, members in servers.items()}
        self.options = options or BalancerOptions()
        self.executable = executable

    # -- addresses ---------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.base_dir / "haproxy.cfg"

    @property
    def socket_path(self) -> Path:
        return self.base_dir / "admin.sock"

    @property
    def runtime(self) -> HAProxyRuntime:
        """A client for this HAProxy's runtime API."""
        return HAProxyRuntime(self.socket_path)

    def url(self, service: str) -> str:
        """The base URL of a service's frontend, e.g. ``http://127.0.0.1:22345`` (HTTP mode)."""
        return f"http://127.0.0.1:{self.ports[service]}"

    def address(self, service: str) -> tuple[str, int]:
        """A frontend's host and port, e.g. ``("127.0.0.1", 22345)``, in either mode."""
        return "127.0.0.1", self.ports[service]

    # -- the component -----------------------------------------------------------------------
    def config_text(self) -> str:
        return haproxy_config(
            {service: self.ports[service] for service in self.servers},
            self.servers,
            self.socket_path,
            self.options,
            title=self.name,
        )

    def write_config(self) -> None:
        super().write_config()
        self.config_path.write_text(self.config_text())

    def argv(self) -> list[str]:
        return [self.executable, "-db", "-f", str(self.config_path)]

    def probe(self) -> None:
        info = self.runtime.info()
        if info.get("Name") != "HAProxy":
            raise NotReady(f"the runtime API answered {info!r}")
        for service in self.servers:
            with socket.create_connection(("127.0.0.1", self.ports[service]), timeout=1.0):
                pass

    def request_stop(self) -> None:
        """SIGUSR1, HAProxy's soft stop: stop listening, finish the requests in flight."""
        if self.process is not None:
            self.process.send(signal.SIGUSR1)

    def start_hint(self) -> str:
        return f"Check the config with: {self.executable} -c -f {self.config_path}"

    # -- servers at run time -----------------------------------------------------------------
    def add_server(self, service: str, server: Server | tuple[str, str, int]) -> None:
        """Add a server to a running backend through the runtime API (``add server``,
        ``enable health``, ``enable server``), with this balancer's checks, and keep it in
        the config of the next start."""
        server = Server(*server)
        if server.backup:
            raise ValueError(
                f"{server.name}: a backup server is set in the config at start, not added at run time"
            )
        if service not in self.servers:
            raise KeyError(f"no backend {service!r}; backends: {', '.join(self.servers)}")
        o = self.options
        self.runtime.add_server(
            service,
            server.name,
            server.addr,
            server.port,
            inter_ms=o.check_inter_ms,
            fall=o.fall,
            rise=o.rise,
        )
        self.servers[service].append(server)

    def remove_server(self, service: str, name: str) -> None:
        """Put a server in maintenance and delete it (``del server``), here and in the config."""
        self.runtime.del_server(service, name)
        self.servers[service] = [s for s in self.servers[service] if s.name != name]

    # -- the state file ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["servers"] = {s: [list(m) for m in members] for s, members in self.servers.items()}
        data["options"] = asdict(self.options)
        return data

    def _restored(self) -> None:
        self.servers = {
            s: [Server(*m) for m in members] for s, members in (self.servers or {}).items()
        }
        self.options = BalancerOptions.from_dict(self.options)  # type: ignore[arg-type]
        self.PORTS = {service: SERVICE_PORTS for service in self.servers}  # type: ignore[misc]
