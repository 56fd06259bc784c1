"""RabbitMQ nodes started from the installed ``rabbitmq-server``, without root.

Each node gets its own directory (config, data, logs), its own free ports (AMQP, management
HTTP, Erlang distribution) and its own node name, with the management plugin on. Nodes of one
lab share an ``epmd`` on a port of the lab's and one Erlang cookie, so they can be clustered.

A node runs in a process group of its own; :meth:`RabbitMQNode.stop` shuts it down gracefully
(SIGTERM to the Erlang VM, which RabbitMQ handles as ``rabbitmqctl stop``),
:meth:`RabbitMQNode.kill` sends SIGKILL to the whole group, as a crash would.
"""
from __future__ import annotations

import re
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil

from .errors import NodeStartError
from .install import find_epmd, find_rabbitmq_server
from .processes import ManagedProcess, clean_env, spawn

__all__ = ["RabbitMQNode", "Epmd", "free_port", "ensure_cookie", "log_excerpt"]

GUEST = ("guest", "guest")

#: Words that mark a line of a node's console output or log as an error worth showing first.
ERROR_LINE = re.compile(r"error|eaddrinuse|crash|fail|fatal|exception|could_not|terminating",
                        re.IGNORECASE)


def log_excerpt(text: str, errors: int = 10, tail: int = 10, width: int = 300,
                first_line: int = 1) -> str:
    """The first ``errors`` error-looking lines of a log and its last ``tail`` lines, in order.

    A node that fails to boot (a port already taken: ``eaddrinuse``) says why early on, then
    logs a long shutdown; the tail alone shows only the shutdown. Each line carries its number
    (``first_line`` is the number of the first line of ``text`` in its file), a gap is shown as
    ``...``, and a line longer than ``width`` keeps its beginning and its end (where Erlang
    puts the reason).
    """
    lines = text.splitlines()
    picked = [i for i, line in enumerate(lines) if ERROR_LINE.search(line)][:errors]
    shown = sorted(set(picked) | set(range(max(0, len(lines) - tail), len(lines))))
    out, previous = [], -1
    for i in shown:
        if i > previous + 1:
            out.append("     ...")
        line = lines[i]
        if len(line) > width:
            keep = max(0, width - 5) // 2
            line = f"{line[:keep]} ... {line[-keep:]}" if keep else line[:width]
        out.append(f"{i + first_line:>5}: {line}")
        previous = i
    return "\n".join(out)


def _gone(proc: psutil.Process) -> bool:
    """Whether a process has exited (a zombie has: only its exit status is left)."""
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def free_port(low: int = 20000, high: int = 32000, taken: set[int] | None = None) -> int:
    """A TCP port free on 127.0.0.1, below Linux's ephemeral range (32768 and up), so that no
    outgoing connection can take it between this check and the node's bind; RabbitMQ's CLI
    port (+10000) fits too."""
    taken = taken or set()
    for _ in range(200):
        port = secrets.randbelow(high - low) + low
        if port in taken:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        taken.add(port)
        return port
    raise RuntimeError(f"no free TCP port found between {low} and {high}")


def ensure_cookie(erlang_home: Path) -> Path:
    """One Erlang cookie for the lab's nodes and CLI calls, written before any node starts."""
    erlang_home.mkdir(parents=True, exist_ok=True)
    cookie = erlang_home / ".erlang.cookie"
    if not cookie.exists():
        cookie.write_text("".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(20)))
        cookie.chmod(0o400)
    return cookie


