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
import copy
import fcntl
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NoReturn

from ..plumbing import settings as settings_mod
from ..plumbing.component import Component, Program, component_from_dict, stop_components
from ..plumbing.errors import BrokerUnreachable, LabInUse, NeedsLabNode, SettingsError
from ..plumbing.install import find_rabbitmq_server
from ..plumbing.node import Epmd, RabbitMQNode
from ..plumbing.processes import MANAGED_MARK, ManagedProcess, managed_processes
from ..plumbing.settings import (
    DEFAULT_SPACE,
    ROLES,
    Settings,
    redact_url,
    strip_credentials,
    with_vhost,
)
from ..plumbing.state import StateFile, running_lab_urls, space_brokers, space_nodes
from ..plumbing.util import kernel_shell
from . import lifecycle
from .lifecycle import STATE_VERSION, Command, Step, external_brokers
from .spaces import close_spaces, open_own_nodes, open_space

__all__ = ["Broker", "Lab", "up", "check_broker", "running_lab_urls", "teardown", "close_spaces"]


@dataclass(frozen=True)
class Broker:
    """One broker of the design: where to reach it, and the node behind it if the lab runs it."""

    role: str
    #: The AMQP URL of this process's space on the broker (its own vhost on a lab node).
    url: str
    management_url: str | None
    node: RabbitMQNode | None = None
    #: The vhost of this process's space (None: a broker given by URL, used as it is).
    vhost: str | None = None
    #: The broker's URL at its default vhost ``/``.
    node_url: str | None = None

    @property
    def safe_url(self) -> str:
        return redact_url(self.url)

    def __repr__(self) -> str:
        return (
            f"<Broker {self.role} {self.safe_url}{' (lab node)' if self.node else ' (external)'}>"
        )


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


def _shown_path(path: Path) -> str:
    """``path`` as a reader can paste it: under the user's home as ``~/...``."""
    try:
        return "~/" + str(path.relative_to(Path.home()))
    except ValueError:
        return str(path)


def _components(state: dict[str, Any]) -> list[Component]:
    return [component_from_dict(data) for data in state.get("components", {}).values()]


def teardown(state: dict[str, Any], timeout: float = 30.0, home: Path | None = None) -> None:
    """Stop every component a state file records: workers and apps, then nodes, then epmd.

    Each group is asked to stop at once and waited for together (a node takes seconds to
    shut down); whatever is still there at the deadline is killed; their ports are released.
    With ``home``, every process still carrying the lab's mark after that is killed too (this
    process aside): what a component started that no state file knows, such as the
    ``epmd -daemon`` a RabbitMQ node starts on the lab's epmd port (``rabbit_epmd_monitor``,
    every 60 s) when the lab's own epmd has died.
    """
    stop_components(_components(state), timeout)
    if home is not None:
        _sweep(home)


def _sweep(home: Path) -> None:
    import psutil

    left = [p for p in managed_processes(home) if p.pid != os.getpid()]
    for proc in left:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(left, timeout=5)


def _space_name() -> str:
    """A space name for this process: the notebook's name when Jupyter gives it, and the pid."""
    session = os.environ.get("JPY_SESSION_NAME", "")
    program = Path(sys.argv[0] if sys.argv else "")
    if program.stem == "__main__":  # python -m package: the package's name
        program = program.parent
    slug = (
        Path(session).stem
        if session
        else ("kernel" if kernel_shell() is not None else program.stem)
    )
    slug = re.sub(r"[^A-Za-z0-9_]+", "-", slug).strip("-")[:40] or "python"
    return f"{slug}-{os.getpid()}"


