"""The running lab: the design's two brokers (sync and async), found again through a state file.

``mpsoa_lab.up()`` either attaches to the lab that is already running under ``MPSOA_LAB_HOME``
or starts one: an ``epmd`` and one RabbitMQ node per broker role, plus a *reaper*, a small
watchdog process. Every process that uses the lab registers as a *holder*; when the last holder
is gone (a notebook kernel ended, crashed or was restarted; a test session finished) the reaper
stops everything the lab started, so nothing outlives it. Brokers given by URL
(``MPSOA_SYNC_BROKER_URL`` and ``MPSOA_ASYNC_BROKER_URL``) are used as they are: the lab then
starts nothing and stops nothing.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from . import settings as settings_mod
from .errors import BrokerUnreachable
from .install import find_rabbitmq_server
from .node import Epmd, RabbitMQNode, free_port
from .processes import MANAGED_MARK, ManagedProcess
from .settings import ROLES, Settings, redact_url, strip_credentials

__all__ = ["Broker", "Lab", "up", "check_broker", "running_lab_urls"]

STATE_VERSION = 1


@dataclass(frozen=True)
class Broker:
    """One broker of the design: where to reach it, and the node behind it if the lab runs it."""

    role: str
    url: str
    management_url: str | None
    node: RabbitMQNode | None = None

    @property
    def safe_url(self) -> str:
        return redact_url(self.url)

    def __repr__(self) -> str:
        return f"<Broker {self.role} {self.safe_url}{' (lab node)' if self.node else ' (external)'}>"


def check_broker(url: str, timeout: float = 5.0) -> None:
    """Open and close one AMQP connection, or raise :class:`BrokerUnreachable` within ``timeout``."""
    from kombu import Connection

    started = time.monotonic()
    try:
        with Connection(url, connect_timeout=timeout) as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - every cause ends in the same advice
        raise BrokerUnreachable(
            f"The broker at {redact_url(url)} did not accept an AMQP connection "
            f"({type(exc).__name__}: {exc}; gave up after {time.monotonic() - started:.1f} s). "
            "Check that it is running and that host, port, user and password are right; "
            "unset MPSOA_SYNC_BROKER_URL and MPSOA_ASYNC_BROKER_URL to let the lab start "
            "its own nodes."
        ) from None


class _State:
    """The state file and its lock: one JSON document under ``<home>/lab.json``."""

    def __init__(self, home: Path):
        self.home = home
        self.path = home / "lab.json"
        self.holders = home / "holders"

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.home / "lab.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def read(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def write(self, state: dict[str, Any]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    # -- holders: processes that use the lab -------------------------------------------------
    def add_holder(self, pid: int) -> None:
        self.holders.mkdir(parents=True, exist_ok=True)
        (self.holders / str(pid)).write_text(str(psutil.Process(pid).create_time()))

    def remove_holder(self, pid: int) -> None:
        (self.holders / str(pid)).unlink(missing_ok=True)

    def live_holders(self) -> list[int]:
        """Holders still running; files of dead ones are removed on the way."""
        alive = []
        if not self.holders.exists():
            return alive
        for entry in self.holders.iterdir():
            try:
                pid, created = int(entry.name), float(entry.read_text() or 0)
            except (ValueError, OSError):
                entry.unlink(missing_ok=True)
                continue
            if ManagedProcess("holder", pid, created).is_running():
                alive.append(pid)
            else:
                entry.unlink(missing_ok=True)
        return alive


def teardown(state: dict[str, Any], timeout: float = 30.0) -> None:
    """Stop everything a state file says the lab started: workers, then nodes, then epmd.

    Each group is asked to stop at once and waited for together (a node takes seconds to
    shut down); whatever is still there at the deadline is killed.
    """
    groups = [
        [ManagedProcess.from_dict(p) for p in state.get("processes", [])],
        [RabbitMQNode.from_dict(n) for n in state.get("nodes", {}).values()],
    ]
    for group in groups:
        for member in group:
            if isinstance(member, RabbitMQNode):
                member.stop(timeout=None)
            else:
                member.send(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for member in group:
            proc = member.process if isinstance(member, RabbitMQNode) else member
            if proc is not None and not proc.wait_gone(max(0.1, deadline - time.monotonic())):
                proc.signal_group(signal.SIGKILL)
                proc.wait_gone(5.0)
            if proc is not None:
                proc.kill_stragglers()
    if state.get("epmd"):
        Epmd.from_dict(state["epmd"]).stop()


def running_lab_urls(settings: Settings | None = None) -> dict[str, str] | None:
    """The broker URLs of the lab running under ``MPSOA_LAB_HOME``, or None."""
    settings = settings or settings_mod.load()
    state = _State(settings.home).read()
    if not state:
        return None
    return {role: broker["url"] for role, broker in state["brokers"].items()}


class Lab:
    """A handle on the running lab. Get one with :func:`up`."""

    def __init__(self, settings: Settings, state: dict[str, Any], started_here: bool):
        self.settings = settings
        self._state_file = _State(settings.home)
        self._state = state
        self.started_here = started_here
        self.nodes: dict[str, RabbitMQNode] = {
            role: RabbitMQNode.from_dict(data) for role, data in state.get("nodes", {}).items()}
        self.brokers: dict[str, Broker] = {
            role: Broker(role, b["url"], b.get("management_url"), self.nodes.get(role))
            for role, b in state["brokers"].items()}

    # -- the design's two brokers ------------------------------------------------------------
    @property
    def sync(self) -> Broker:
        return self.brokers["sync"]

    @property
    def async_(self) -> Broker:
        return self.brokers["async"]

    @property
    def external(self) -> bool:
        return bool(self._state.get("external"))

    @property
    def home(self) -> Path:
        return self.settings.home

    def __repr__(self) -> str:
        kind = "external brokers" if self.external else f"{len(self.nodes)} lab nodes"
        return f"<Lab {self.home} ({kind}): {', '.join(map(repr, self.brokers.values()))}>"

    def describe(self) -> list[dict[str, str]]:
        """What runs where: one row per broker, without passwords."""
        rows = []
        for role, broker in self.brokers.items():
            node = broker.node
            mgmt = broker.management_url
            rows.append({
                "role": role,
                "amqp": broker.safe_url,
                "management UI": strip_credentials(mgmt) if mgmt else "-",
                "node": node.nodename if node else "(not started by the lab)",
                "data and logs": ("$MPSOA_LAB_HOME/" + str(node.base_dir.relative_to(self.home)))
                if node else "-",
            })
        return rows

    # -- life cycle --------------------------------------------------------------------------
    def hold(self, pid: int | None = None) -> None:
        self._state_file.add_holder(pid or os.getpid())

    def release(self, pid: int | None = None) -> None:
        """Stop using the lab; the reaper stops it when nobody else uses it."""
        self._state_file.remove_holder(pid or os.getpid())

    def remember_process(self, process: ManagedProcess) -> None:
        """Record a process the lab started (a worker), so that it is stopped with the lab."""
        with self._state_file.lock():
            state = self._state_file.read() or self._state
            state.setdefault("processes", []).append(process.to_dict())
            self._state_file.write(state)
            self._state = state

    def forget_process(self, process: ManagedProcess) -> None:
        with self._state_file.lock():
            state = self._state_file.read() or self._state
            state["processes"] = [p for p in state.get("processes", [])
                                  if (p["pid"], p["create_time"]) != (process.pid, process.create_time)]
            self._state_file.write(state)
            self._state = state

    def down(self) -> None:
        """Stop every process the lab started, now, whoever else holds it.

        Brokers given by URL are left alone: the lab did not start them.
        """
        with self._state_file.lock():
            state = self._state_file.read() or self._state
            reaper = state.get("reaper")
            if reaper:
                ManagedProcess.from_dict(reaper).terminate(5.0)
            teardown(state)
            self._state_file.remove()
            shutil.rmtree(self._state_file.holders, ignore_errors=True)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def save(self) -> None:
        """Write node handles back to the state file (after a restart changed a pid)."""
        with self._state_file.lock():
            state = self._state_file.read() or self._state
            state["nodes"] = {role: node.to_dict() for role, node in self.nodes.items()}
            self._state_file.write(state)
            self._state = state

    def prepare_topology(self, purge: bool = True) -> dict[str, int]:
        """Declare the platform's queues of each kind on that kind's broker; empty them.

        Returns the number of messages purged from each queue (what earlier runs left).
        """
        from kombu import Connection

        from .topology import declare, platform_queues

        purged = {}
        for role, broker in self.brokers.items():
            queues = platform_queues(kinds=(role,))
            with Connection(broker.url) as conn:
                declare(conn, queues)
                if purge:
                    for queue in queues:
                        purged[queue.name] = conn.default_channel.queue_purge(queue.name) or 0
        return purged

    def refresh(self) -> None:
        """Point the node handles at the processes the state file names now.

        Another process using the same lab (a notebook kernel, the test session) may have
        restarted a node since this handle was made; acting on the stale pid would start a
        second node on the same name and ports.
        """
        state = self._state_file.read()
        if not state:
            return
        for role, data in state.get("nodes", {}).items():
            if role in self.nodes:
                self.nodes[role].process = RabbitMQNode.from_dict(data).process
        self._state = state

    def restart_node(self, role: str) -> RabbitMQNode:
        """Graceful stop and start of one broker's node (data kept), recorded for every holder."""
        self.refresh()
        node = self.nodes[role]
        node.restart(self.settings.start_timeout)
        self.save()
        return node

    def start_node(self, role: str) -> RabbitMQNode:
        self.refresh()
        node = self.nodes[role]
        node.start(self.settings.start_timeout)
        self.save()
        return node

    def stop_node(self, role: str) -> None:
        """Graceful stop of one broker's node (data kept); ``start_node`` brings it back."""
        self.refresh()
        self.nodes[role].stop()

    def kill_node(self, role: str) -> None:
        """SIGKILL to one broker's node: a crash. ``start_node`` brings it back."""
        self.refresh()
        self.nodes[role].kill()