class Epmd:
    """The lab's own Erlang port mapper, in the foreground so the lab can stop it."""

    def __init__(self, port: int, base_dir: Path, process: ManagedProcess | None = None,
                 mark: str | None = None):
        self.port, self.base_dir, self.process = port, Path(base_dir), process
        self.mark = mark if mark is not None else str(base_dir)

    def start(self) -> Epmd:
        proc = spawn([find_epmd(), "-port", str(self.port), "-address", "127.0.0.1"],
                      clean_env(self.mark), self.base_dir / "epmd.log", self.base_dir)
        self.process = ManagedProcess.from_popen("epmd", proc)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise NodeStartError(f"epmd exited at start (port {self.port}); see {self.base_dir / 'epmd.log'}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise NodeStartError(f"epmd did not listen on port {self.port} within 10 s")

    def stop(self) -> None:
        if self.process:
            self.process.terminate(5.0)

    def to_dict(self) -> dict[str, Any]:
        return {"port": self.port, "base_dir": str(self.base_dir), "mark": self.mark,
                "process": self.process.to_dict() if self.process else None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Epmd:
        proc = data.get("process")
        return cls(data["port"], Path(data["base_dir"]), ManagedProcess.from_dict(proc) if proc else None,
                   data.get("mark"))


class RabbitMQNode:
    """One RabbitMQ node of the lab: start, wait until it accepts AMQP, stop, restart, kill."""

    def __init__(self, name: str, base_dir: Path, *, epmd_port: int, erlang_home: Path,
                 nodename: str | None = None, amqp_port: int | None = None,
                 management_port: int | None = None, dist_port: int | None = None,
                 server: str | None = None, process: ManagedProcess | None = None,
                 mark: str | None = None):
        taken: set[int] = set()
        self.mark = mark if mark is not None else str(base_dir)
        self.name = name
        self.base_dir = Path(base_dir)
        self.epmd_port = epmd_port
        self.erlang_home = Path(erlang_home)
        self.nodename = nodename or f"{name}@localhost"
        self.amqp_port = amqp_port or free_port(taken=taken)
        self.management_port = management_port or free_port(taken=taken)
        self.dist_port = dist_port or free_port(taken=taken)
        self.server = server
        self.process = process
        self._log_offsets: dict[Path, int] = {}  # log sizes when start() began

    # -- addresses ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"amqp://{GUEST[0]}:{GUEST[1]}@127.0.0.1:{self.amqp_port}//"

    @property
    def management_url(self) -> str:
        return f"http://{GUEST[0]}:{GUEST[1]}@127.0.0.1:{self.management_port}/"

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
            # Never let a node start a daemon epmd of its own: it would outlive the lab.
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-start_epmd false",
            RABBITMQ_CTL_ERL_ARGS="-start_epmd false",
        )
        return env

    def _write_config(self) -> None:
        d = self.base_dir
        for sub in ("mnesia", "log"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        (d / "rabbitmq-env.conf").write_text("# the lab passes every setting in the environment\n")
        (d / "enabled_plugins").write_text("[rabbitmq_management].\n")
        (d / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.amqp_port}\n"
            f"management.tcp.ip = 127.0.0.1\n"
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

    # -- life cycle --------------------------------------------------------------------------
    def is_running(self) -> bool:
        return self.process is not None and self.process.is_running()

    def start(self, timeout: float = 90.0, wait: bool = True) -> RabbitMQNode:
        """Start the node (keeping any data it already has) and wait until it accepts AMQP."""
        if self.is_running():
            return self
        server = find_rabbitmq_server(self.server)
        ensure_cookie(self.erlang_home)
        self._write_config()
        # Both files keep earlier runs of this node: an error report reads from here on.
        self._log_offsets = {path: path.stat().st_size if path.exists() else 0
                             for path in self._log_paths()}
        proc = spawn([server], self.env(), self.base_dir / "stdout.log", self.base_dir)
        self.process = ManagedProcess.from_popen(f"rabbitmq {self.nodename}", proc)
        self._popen = proc
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Block until the node accepts an AMQP connection and its management API answers."""
        import requests
        from kombu import Connection

        deadline = time.monotonic() + timeout
        amqp_ok = False
        last_error: Exception | None = None
        with requests.Session() as http:
            http.trust_env = False  # a proxy from the environment never knows the way to 127.0.0.1
            while time.monotonic() < deadline:
                if not self.is_running():
                    raise NodeStartError(
                        f"RabbitMQ node {self.nodename} exited while starting.\n"
                        f"{self.start_report()}")
                try:
                    if not amqp_ok:
                        with Connection(self.url, connect_timeout=1) as conn:
                            conn.connect()
                        amqp_ok = True
                    resp = http.get(f"http://127.0.0.1:{self.management_port}/api/overview",
                                    auth=GUEST, timeout=1)
                    if resp.status_code == 200:
                        return
                except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
                    last_error = exc
                time.sleep(0.1)
        raise NodeStartError(
            f"RabbitMQ node {self.nodename} did not accept AMQP on port {self.amqp_port} "
            f"within {timeout:.0f} s (last error: {last_error}). Raise MPSOA_START_TIMEOUT on "
            f"a slow machine.\n{self.start_report()}")

    def _log_paths(self) -> tuple[Path, Path]:
        return self.base_dir / "stdout.log", self.log_file

    def start_report(self) -> str:
        """What the node's console output and log say since its last start: the first
        error-looking lines of each (the cause) and its last lines (how it ended)."""
        parts = []
        for path in self._log_paths():
            if not path.exists():
                continue
            data = path.read_bytes()
            offset = self._log_offsets.get(path, 0)
            offset = offset if offset <= len(data) else 0  # the file was cut since: all of it
            text = data[offset:].decode(errors="replace")
            if text.strip():
                since = " since this start" if offset else ""
                parts.append(f"First error lines and last lines of {path}{since}:\n"
                             + log_excerpt(text, first_line=data[:offset].count(b"\n") + 1))
        return "\n".join(parts) or f"(nothing logged in {self.base_dir})"

    def tail(self, lines: int = 20) -> str:
        """The last lines of the node's console output and log."""
        out = []
        for path in (self.base_dir / "stdout.log", self.log_file):
            if path.exists():
                out.extend(path.read_text(errors="replace").splitlines()[-lines:])
        return "\n".join(out[-lines:])

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

    def stop(self, timeout: float | None = 30.0) -> None:
        """Graceful shutdown, as ``rabbitmqctl stop`` or a service manager would do it.

        With ``timeout=None`` only ask the node to stop, and return at once.
        """
        if not self.is_running():
            return
        beam = self._beam()
        if beam is not None:
            beam.send_signal(signal.SIGTERM)
        else:
            self.process.signal_group(signal.SIGTERM)
        if timeout is not None and not self.process.wait_gone(timeout):
            self.kill()

    def kill(self) -> None:
        """SIGKILL to the node's whole process group: a crash, nothing flushed, nothing said.

        Returns once the Erlang VM itself is gone (or a zombie), not only the script that
        started it: the script dies at once, a busy VM can take a moment longer, and a node
        started again before that would find its ports still taken.
        """
        if self.process is None:
            return
        beam = self._beam()
        self.process.signal_group(signal.SIGKILL)
        self.process.wait_gone(10.0)
        deadline = time.monotonic() + 10.0
        while beam is not None and not _gone(beam) and time.monotonic() < deadline:
            time.sleep(0.05)

    def restart(self, timeout: float = 90.0) -> RabbitMQNode:
        """Stop gracefully and start again on the same ports, keeping the node's data."""
        self.stop()
        return self.start(timeout)

    # -- CLI ---------------------------------------------------------------------------------
    def ctl(self, *args: str, tool: str = "rabbitmqctl", timeout: float = 60.0) -> str:
        """Run ``rabbitmqctl`` (or another CLI tool) against this node and return its output."""
        exe = str(Path(find_rabbitmq_server(self.server)).with_name(tool))
        result = subprocess.run([exe, "-n", self.nodename, *args], env=self.env(),
                                capture_output=True, text=True, timeout=timeout, cwd=self.base_dir)
        if result.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)} failed ({result.returncode}):\n"
                               f"{result.stdout}\n{result.stderr}")
        return result.stdout

    def join_cluster(self, other: RabbitMQNode) -> None:
        """Make this node a member of ``other``'s cluster (both must share epmd and cookie)."""
        self.ctl("stop_app")
        self.ctl("reset")
        self.ctl("join_cluster", other.nodename)
        self.ctl("start_app")
        self.wait_ready()

    # -- persistence of the handle ----------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "base_dir": str(self.base_dir), "epmd_port": self.epmd_port,
            "erlang_home": str(self.erlang_home), "nodename": self.nodename,
            "amqp_port": self.amqp_port, "management_port": self.management_port,
            "dist_port": self.dist_port, "server": self.server, "mark": self.mark,
            "process": self.process.to_dict() if self.process else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RabbitMQNode:
        data = dict(data)
        proc = data.pop("process", None)
        return cls(data.pop("name"), Path(data.pop("base_dir")), epmd_port=data.pop("epmd_port"),
                   erlang_home=Path(data.pop("erlang_home")), **data,
                   process=ManagedProcess.from_dict(proc) if proc else None)