class Lab:
    """A handle on the running lab. Get one with :func:`up`."""

    def __init__(self, settings: Settings, state: dict[str, Any], started_here: bool):
        self.settings = settings
        self._state_file = StateFile(settings.home)
        self._state = state
        self.started_here = started_here
        self.nodes: dict[str, RabbitMQNode] = {}
        #: Set on a view (:meth:`in_vhost`): the vhost its brokers point at instead of the space's.
        self.view_vhost: str | None = None
        self._queues_for: Callable[[str], list[Any]] | None = None
        self._load_nodes(state)
        vhost = settings.vhost
        brokers = space_brokers(state, settings.space)
        self.brokers: dict[str, Broker] = {
            role: Broker(
                role,
                b["url"] if self.external else with_vhost(b["url"], vhost),
                b.get("management_url"),
                self.nodes.get(role),
                vhost=None if self.external else vhost,
                node_url=b["url"],
            )
            for role, b in brokers.items()
        }

    def _load_nodes(self, state: dict[str, Any]) -> None:
        for role, key in space_nodes(state, self.settings.space).items():
            data = state.get("components", {}).get(key)
            if data is None:
                continue
            fresh = RabbitMQNode.from_dict(data)
            if role in self.nodes:  # keep the handle every Broker shares; point it at the new pid
                self.nodes[role].process = fresh.process
            else:
                self.nodes[role] = fresh

    # -- the design's two brokers ------------------------------------------------------------
    @property
    def sync(self) -> Broker:
        return self.brokers["sync"]

    @property
    def async_(self) -> Broker:
        return self.brokers["async"]

    @property
    def id(self) -> str:
        """The running lab's id (in its node names), new at every start."""
        return str(self._state.get("id"))

    @property
    def external(self) -> bool:
        return bool(self._state.get("external"))

    @property
    def home(self) -> Path:
        return self.settings.home

    @property
    def space(self) -> str:
        """This process's space: its own vhost on each node and its own service storage."""
        return self.settings.space

    @property
    def space_home(self) -> Path:
        return self.settings.space_home

    def __repr__(self) -> str:
        kind = "external brokers" if self.external else f"{len(self.nodes)} lab nodes"
        return (
            f"<Lab {self.home} ({kind}, space {self.space!r}): "
            f"{', '.join(map(repr, self.brokers.values()))}>"
        )

    def describe(self) -> list[dict[str, str]]:
        """What runs where: one row per broker, without passwords."""
        rows = []
        for role, broker in self.brokers.items():
            node = broker.node
            mgmt = broker.management_url
            rows.append(
                {
                    "role": role,
                    "amqp": broker.safe_url,
                    "vhost": broker.vhost or "(the URL's)",
                    "management UI": strip_credentials(mgmt) if mgmt else "-",
                    "node": node.nodename if node else "(not started by the lab)",
                    "data and logs": _shown_path(node.base_dir) if node else "-",
                }
            )
        return rows

    # -- holders and components --------------------------------------------------------------
    def hold(self, pid: int | None = None) -> None:
        self._state_file.add_holder(pid or os.getpid())

    def release(self, pid: int | None = None) -> None:
        """Stop using the lab; the reaper stops it when nobody else uses it."""
        self._state_file.remove_holder(pid or os.getpid())

    def _update(self, change: Callable[[dict[str, Any]], None]) -> None:
        with self._state_file.lock():
            state = self._state_file.read() or self._state
            change(state)
            self._state_file.write(state)
            self._state = state

    def record(self, component: Component) -> None:
        """Record a component the lab started (a worker, an app), so that it is stopped with
        the lab, or by the reaper as soon as its owner is gone."""
        self._update(
            lambda state: state.setdefault("components", {}).__setitem__(
                component.key, component.to_dict()
            )
        )

    def launch(self, component: Component, timeout: float, stop: Callable[[], None]) -> None:
        """Start ``component`` without waiting, record it, then wait until it is ready; if it
        does not get ready, ``stop()`` it (which also forgets it) and raise."""
        component.start(wait=False)
        self.record(component)
        try:
            component.wait_ready(timeout)
        except BaseException:
            stop()
            raise

    def beside(self, suffix: str) -> dict[str, Any]:
        """What a node of this space's own needs to run beside the lab's (its epmd, its Erlang
        home, a node name ending in ``suffix``, the server), owned by this process: the keyword
        arguments of :class:`~mpsoa_lab.plumbing.node.RabbitMQNode` and its kinds."""
        base = self.node("sync", "start a node beside")
        slug = "".join(c if c.isalnum() else "-" for c in self.space)
        return {
            "epmd_port": base.epmd_port,
            "erlang_home": base.erlang_home,
            "nodename": f"mpsoa-{self.id}-{slug}-{suffix}@localhost",
            "server": self.settings.rabbitmq_server,
            "owner": os.getpid(),
            "mark": str(self.home),
        }

    @contextlib.contextmanager
    def own_node(self, node: RabbitMQNode, timeout: float | None = None) -> Iterator[RabbitMQNode]:
        """Run ``node`` (made with :meth:`beside`) for a ``with`` block: recorded from its start,
        so the reaper stops it if this process dies; stopped, forgotten and its data deleted on
        exit."""
        try:
            node.start(wait=False)
            self.record(node)  # from here the reaper knows it
            node.wait_ready(timeout or self.settings.start_timeout)
            self.record(node)  # its ports may have moved
            yield node
        finally:
            node.stop(10.0)
            self.forget(node)
            shutil.rmtree(node.base_dir, ignore_errors=True)

    def forget(self, component: Component) -> None:
        """Remove a component that has stopped from the state file."""
        self._update(lambda state: state.setdefault("components", {}).pop(component.key, None))

    def program(
        self,
        name: str,
        args: list[str],
        *,
        ports: Iterable[str] = (),
        env: dict[str, str] | None = None,
        probe: Callable[[Program], Any] | None = None,
    ) -> Program:
        """A :class:`~mpsoa_lab.plumbing.component.Program` of this lab, owned by this process,
        its logs under the lab's ``logs/<name>``; start it with :meth:`launch`."""
        return Program(name, self.home / "logs" / name, args, ports=ports, env=env, probe=probe,
                       owner=os.getpid(), mark=str(self.home))  # fmt: skip

    def retire(self, component: Component, timeout: float = 10.0) -> None:
        """Stop ``component`` (killed after ``timeout``), release its ports and forget it: the
        end of an edge, a REST instance, HAProxy or Flower started on this lab."""
        component.stop(timeout, keep_ports=False)
        self.forget(component)

    def components(self, type_: str | None = None) -> list[Component]:
        """The components the state file records now (of one ``type_``, or all)."""
        state = self._state_file.read() or self._state
        return [c for c in _components(state) if type_ is None or c.TYPE == type_]

    def down(self) -> None:
        """Stop every process the lab started, now, whoever else holds it.

        Brokers given by URL are left alone: the lab did not start them.
        """
        with self._state_file.lock():
            state = self._state_file.read() or self._state
            reaper = state.get("reaper")
            if reaper:
                ManagedProcess.from_dict(reaper).terminate(5.0)
            teardown(state, home=self.home)
            self._state_file.remove()
            shutil.rmtree(self._state_file.holders, ignore_errors=True)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def save(self) -> None:
        """Write node handles back to the state file (after a restart changed a pid)."""

        def change(state: dict[str, Any]) -> None:
            for node in self.nodes.values():
                state.setdefault("components", {})[node.key] = node.to_dict()

        self._update(change)

    def prepare_topology(self, purge: bool = True) -> dict[str, int]:
        """Declare the platform's queues of each kind on that kind's broker; empty them.

        Returns the number of messages purged from each queue (what earlier runs left).
        """
        from kombu import Connection

        from ..design.topology import declare, platform_queues

        purged = {}
        for role, broker in self.brokers.items():
            queues = self._queues_for(role) if self._queues_for else platform_queues(kinds=(role,))
            with Connection(broker.url) as conn:
                declare(conn, queues)
                if purge:
                    for queue in queues:
                        purged[queue.name] = conn.default_channel.queue_purge(queue.name) or 0
        return purged

    def in_vhost(self, vhost: str, queues_for: Callable[[str], list[Any]] | None = None) -> Lab:
        """This lab seen through another vhost of its nodes: the same nodes, home, space and
        life cycle, with each broker's URL (and management API calls) in ``vhost``, which must
        exist on each node. Workers started on the view get its URLs; ``queues_for(kind)``
        gives the queues :meth:`prepare_topology` declares there (default: the design's). Two
        designs whose queues cannot share a vhost (classic and quorum queues of one name) run
        side by side so, each driven by the same experiments (notebook 14)."""
        if self.external:
            raise NeedsLabNode(
                f"a view in vhost {vhost!r} needs the lab's own nodes; with brokers given by URL, "
                "give each design brokers (or vhosts) of its own instead"
            )
        view = copy.copy(self)
        view.brokers = {
            role: replace(broker, url=with_vhost(str(broker.node_url), vhost), vhost=vhost)
            for role, broker in self.brokers.items()
        }
        view.view_vhost = vhost
        view._queues_for = queues_for
        return view

    def refresh(self) -> None:
        """Point the node handles at the processes the state file names now.

        Another process using the same lab (a notebook kernel, the test session) may have
        restarted a node since this handle was made; acting on the stale pid would start a
        second node on the same name and ports.
        """
        state = self._state_file.read()
        if not state:
            return
        self._load_nodes(state)
        self._state = state

    # -- acting on nodes: only on nodes the lab runs, and with the lab to oneself ------------
    def node(self, role: str, action: str = "act on") -> RabbitMQNode:
        """The node behind the ``role`` broker, or :class:`NeedsLabNode` for brokers given by URL."""
        if role not in self.brokers:
            raise ValueError(f"no broker role {role!r}; the design has {', '.join(self.brokers)}")
        node = self.nodes.get(role)
        if node is None:
            raise NeedsLabNode(
                f"Cannot {action} the {role} broker: it is given by URL "
                f"({self.brokers[role].safe_url}), and only a RabbitMQ node the lab runs can be "
                "restarted, stopped, killed or reconfigured from here. Unset "
                "MPSOA_SYNC_BROKER_URL and MPSOA_ASYNC_BROKER_URL to let the lab start its own."
            )
        return node

    def needs_nodes(self, action: str = "act on its nodes") -> None:
        """Raise :class:`NeedsLabNode` unless the lab runs its own nodes."""
        for role in self.brokers:
            self.node(role, action)

    def exclusive(self, reason: str) -> contextlib.AbstractContextManager[None]:
        """Have the lab to oneself while ``reason`` (a restart, a kill, a flood) lasts: other
        processes' exclusive sections wait, and this one says which one it waits for."""
        return _exclusive(self._state_file.home, reason, self.space)

    def _act_on_node(
        self, role: str, verb: str, act: Callable[[RabbitMQNode], Any]
    ) -> RabbitMQNode:
        """``act`` on the ``role`` node with the lab to oneself, on the pid the state file names
        now; the new pid is recorded for every holder."""
        node = self.node(role, verb)
        with self.exclusive(f"{verb}s the {role} broker"):
            self.refresh()
            self._heal_epmd()
            act(node)
            self.save()
        return node

    def _heal_epmd(self) -> None:
        """Start the lab's epmd again, on its port, if it died: its nodes need it to start."""
        for epmd in self.components("epmd"):
            if not epmd.is_running():
                epmd.start()
                self.record(epmd)

    def restart_node(self, role: str) -> RabbitMQNode:
        """Graceful stop and start of one broker's node (data kept), recorded for every holder."""
        return self._act_on_node(role, "restart", lambda n: n.restart(self.settings.start_timeout))

    def start_node(self, role: str) -> RabbitMQNode:
        """Start a stopped or killed node again, on its ports and with its data."""
        return self._act_on_node(role, "start", lambda n: n.start(self.settings.start_timeout))

    def stop_node(self, role: str) -> None:
        """Graceful stop of one broker's node (data kept); ``start_node`` brings it back."""
        self._act_on_node(role, "stop", lambda n: n.stop())

    def kill_node(self, role: str) -> None:
        """SIGKILL to one broker's node: a crash. ``start_node`` brings it back."""
        self._act_on_node(role, "kill", lambda n: n.kill())