def _start(settings: Settings, state_file: _State) -> dict[str, Any]:
    """Start epmd, the design's two nodes (in parallel) and the reaper; return the new state."""
    find_rabbitmq_server(settings.rabbitmq_server)  # fail before starting anything
    lab_id = secrets.token_hex(3)
    home = settings.home
    for stale in ("nodes", "holders", "trace"):
        shutil.rmtree(home / stale, ignore_errors=True)
    erlang_home = home / "erlang"
    epmd = Epmd(free_port(), home, mark=str(home)).start()
    state: dict[str, Any] = {"version": STATE_VERSION, "id": lab_id, "external": False,
                             "epmd": epmd.to_dict(), "nodes": {}, "brokers": {}, "processes": []}
    try:
        nodes = {}
        for role in ROLES:
            nodes[role] = RabbitMQNode(role, home / "nodes" / role, epmd_port=epmd.port,
                                       erlang_home=erlang_home,
                                       nodename=f"mpsoa-{lab_id}-{role}@localhost",
                                       server=settings.rabbitmq_server, mark=str(home))
            nodes[role].start(wait=False)
            state["nodes"][role] = nodes[role].to_dict()
        state_file.write(state)  # so that a crash from here on can still be cleaned up
        for node in nodes.values():
            node.wait_ready(settings.start_timeout)
        state["brokers"] = {role: {"url": n.url, "management_url": n.management_url}
                            for role, n in nodes.items()}
        state["reaper"] = _spawn_reaper(home, lab_id).to_dict()
        state_file.write(state)
        return state
    except BaseException:
        teardown(state)
        state_file.remove()
        raise


