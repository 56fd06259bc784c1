"""RabbitMQ nodes started from the installed ``rabbitmq-server``, without root.

Each node gets its own directory (config, data, logs), its own free ports (AMQP, management
HTTP, Erlang distribution) and its own node name, with the management plugin on. Nodes of one
lab share an ``epmd`` on a port of the lab's and one Erlang cookie, so they can be clustered.

A node runs in a process group of its own; :meth:`RabbitMQNode.stop` shuts it down gracefully
(SIGTERM to the Erlang VM, which RabbitMQ handles as ``rabbitmqctl stop``),
:meth:`RabbitMQNode.kill` sends SIGKILL to the whole group, as a crash would.
"""
from __future__ import annotations

import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from .errors import NodeStartError, RabbitMQNotInstalled

__all__ = [
    "RabbitMQNode",
    "Epmd",
    "ManagedProcess",
    "find_rabbitmq_server",
    "find_epmd",
    "free_port",
    "install_hint",
    "ensure_cookie",
    "managed_processes",
    "MANAGED_MARK",
]

GUEST = ("guest", "guest")
_SEARCH_DIRS = ("/usr/lib/rabbitmq/bin", "/usr/local/sbin", "/usr/sbin", "/opt/homebrew/sbin",
                "/usr/local/opt/rabbitmq/sbin", "/opt/homebrew/opt/rabbitmq/sbin")


def install_hint() -> str:
    """What to run to get a RabbitMQ server, on this OS, and the route that needs none."""
    if sys.platform == "darwin":
        how = "brew install rabbitmq"
    elif shutil.which("apt-get"):
        how = "sudo apt-get update && sudo apt-get install -y rabbitmq-server"
    elif shutil.which("dnf"):
        how = "sudo dnf install -y rabbitmq-server"
    else:
        how = "install RabbitMQ from your OS packages (https://www.rabbitmq.com/download.html)"
    return (
        f"Install it with:  {how}\n"
        "or point the lab at brokers it does not start, e.g. the ones in docker-compose.yml:\n"
        "  docker compose up -d\n"
        "  export MPSOA_SYNC_BROKER_URL=amqp://mpsoa:mpsoa@localhost:5673//\n"
        "  export MPSOA_ASYNC_BROKER_URL=amqp://mpsoa:mpsoa@localhost:5674//\n"
        "  export MPSOA_SYNC_MANAGEMENT_URL=http://mpsoa:mpsoa@localhost:15673/\n"
        "  export MPSOA_ASYNC_MANAGEMENT_URL=http://mpsoa:mpsoa@localhost:15674/\n"
        "or set MPSOA_RABBITMQ_SERVER to the path of an installed rabbitmq-server script."
    )


def _is_root_wrapper(path: str) -> bool:
    """Debian's /usr/sbin/rabbitmq-server switches to the rabbitmq user; we want the real one."""
    try:
        return "rabbitmq-script-wrapper" in Path(path).read_text(errors="replace")[:4000] or \
            "su rabbitmq" in Path(path).read_text(errors="replace")
    except OSError:
        return False


def find_rabbitmq_server(explicit: str | None = None) -> str:
    """The ``rabbitmq-server`` script to run nodes with, or :class:`RabbitMQNotInstalled`."""
    if explicit:
        if os.access(explicit, os.X_OK):
            return explicit
        raise RabbitMQNotInstalled(
            f"MPSOA_RABBITMQ_SERVER={explicit!r} is not an executable file.\n" + install_hint())
    search = os.pathsep.join([*_SEARCH_DIRS, os.environ.get("PATH", "")])
    found = shutil.which("rabbitmq-server", path=search)
    if found and _is_root_wrapper(found):
        real = "/usr/lib/rabbitmq/bin/rabbitmq-server"
        found = real if os.access(real, os.X_OK) else None
    if not found:
        raise RabbitMQNotInstalled(
            "rabbitmq-server is not installed on this machine (looked in PATH and "
            f"{', '.join(_SEARCH_DIRS)}).\n" + install_hint())
    return found


def find_epmd(server: str | None = None) -> str:
    """The Erlang port mapper daemon that comes with the Erlang RabbitMQ runs on."""
    found = shutil.which("epmd")
    if not found:
        patterns = ["/usr/lib/erlang/erts-*/bin/epmd", "/usr/local/lib/erlang/erts-*/bin/epmd",
                    "/opt/homebrew/lib/erlang/erts-*/bin/epmd", "/opt/homebrew/opt/erlang/lib/erlang/erts-*/bin/epmd"]
        hits = sorted(h for p in patterns for h in glob.glob(p))
        found = hits[-1] if hits else None
    if not found:
        raise RabbitMQNotInstalled("epmd (part of Erlang, which RabbitMQ needs) was not found.\n"
                                   + install_hint())
    return found