_exclusive_depth: dict[str, int] = {}
_exclusive_guard = threading.Lock()


@contextlib.contextmanager
def _exclusive(home: Path, reason: str, who: str) -> Iterator[None]:
    """An exclusive lock on the lab (re-entrant within a process), naming its holder."""
    key = str(home)
    with _exclusive_guard:  # held by this process already (another thread, or a nested call)
        nested = bool(_exclusive_depth.get(key))
        if nested:
            _exclusive_depth[key] += 1
    if nested:
        try:
            yield
        finally:
            with _exclusive_guard:
                _exclusive_depth[key] -= 1
        return
    home.mkdir(parents=True, exist_ok=True)
    info = home / "exclusive.json"
    with open(home / "exclusive.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = json.loads(info.read_text())
                since = time.time() - holder.get("since", time.time())
                print(
                    f"Waiting for {holder.get('who')}: it {holder.get('reason')} "
                    f"(for {since:.0f} s so far); this section needs the lab to itself.",
                    flush=True,
                )
            except (OSError, ValueError):
                print(
                    "Waiting for another notebook's section that needs the lab to itself.",
                    flush=True,
                )
            fcntl.flock(fh, fcntl.LOCK_EX)
        info.write_text(
            json.dumps({"who": who, "pid": os.getpid(), "reason": reason, "since": time.time()})
        )
        with _exclusive_guard:
            _exclusive_depth[key] = 1
        try:
            yield
        finally:
            with _exclusive_guard:
                _exclusive_depth[key] = 0
            info.unlink(missing_ok=True)
            fcntl.flock(fh, fcntl.LOCK_UN)


def _node_state(state: dict[str, Any], role: str, node: RabbitMQNode) -> None:
    state.setdefault("components", {})[node.key] = node.to_dict()
    state.setdefault("nodes", {})[role] = node.key


def _start(settings: Settings, state_file: StateFile) -> dict[str, Any]:
    """Start epmd, the design's two nodes (in parallel) and the reaper; return the new state."""
    find_rabbitmq_server(settings.rabbitmq_server)  # fail before starting anything
    lab_id = secrets.token_hex(3)
    home = settings.home
    for stale in ("nodes", "holders", "trace", "spaces"):
        shutil.rmtree(home / stale, ignore_errors=True)
    erlang_home = home / "erlang"
    epmd = Epmd(None, home, mark=str(home)).start()
    state: dict[str, Any] = {
        "version": STATE_VERSION,
        "id": lab_id,
        "external": False,
        "components": {epmd.key: epmd.to_dict()},
        "nodes": {},
        "brokers": {},
        "spaces": {},
    }
    try:
        nodes = {}
        for role in ROLES:
            nodes[role] = RabbitMQNode(
                role,
                home / "nodes" / role,
                epmd_port=epmd.port,
                erlang_home=erlang_home,
                nodename=f"mpsoa-{lab_id}-{role}@localhost",
                server=settings.rabbitmq_server,
                mark=str(home),
            )
            nodes[role].start(wait=False)
            _node_state(state, role, nodes[role])
        state_file.write(state)  # so that a crash from here on can still be cleaned up
        for role, node in nodes.items():
            node.wait_ready(settings.start_timeout)
            _node_state(state, role, node)  # its ports may have moved ("address in use")
        _check_server(nodes["sync"], settings)
        state["brokers"] = {
            role: {"url": n.url, "management_url": n.management_url} for role, n in nodes.items()
        }
        state["reaper"] = _spawn_reaper(home, lab_id).to_dict()
        state_file.write(state)
        return state
    except BaseException:
        teardown(state)
        state_file.remove()
        raise


def _check_server(node: RabbitMQNode, settings: Settings) -> None:
    """Refuse a server outside the versions the lab supports, read from the node itself."""
    from ..plumbing.management import Management
    from ..plumbing.versions import check_supported

    with Management(node.management_url) as api:
        version = api.overview()["rabbitmq_version"]
    check_supported(
        version, f"the rabbitmq-server the lab ran ({settings.rabbitmq_server or 'found on PATH'})"
    )


def _spawn_reaper(home: Path, lab_id: str) -> ManagedProcess:
    log = open(home / "reaper.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mpsoa_lab.running.reaper", str(home), lab_id],
        env={**os.environ, MANAGED_MARK: str(home)},
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    return ManagedProcess.from_popen("reaper", proc)


def _heal(settings: Settings, state: dict[str, Any], state_file: StateFile) -> dict[str, Any]:
    """Bring a found lab back to full strength: dead nodes started again, a dead reaper replaced."""
    changed = False
    for role, key in state.get("nodes", {}).items():
        node = RabbitMQNode.from_dict(state["components"][key])
        if not node.is_running():
            node.start(settings.start_timeout)
            _node_state(state, role, node)
            changed = True
    reaper = state.get("reaper")
    if not reaper or not ManagedProcess.from_dict(reaper).is_running():
        state["reaper"] = _spawn_reaper(settings.home, state["id"]).to_dict()
        changed = True
    if changed:
        state_file.write(state)
    return state


def _external_state(settings: Settings) -> dict[str, Any]:
    return {
        "version": STATE_VERSION,
        "id": secrets.token_hex(3),
        "external": True,
        "brokers": external_brokers(settings),
        "nodes": {},
        "components": {},
        "spaces": {},
    }


def _make_home(home: Path) -> None:
    """The lab home, made if missing, or one clear line saying why it cannot be used."""
    try:
        home.mkdir(parents=True, exist_ok=True)
        if not os.access(home, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as exc:
        raise SettingsError(
            f"MPSOA_LAB_HOME={home}: the lab cannot keep its files there "
            f"({exc.strerror or exc}); point MPSOA_LAB_HOME at a folder you can write, or unset "
            "it for ~/.cache/mpsoa-lab"
        ) from None


def _refuse(state: dict[str, Any], settings: Settings, state_file: StateFile) -> NoReturn:
    """:class:`LabInUse` for a lab that other processes hold and this process cannot use: a
    lab in use is never torn down by another process (only ``down`` and its holders' exit
    stop it)."""
    holders = [pid for pid in state_file.live_holders() if pid != os.getpid()]
    running = "brokers given by URL" if state.get("external") else "RabbitMQ nodes of its own"
    if settings.external:
        asked = "brokers given by URL (MPSOA_SYNC_BROKER_URL and MPSOA_ASYNC_BROKER_URL are set)"
        fix = "unset MPSOA_SYNC_BROKER_URL and MPSOA_ASYNC_BROKER_URL to use the running lab"
    else:
        asked = "the lab's own nodes"
        fix = "set the same MPSOA_SYNC_BROKER_URL and MPSOA_ASYNC_BROKER_URL as its holders"
    if bool(state.get("external")) == settings.external:
        asked += ", and the lab found cannot be used as it is (its epmd is gone, or other URLs)"
    raise LabInUse(
        f"A lab with {running} runs under {settings.home}, held by pid "
        f"{', '.join(map(str, sorted(holders)))}; this process asked for {asked}. Nothing was "
        f"stopped. Either {fix}, or give this process a lab home of its own (MPSOA_LAB_HOME), "
        "or stop the running lab first (python -m mpsoa_lab down)."
    )


def up(
    settings: Settings | None = None,
    *,
    hold: bool = True,
    space: str | None = None,
    own_nodes: bool = False,
) -> Lab:
    """Attach to the running lab, or start one; the calling process becomes one of its holders.

    Each process gets a *space* of its own on the lab's shared nodes: a vhost on each node and
    a folder for its services' storage, so that notebooks open side by side never see each
    other's messages or rows. ``space="default"`` (or ``MPSOA_SPACE=default``) uses vhost ``/``
    instead, shared with terminals (``python -m mpsoa_lab up`` and workers started by hand).

    ``own_nodes=True`` gives the space two RabbitMQ nodes of its own instead of a vhost on the
    shared ones, for a notebook that restarts, stops, kills or floods its brokers: whatever it
    does to them, the notebooks beside it never notice. Its process owns them; the reaper stops
    them when that process is gone. Brokers given by URL have no nodes to give: it is ignored.

    With ``MPSOA_SYNC_BROKER_URL`` and ``MPSOA_ASYNC_BROKER_URL`` set, the lab uses those
    brokers as they are (after checking that each accepts a connection) and starts no node:
    only the reaper, which stops the workers the lab starts when their owner is gone.
    """
    if settings is None:
        explicit = space or os.environ.get("MPSOA_SPACE")
        settings_mod.use_space(explicit or _space_name())
        settings = settings_mod.load()
        if settings.external:
            # Brokers given by URL are used as they are: every process shares their vhost, and
            # so the services' storage too (a worker of one process may take another's message).
            settings_mod.use_space(DEFAULT_SPACE)
            settings = settings_mod.load()
    elif space is not None:
        settings = replace(settings, space=space)
    if settings.external:
        for role in ROLES:
            check_broker(settings.broker_url(role), settings.connect_timeout)

    _make_home(settings.home)
    state_file = StateFile(settings.home)
    with state_file.lock():
        state = state_file.read()
        found = lifecycle.find(state, settings, state_file)
        action = lifecycle.step(Command.UP, found)
        if action is Step.REFUSE:
            assert state is not None
            _refuse(state, settings, state_file)
        if action is Step.ATTACH:
            assert state is not None
            state = _heal(settings, state, state_file)
        if action is Step.CLEAR_AND_START:  # a lab that crashed half way, or an unheld other kind
            assert state is not None
            teardown(state, home=settings.home)
            state_file.remove()
        if action in (Step.START, Step.CLEAR_AND_START):
            if settings.external:
                state = _external_state(settings)
                state["reaper"] = _spawn_reaper(settings.home, state["id"]).to_dict()
                state_file.write(state)
            else:
                state = _start(settings, state_file)
        assert state is not None
        open_space(settings, state)
        if own_nodes:
            open_own_nodes(settings, state)
        if hold:
            state_file.add_holder(os.getpid())
        state_file.write(state)
    return Lab(settings, state, started_here=action is not Step.ATTACH)