def _spawn_reaper(home: Path, lab_id: str) -> ManagedProcess:
    log = open(home / "reaper.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "mpsoa_lab.reaper", str(home), lab_id],
                            env={**os.environ, MANAGED_MARK: str(home)}, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    log.close()
    return ManagedProcess.from_popen("reaper", proc)


def _heal(settings: Settings, state: dict[str, Any], state_file: _State) -> dict[str, Any]:
    """Bring a found lab back to full strength: dead nodes started again, a dead reaper replaced."""
    changed = False
    for role, data in state.get("nodes", {}).items():
        node = RabbitMQNode.from_dict(data)
        if not node.is_running():
            node.start(settings.start_timeout)
            state["nodes"][role] = node.to_dict()
            changed = True
    reaper = state.get("reaper")
    if not reaper or not ManagedProcess.from_dict(reaper).is_running():
        state["reaper"] = _spawn_reaper(settings.home, state["id"]).to_dict()
        changed = True
    if changed:
        state_file.write(state)
    return state


def _epmd_alive(state: dict[str, Any]) -> bool:
    epmd = state.get("epmd")
    return bool(epmd and Epmd.from_dict(epmd).process and Epmd.from_dict(epmd).process.is_running())


def _external_state(settings: Settings) -> dict[str, Any]:
    return {"version": STATE_VERSION, "id": secrets.token_hex(3), "external": True,
            "brokers": {role: {"url": settings.broker_url(role),
                               "management_url": settings.management_url(role)} for role in ROLES},
            "nodes": {}, "processes": []}


def _usable(state: dict[str, Any] | None, settings: Settings) -> bool:
    """Whether a lab found in the state file can be attached to with these settings."""
    if not state or state.get("version") != STATE_VERSION or not state.get("brokers"):
        return False
    if settings.external:
        return bool(state.get("external")) and state["brokers"] == _external_state(settings)["brokers"]
    return not state.get("external") and _epmd_alive(state)


def up(settings: Settings | None = None, *, hold: bool = True) -> Lab:
    """Attach to the running lab, or start one; the calling process becomes one of its holders.

    With ``MPSOA_SYNC_BROKER_URL`` and ``MPSOA_ASYNC_BROKER_URL`` set, the lab uses those
    brokers (after checking that each accepts a connection) and starts no node: only the
    reaper, which stops the workers the lab starts when their owner is gone.
    """
    settings = settings or settings_mod.load()
    if settings.external:
        for role in ROLES:
            check_broker(settings.broker_url(role), settings.connect_timeout)

    state_file = _State(settings.home)
    with state_file.lock():
        state = state_file.read()
        started_here = False
        if _usable(state, settings):
            state = _heal(settings, state, state_file)
        else:
            if state:  # a lab that crashed half way, or one of another kind: clean up what it left
                teardown(state)
                state_file.remove()
            if settings.external:
                state = _external_state(settings)
                state["reaper"] = _spawn_reaper(settings.home, state["id"]).to_dict()
                state_file.write(state)
            else:
                state = _start(settings, state_file)
            started_here = True
        if hold:
            state_file.add_holder(os.getpid())
    return Lab(settings, state, started_here)