def free_port(low: int = 20000, high: int = 44000, taken: set[int] | None = None) -> int:
    """A TCP port free on 127.0.0.1, below 44000 so that RabbitMQ's CLI port (+10000) fits."""
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


@dataclass
class ManagedProcess:
    """A process the lab started: pid plus start time, so a reused pid is never mistaken for it."""

    name: str
    pid: int
    create_time: float
    owner: int | None = None  # pid whose death ends this process; None: lives as long as the lab

    @classmethod
    def from_popen(cls, name: str, proc: subprocess.Popen, owner: int | None = None) -> ManagedProcess:
        return cls(name, proc.pid, psutil.Process(proc.pid).create_time(), owner)

    def process(self) -> psutil.Process | None:
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.create_time) > 0.5 or proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None

    def is_running(self) -> bool:
        return self.process() is not None

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to the process group this process leads (start_new_session=True)."""
        if self.process() is None:
            return
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass

    def wait_gone(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.is_running():
                _reap(self.pid)
                return True
            _reap(self.pid)
            time.sleep(0.05)
        return not self.is_running()

    def terminate(self, timeout: float = 10.0, sig: int = signal.SIGTERM) -> None:
        """Ask the group to stop; kill it if it is still there after ``timeout`` seconds."""
        self.signal_group(sig)
        if not self.wait_gone(timeout):
            self.signal_group(signal.SIGKILL)
            self.wait_gone(5.0)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "pid": self.pid, "create_time": self.create_time, "owner": self.owner}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ManagedProcess:
        return cls(data["name"], data["pid"], data["create_time"], data.get("owner"))


def _reap(pid: int) -> None:
    """Collect the exit status of our own child, so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _spawn(args: list[str], env: dict[str, str], log: Path, cwd: Path) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(args, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


class Epmd:
    """The lab's own Erlang port mapper, in the foreground so the lab can stop it."""

    def __init__(self, port: int, base_dir: Path, process: ManagedProcess | None = None,
                 mark: str | None = None):
        self.port, self.base_dir, self.process = port, Path(base_dir), process
        self.mark = mark if mark is not None else str(base_dir)

    def start(self) -> Epmd:
        proc = _spawn([find_epmd(), "-port", str(self.port), "-address", "127.0.0.1"],
                      _clean_env(self.mark), self.base_dir / "epmd.log", self.base_dir)
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


#: Set in the environment of every process the lab starts, so a leak can be found by it.
MANAGED_MARK = "MPSOA_LAB_MANAGED"


def _clean_env(home: Path | str | None = None) -> dict[str, str]:
    """The caller's environment without RabbitMQ or Erlang settings that would leak into a node,
    marked with :data:`MANAGED_MARK` (the lab home) so leftovers can be found."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RABBITMQ_", "ERL_", "MPSOA_SYNC_", "MPSOA_ASYNC_"))}
    if home is not None:
        env[MANAGED_MARK] = str(home)
    return env


def managed_processes(home: Path | str) -> list[psutil.Process]:
    """Processes running now that the lab under ``home`` started (and their children)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(MANAGED_MARK) == str(home):
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


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
        env = _clean_env(self.mark)
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
            # Queue depths in the management API refresh every second instead of every five.
            "collect_statistics_interval = 1000\n"
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
        proc = _spawn([server], self.env(), self.base_dir / "stdout.log", self.base_dir)
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
        while time.monotonic() < deadline:
            if not self.is_running():
                raise NodeStartError(
                    f"RabbitMQ node {self.nodename} exited while starting.\n"
                    f"Last lines of {self.base_dir / 'stdout.log'}:\n{self.tail(15)}")
            try:
                if not amqp_ok:
                    with Connection(self.url, connect_timeout=1) as conn:
                        conn.connect()
                    amqp_ok = True
                resp = requests.get(f"http://127.0.0.1:{self.management_port}/api/overview",
                                    auth=GUEST, timeout=1)
                if resp.status_code == 200:
                    return
            except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
                last_error = exc
            time.sleep(0.1)
        raise NodeStartError(
            f"RabbitMQ node {self.nodename} did not accept AMQP on port {self.amqp_port} "
            f"within {timeout:.0f} s (last error: {last_error}). Raise MPSOA_START_TIMEOUT on "
            f"a slow machine.\nLast lines of the log:\n{self.tail(15)}")

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
        """SIGKILL to the node's whole process group: a crash, nothing flushed, nothing said."""
        if self.process is None:
            return
        self.process.signal_group(signal.SIGKILL)
        self.process.wait_gone(10.0)

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
