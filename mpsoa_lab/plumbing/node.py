"""RabbitMQ nodes started from the installed ``rabbitmq-server``, without root.

Each node gets its own directory (config, data, logs), its own ports (AMQP, management HTTP,
Erlang distribution) reserved on the machine-wide allocator, and its own node name, with the
management and event exchange plugins on. Nodes of one lab share an ``epmd`` on a port of the lab's and one Erlang
cookie, so they can be clustered. Both run on the lab's one component life cycle
(:mod:`mpsoa_lab.plumbing.component`).

Every node runs with what RabbitMQ 4.3 denies by default denied already (:data:`DENIED_AS_IN_4_3`):
what the lab does on a 4.0 node therefore holds on 4.3 too. 3.x nodes do not know the setting
and ignore it.

A node runs in a process group of its own; :meth:`RabbitMQNode.stop` shuts it down gracefully
(SIGTERM to the Erlang VM, which RabbitMQ handles as ``rabbitmqctl stop``),
:meth:`RabbitMQNode.kill` sends SIGKILL to the whole group, as a crash would.
"""

from __future__ import annotations

import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path

import psutil

from .component import DIST_PORTS, SERVICE_PORTS, Component, process_gone
from .errors import NodeStartError
from .install import find_epmd, find_rabbitmq_server
from .logs import log_excerpt
from .ports import PortAllocator
from .processes import ManagedProcess, clean_env

__all__ = ["RabbitMQNode", "Epmd", "free_port", "ensure_cookie", "log_excerpt", "DENIED_AS_IN_4_3"]

GUEST = ("guest", "guest")
#: The deprecated features RabbitMQ 4.3 denies by default and 4.0 permits with a warning in its
#: log (RabbitMQ's list of deprecated features): queues that are neither durable nor exclusive,
#: and ``basic.qos`` with ``global=true``. Each lab node denies them as 4.3 does, in its
#: ``advanced.config`` (``permit_deprecated_features`` of the ``rabbit`` application).
DENIED_AS_IN_4_3 = ("transient_nonexcl_queues", "global_qos")
#: Erlang's flag that binds the distribution listener to 127.0.0.1 (not every interface).
LOOPBACK_DIST = "-kernel inet_dist_use_interface {127,0,0,1}"


def free_port(low: int = SERVICE_PORTS[0], high: int = SERVICE_PORTS[1]) -> int:
    """A TCP port reserved for the calling process on the machine-wide allocator (for a program
    the lab does not run as a component, e.g. a test's listener)."""
    return PortAllocator().reserve(1, low=low, high=high)[0]


def ensure_cookie(erlang_home: Path) -> Path:
    """One Erlang cookie for the lab's nodes and CLI calls, written before any node starts."""
    erlang_home.mkdir(parents=True, exist_ok=True)
    cookie = erlang_home / ".erlang.cookie"
    if not cookie.exists():
        cookie.write_text("".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(20)))
        cookie.chmod(0o400)
    return cookie


class Epmd(Component):
    """The lab's own Erlang port mapper, in the foreground so the lab can stop it."""

    TYPE = "epmd"
    PORTS = {"port": SERVICE_PORTS}
    STOP_ORDER = 9
    STOP_TIMEOUT = 5.0
    START_ERROR = NodeStartError

    def __init__(
        self,
        port: int | None,
        base_dir: Path,
        process: ManagedProcess | None = None,
        mark: str | None = None,
        name: str = "epmd",
    ):
        super().__init__(
            name, base_dir, ports={"port": port} if port else None, process=process, mark=mark
        )

    @property
    def port(self) -> int:
        return self.ports["port"]

    @property
    def stdout_log(self) -> Path:
        return self.base_dir / "epmd.log"

    def argv(self) -> list[str]:
        return [find_epmd(), "-port", str(self.port), "-address", "127.0.0.1"]

    def probe(self) -> None:
        socket.create_connection(("127.0.0.1", self.port), 0.5).close()

    def port_clash(self, output: str) -> bool:
        return True  # epmd exits at once, silently (status 0), when its port is taken

    def start(self, timeout: float = 10.0, wait: bool = True) -> Epmd:
        super().start(timeout, wait)
        return self


class RabbitMQNode(Component):
    """One RabbitMQ node of the lab: start, wait until it accepts AMQP, stop, restart, kill."""

    TYPE = "rabbitmq"
    PORTS = {"amqp": SERVICE_PORTS, "management": SERVICE_PORTS, "dist": DIST_PORTS}
    FIELDS = ("epmd_port", "erlang_home", "nodename", "server")
    STOP_ORDER = 5
    START_ERROR = NodeStartError
    PORT_RETRIES = 3
    # A node of one process's own that it killed or stopped is still its node (to start again).
    KEEP_WHEN_STOPPED = True

    def __init__(
        self,
        name: str,
        base_dir: Path,
        *,
        epmd_port: int,
        erlang_home: Path,
        nodename: str | None = None,
        amqp_port: int | None = None,
        management_port: int | None = None,
        dist_port: int | None = None,
        server: str | None = None,
        process: ManagedProcess | None = None,
        owner: int | None = None,
        mark: str | None = None,
    ):
        given = {"amqp": amqp_port, "management": management_port, "dist": dist_port}
        super().__init__(
            name,
            base_dir,
            ports={k: v for k, v in given.items() if v},
            process=process,
            owner=owner,
            mark=mark,
        )
        self.epmd_port = epmd_port
        self.erlang_home = Path(erlang_home)
        self.nodename = nodename or f"{name}@localhost"
        self.server = server

    def _restored(self) -> None:
        self.erlang_home = Path(self.erlang_home)

    @property
    def key(self) -> str:
        return f"{self.TYPE}:{self.nodename}"

    # -- addresses ---------------------------------------------------------------------------
    @property
    def amqp_port(self) -> int:
        return self.ports["amqp"]

    @property
    def management_port(self) -> int:
        return self.ports["management"]

    @property
    def dist_port(self) -> int:
        return self.ports["dist"]

    #: The address the node listens on (AMQP, HTTP, distribution) and is reached at.
    address = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"amqp://{GUEST[0]}:{GUEST[1]}@{self.address}:{self.amqp_port}//"

    @property
    def management_url(self) -> str:
        return f"http://{GUEST[0]}:{GUEST[1]}@{self.address}:{self.management_port}/"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "log" / f"{self.nodename}.log"

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"<RabbitMQNode {self.nodename} amqp={self.amqp_port} mgmt={self.management_port} {state}>"

    # -- environment -------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        """The environment ``rabbitmq-server`` and ``rabbitmqctl`` need for this node."""
        d = self.base_dir
        env = clean_env(self.mark)
        env.update(
            HOME=str(self.erlang_home),
            RABBITMQ_CONF_ENV_FILE=str(d / "rabbitmq-env.conf"),
            RABBITMQ_CONFIG_FILE=str(d / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(d / "advanced.config"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(d / "enabled_plugins"),
            RABBITMQ_MNESIA_BASE=str(d / "mnesia"),
            RABBITMQ_LOG_BASE=str(d / "log"),
            RABBITMQ_PID_FILE=str(d / "rabbitmq.pid"),
            RABBITMQ_NODENAME=self.nodename,
            RABBITMQ_USE_LONGNAME="false",
            RABBITMQ_DIST_PORT=str(self.dist_port),
            ERL_EPMD_PORT=str(self.epmd_port),
            ERL_EPMD_ADDRESS="127.0.0.1",
            # Never let a node start a daemon epmd of its own: it would outlive the lab. The
            # Erlang distribution (node and CLI) listens on 127.0.0.1 only, as everything the lab
            # starts: by default it listens on every interface, guarded only by the cookie.
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=f"-start_epmd false {LOOPBACK_DIST}",
            RABBITMQ_CTL_ERL_ARGS=f"-start_epmd false {LOOPBACK_DIST}",
        )
        return env

    def environment(self) -> dict[str, str]:
        return self.env()

    def exec_prefix(self) -> list[str]:
        """What runs the node's programs where the node is (nothing: on this machine)."""
        return []

    def argv(self) -> list[str]:
        return [*self.exec_prefix(), find_rabbitmq_server(self.server)]

    def write_config(self) -> None:
        ensure_cookie(self.erlang_home)
        d = self.base_dir
        for sub in ("mnesia", "log"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        (d / "rabbitmq-env.conf").write_text("# the lab passes every setting in the environment\n")
        # The event exchange: a notebook counts what the broker created in its own vhost.
        (d / "enabled_plugins").write_text("[rabbitmq_management,rabbitmq_event_exchange].\n")
        (d / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = {self.address}:{self.amqp_port}\n"
            f"management.tcp.ip = {self.address}\n"
            f"management.tcp.port = {self.management_port}\n"
            # Queue depths in the management API refresh every second instead of every five:
            # the interval alone is not enough, the agent collects at the smallest interval of
            # its sample retention policies (5 s by default), so those come down to 1 s too.
            "collect_statistics_interval = 1000\n"
            "management.sample_retention_policies.global.minute = 1\n"
            "management.sample_retention_policies.global.hour = 60\n"
            "management.sample_retention_policies.basic.minute = 1\n"
            "management.sample_retention_policies.basic.hour = 60\n"
            "management.sample_retention_policies.detailed.10 = 1\n"
            "log.console = false\n"
            "log.file.level = info\n"
        )
        denied = ", ".join(f"{feature} => false" for feature in DENIED_AS_IN_4_3)
        (d / "advanced.config").write_text(
            f"[{{rabbit, [{{permit_deprecated_features, #{{{denied}}}}}]}}].\n"
        )

    # -- life cycle --------------------------------------------------------------------------
    def start(self, timeout: float = 90.0, wait: bool = True) -> RabbitMQNode:
        """Start the node (keeping any data it already has) and wait until it accepts AMQP.

        Refused while its epmd does not answer: Erlang would then start an ``epmd -daemon`` of
        its own on that port, a process that no life cycle knows and that outlives the lab."""
        find_rabbitmq_server(self.server)  # a clear error before anything is written
        if not self.is_running():
            self._check_epmd()
        super().start(timeout, wait)
        return self

    def _check_epmd(self) -> None:
        import socket

        try:
            socket.create_connection((self.address, self.epmd_port), timeout=2).close()
        except OSError:
            raise NodeStartError(
                f"RabbitMQ node {self.name}: its epmd ({self.address}:{self.epmd_port}) does not "
                "answer, so the node is not started (Erlang would start a port mapper of its own "
                "that nothing stops). Stop the lab (python -m mpsoa_lab down) and start it again."
            ) from None

    def probe(self) -> None:
        """Ready: the node accepts an AMQP connection and its management API answers.

        Enough for a node on its own: a vhost created the moment this passes is created and
        running at once (HTTP 201 in 0.02-0.035 s, 6 of 6 starts of RabbitMQ 3.10 on the 2-core
        machine with two notebooks running beside). A *cluster* member needs more: a new vhost
        is started on the members that have booted only, so :class:`~.cluster.ClusterNode`
        also waits for ``rabbitmqctl await_startup``. The log's "Server startup complete" line
        is no cheaper substitute: RabbitMQ writes it after its listeners start but before it
        marks itself booted (``rabbit:do_run_postlaunch_phase``); here it came 0.04-1.4 s
        before this probe passed. ``await_startup`` after the probe took 0.9-2.0 s, most of it
        the CLI's own Erlang VM starting.
        """
        import requests
        from kombu import Connection

        with Connection(self.url, connect_timeout=1) as conn:
            conn.connect()
        with requests.Session() as http:
            http.trust_env = False  # a proxy from the environment never knows the way to loopback
            resp = http.get(
                f"http://{self.address}:{self.management_port}/api/overview", auth=GUEST, timeout=1
            )
            resp.raise_for_status()

    def start_hint(self) -> str:
        return "Raise MPSOA_START_TIMEOUT on a slow machine."

    def log_paths(self) -> list[Path]:
        return [self.stdout_log, self.log_file]

    def _beam(self) -> psutil.Process | None:
        proc = self.process.process() if self.process else None
        if proc is None:
            return None
        if proc.name().startswith("beam"):
            return proc
        for child in proc.children(recursive=True):
            if child.name().startswith("beam"):
                return child
        return None

    def request_stop(self) -> None:
        """SIGTERM to the Erlang VM: RabbitMQ's graceful shutdown."""
        beam = self._beam()
        if beam is not None:
            beam.send_signal(signal.SIGTERM)
        elif self.process is not None:
            self.process.signal_group(signal.SIGTERM)

    def stop(self, timeout: float | None = 30.0, *, keep_ports: bool = True) -> None:
        """Graceful shutdown, as ``rabbitmqctl stop`` or a service manager would do it.

        With ``timeout=None`` only ask the node to stop, and return at once.
        """
        if timeout is None:
            if self.is_running():
                self.request_stop()
            return
        super().stop(timeout, keep_ports=keep_ports)

    def kill(self, *, keep_ports: bool = True) -> None:
        """SIGKILL to the node's whole process group: a crash, nothing flushed, nothing said.

        Returns once the Erlang VM itself is gone (or a zombie), not only the script that
        started it: the script dies at once, a busy VM can take a moment longer, and a node
        started again before that would find its ports still taken.
        """
        beam = self._beam() if self.process is not None else None
        super().kill(keep_ports=keep_ports)
        deadline = time.monotonic() + 10.0
        while beam is not None and not process_gone(beam) and time.monotonic() < deadline:
            time.sleep(0.05)

    def restart(self, timeout: float = 90.0) -> RabbitMQNode:
        """Stop gracefully and start again on the same ports, keeping the node's data."""
        self.stop()
        return self.start(timeout)

    # -- CLI ---------------------------------------------------------------------------------
    def ctl(self, *args: str, tool: str = "rabbitmqctl", timeout: float = 60.0) -> str:
        """Run ``rabbitmqctl`` (or another CLI tool) against this node and return its output."""
        exe = str(Path(find_rabbitmq_server(self.server)).with_name(tool))
        result = subprocess.run(
            [*self.exec_prefix(), exe, "-n", self.nodename, *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.base_dir,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{tool} {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result.stdout

    def join_cluster(self, other: RabbitMQNode) -> None:
        """Make this node a member of ``other``'s cluster (both must share epmd and cookie)."""
        self.ctl("stop_app")
        self.ctl("reset")
        self.ctl("join_cluster", other.nodename)
        self.ctl("start_app")
        self.wait_ready()
