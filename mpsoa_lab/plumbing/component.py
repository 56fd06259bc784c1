"""One life cycle for every process the lab runs: RabbitMQ nodes, epmd, Celery workers, and the
HTTP apps, load balancers and monitors to come.

A *component* is a program started from what is installed on this machine, as the current user:

* its **ports** are reserved on the machine-wide allocator (:mod:`mpsoa_lab.plumbing.ports`)
  before it starts and handed over to its process once it runs, so no other component, lab or test
  session can be given them; a fresh component whose start fails with "address in use" is
  started again on fresh ports;
* its **config** is generated under its own directory (``base_dir``), inside the lab's home;
* it is **ready** when its own protocol answers (:meth:`Component.probe`: an AMQP connection, an
  HTTP request, Celery's control ping), never after a sleep;
* a start that fails raises :class:`~mpsoa_lab.plumbing.errors.ComponentStartError` with an
  excerpt of its logs since that start: the first error-looking lines (the cause) and the last ones;
* it has an **entry in the state file** (:meth:`to_dict`, :func:`component_from_dict`), so any
  process using the lab, and the lab's reaper, can find it again and stop it; a component with
  an ``owner`` (the pid of a notebook kernel) is stopped as soon as that owner is gone.

A new kind of component is a subclass with a ``TYPE``, its ``PORTS``, a :meth:`argv`, and a
:meth:`probe`; :data:`TYPES` says where the state file finds it again.
"""

from __future__ import annotations

import importlib
import os
import shlex
import signal
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

import psutil

from .errors import ComponentStartError
from .logs import log_excerpt
from .ports import DIST_PORTS, SERVICE_PORTS, PortAllocator, is_eaddrinuse
from .processes import ManagedProcess, clean_env, spawn

__all__ = [
    "Component",
    "Program",
    "NotReady",
    "TYPES",
    "component_from_dict",
    "stop_components",
    "http_probe",
    "DIST_PORTS",
    "SERVICE_PORTS",
]

#: Where each component type lives, for :func:`component_from_dict` (imported only when needed,
#: so that the reaper does not load Celery to stop a node).
TYPES: dict[str, str] = {
    "epmd": "mpsoa_lab.plumbing.node:Epmd",
    "rabbitmq": "mpsoa_lab.plumbing.node:RabbitMQNode",
    "rabbitmq_tls": "mpsoa_lab.plumbing.tls_node:TLSNode",
    "rabbitmq_definitions": "mpsoa_lab.plumbing.definitions_node:DefinitionsNode",
    "worker": "mpsoa_lab.running.workers:Worker",
    "program": "mpsoa_lab.plumbing.component:Program",
    "haproxy": "mpsoa_lab.plumbing.haproxy:HAProxy",
    "cluster_node": "mpsoa_lab.plumbing.cluster:ClusterNode",
    "netns": "mpsoa_lab.plumbing.netns:NetworkKeeper",
}


class NotReady(Exception):
    """A probe's answer: the component runs but does not serve yet."""


def component_class(type_: str) -> type[Component]:
    """The class of a component type; the plain :class:`Component` (which can still stop it:
    SIGTERM, then SIGKILL to its process group) for a type this package does not know."""
    try:
        module, name = TYPES[type_].split(":")
        return getattr(importlib.import_module(module), name)
    except (KeyError, ImportError, AttributeError):
        return Component


def component_from_dict(data: dict[str, Any]) -> Component:
    """A handle on a component recorded in the state file (its process may have ended)."""
    return component_class(data["type"]).from_dict(data)


class Component:
    """One process of the lab, with its ports, config, readiness probe, logs and stop."""

    TYPE: ClassVar[str] = ""
    #: Port name -> the range it is reserved in.
    PORTS: ClassVar[dict[str, tuple[int, int]]] = {}
    #: Attributes kept in the state file besides the common ones.
    FIELDS: ClassVar[tuple[str, ...]] = ()
    #: Components with a lower number are stopped first when the lab stops (workers before nodes).
    STOP_ORDER: ClassVar[int] = 0
    #: Seconds a graceful stop may take before the component is killed.
    STOP_TIMEOUT: ClassVar[float] = 30.0
    START_ERROR: ClassVar[type[ComponentStartError]] = ComponentStartError
    PROBE_INTERVAL: ClassVar[float] = 0.1
    #: How many times a fresh component is started again on new ports after "address in use".
    PORT_RETRIES: ClassVar[int] = 3
    #: Whether the reaper keeps its state-file entry while it is down and its owner lives
    #: (a cluster member that was killed is still a member); else the entry goes when it ends.
    KEEP_WHEN_STOPPED: ClassVar[bool] = False

    def __init__(
        self,
        name: str,
        base_dir: Path | str,
        *,
        ports: dict[str, int] | None = None,
        process: ManagedProcess | None = None,
        owner: int | None = None,
        mark: str | None = None,
    ):
        self.name = name
        self.base_dir = Path(base_dir)
        self.mark = mark if mark is not None else str(self.base_dir)
        self.owner = owner
        self.process = process
        self.ports: dict[str, int] = {k: int(v) for k, v in (ports or {}).items() if v}
        missing = [port for port in self.PORTS if port not in self.ports]
        self._movable = bool(missing) and len(missing) == len(self.PORTS)  # all ours to choose
        if missing:
            self._reserve(missing)
        self._log_offsets: dict[Path, int] = {}

    # -- what a subclass says ----------------------------------------------------------------
    def argv(self) -> list[str]:
        """The command line that starts the component."""
        raise NotImplementedError

    def display_command(self) -> list[str]:
        """The command line as a person would type it (written at the top of its log)."""
        return self.argv()

    def environment(self) -> dict[str, str]:
        """The environment it starts with: the caller's, less broker settings, plus the lab mark."""
        return clean_env(self.mark)

    def write_config(self) -> None:
        """Generate its configuration under :attr:`base_dir` (called before every start)."""
        self.base_dir.mkdir(parents=True, exist_ok=True)

    def probe(self) -> None:
        """Return if the component serves, in its own protocol; raise anything if not yet."""
        raise NotImplementedError

    def log_paths(self) -> list[Path]:
        """Files whose new lines explain a failed start (console output first)."""
        return [self.stdout_log]

    def port_clash(self, output: str) -> bool:
        """Whether the output of a start that ended says a port was taken."""
        return is_eaddrinuse(output)

    def start_hint(self) -> str:
        """One line of advice appended to a start error."""
        return ""

    def request_stop(self) -> None:
        """Ask for a graceful stop (default: SIGTERM to the main process)."""
        if self.process is not None:
            self.process.send(signal.SIGTERM)

    # -- identity ----------------------------------------------------------------------------
    @property
    def key(self) -> str:
        """The component's key in the state file."""
        return f"{self.TYPE}:{self.name}"

    @property
    def stdout_log(self) -> Path:
        return self.base_dir / "stdout.log"

    def __repr__(self) -> str:
        ports = " ".join(f"{k}={v}" for k, v in self.ports.items())
        return f"<{type(self).__name__} {self.name} {ports} {'running' if self.is_running() else 'stopped'}>"

    # -- ports -------------------------------------------------------------------------------
    def _reserve(self, names: Iterable[str]) -> None:
        allocator = PortAllocator()
        by_range: dict[tuple[int, int], list[str]] = {}
        for name in names:
            by_range.setdefault(self.PORTS[name], []).append(name)
        for (low, high), group in by_range.items():
            for name, port in zip(
                group, allocator.reserve(len(group), low=low, high=high), strict=True
            ):
                self.ports[name] = port

    def _hold_ports(self, pid: int | None) -> None:
        """Keep this component's ports reserved for ``pid`` (its process, or while it is stopped
        for a while, the process that stopped it), or release them (``None``)."""
        if not self.ports:
            return
        allocator = PortAllocator()
        if pid is None:
            allocator.release(list(self.ports.values()))
        else:
            allocator.assign(list(self.ports.values()), pid)

    # -- life cycle --------------------------------------------------------------------------
    def is_running(self) -> bool:
        return self.process is not None and self.process.is_running()

    def start(self, timeout: float = 60.0, wait: bool = True) -> Component:
        """Start the component (nothing happens if it runs) and, with ``wait``, wait until ready."""
        if self.is_running():
            return self
        self._launch()
        if wait:
            self.wait_ready(timeout)
        return self

    def _launch(self) -> None:
        self.write_config()
        self._log_offsets = {
            path: path.stat().st_size if path.exists() else 0 for path in self.log_paths()
        }
        self.stdout_log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.stdout_log, "ab") as out:
            out.write(f"$ {shlex.join(self.display_command())}\n".encode())
        popen = spawn(self.argv(), self.environment(), self.stdout_log, self.base_dir)
        self.process = ManagedProcess.from_popen(
            f"{self.TYPE} {self.name}", popen, owner=self.owner
        )
        self._hold_ports(popen.pid)

    def wait_ready(self, timeout: float = 60.0) -> float:
        """Block until :meth:`probe` passes; return the seconds it took.

        A component that exits while starting, or is not ready in time, raises its
        ``START_ERROR`` with its log excerpt; one that exited because a port was taken (another
        program bound it between the reservation and the start) is started again on fresh
        ports, as long as the lab chose all of its ports.
        """
        started = time.monotonic()
        deadline = started + timeout
        retries = self.PORT_RETRIES if self._movable else 0
        last_error: Exception | None = None
        while True:
            if not self.is_running():
                if retries and self.port_clash(self._new_output()):
                    retries -= 1
                    self._move_ports()
                    continue
                raise self.START_ERROR(
                    f"{self.TYPE} {self.name} exited while starting.\n{self.start_report()}"
                )
            try:
                self.probe()
                self._movable = False  # from now on its ports are its address
                return time.monotonic() - started
            except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
                last_error = exc
            if time.monotonic() >= deadline:
                hint = self.start_hint()
                raise self.START_ERROR(
                    f"{self.TYPE} {self.name} was not ready within {timeout:.0f} s (last probe: "
                    f"{type(last_error).__name__}: {last_error}).{' ' + hint if hint else ''}\n"
                    f"{self.start_report()}"
                )
            time.sleep(self.PROBE_INTERVAL)

    def _move_ports(self) -> None:
        """Start again on fresh ports after "address in use"."""
        self.kill()
        self._hold_ports(None)
        self._reserve(list(self.PORTS))
        self._launch()

    def _new_output(self) -> str:
        parts = []
        for path in self.log_paths():
            if path.exists():
                data = path.read_bytes()
                offset = self._log_offsets.get(path, 0)
                parts.append(data[offset if offset <= len(data) else 0 :].decode(errors="replace"))
        return "\n".join(parts)

    def start_report(self) -> str:
        """What the component's logs say since its last start: the first error-looking lines of
        each (the cause) and its last lines (how it ended)."""
        parts = []
        for path in self.log_paths():
            if not path.exists():
                continue
            data = path.read_bytes()
            offset = self._log_offsets.get(path, 0)
            offset = offset if offset <= len(data) else 0  # the file was cut since: all of it
            text = data[offset:].decode(errors="replace")
            if text.strip():
                since = " since this start" if offset else ""
                parts.append(
                    f"First error lines and last lines of {path}{since}:\n"
                    + log_excerpt(text, first_line=data[:offset].count(b"\n") + 1)
                )
        return "\n".join(parts) or f"(nothing logged in {self.base_dir})"

    def tail(self, lines: int = 20) -> str:
        """The last lines of the component's logs."""
        out: list[str] = []
        for path in self.log_paths():
            if path.exists():
                out.extend(path.read_text(errors="replace").splitlines()[-lines:])
        return "\n".join(out[-lines:])

    def stop(self, timeout: float | None = None, *, keep_ports: bool = True) -> None:
        """Graceful stop; killed after ``timeout`` (default :attr:`STOP_TIMEOUT`) seconds.

        ``keep_ports`` keeps its ports reserved for this process, so that it can be started
        again on the same addresses (a broker restart); the lab's teardown releases them.
        """
        if self.is_running():
            self.request_stop()
            if not self.process.wait_gone(self.STOP_TIMEOUT if timeout is None else timeout):
                self.kill(keep_ports=keep_ports)
                return
        self._after_stop(keep_ports)

    def kill(self, *, keep_ports: bool = True) -> None:
        """SIGKILL to the component's whole process group: a crash, nothing flushed."""
        if self.process is not None:
            self.process.signal_group(signal.SIGKILL)
            self.process.wait_gone(10.0)
        self._after_stop(keep_ports)

    def _after_stop(self, keep_ports: bool) -> None:
        if self.process is not None:
            self.process.kill_stragglers()
        self._hold_ports(os.getpid() if keep_ports else None)

    # -- the state file ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = {
            "type": self.TYPE,
            "name": self.name,
            "base_dir": str(self.base_dir),
            "ports": dict(self.ports),
            "owner": self.owner,
            "mark": self.mark,
            "process": self.process.to_dict() if self.process else None,
        }
        for field in self.FIELDS:
            value = getattr(self, field)
            data[field] = str(value) if isinstance(value, Path) else value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Component:
        target = component_class(data["type"]) if cls is Component else cls
        obj = target.__new__(target)
        proc = data.get("process")
        Component.__init__(
            obj,
            data["name"],
            data["base_dir"],
            ports=data.get("ports") or {},
            process=ManagedProcess.from_dict(proc) if proc else None,
            owner=data.get("owner"),
            mark=data.get("mark"),
        )
        obj._movable = False
        for field in target.FIELDS:
            setattr(obj, field, data.get(field))
        obj._restored()
        return obj

    def _restored(self) -> None:
        """Turn the fields read back from the state file into their types."""


class Program(Component):
    """A plain program: its command line, and a probe given by whoever starts it (e.g. the
    benchmark's raw responder). The probe is not kept in the state file; the stop is."""

    TYPE = "program"
    FIELDS = ("args",)

    def __init__(
        self,
        name: str,
        base_dir: Path | str,
        args: list[str],
        *,
        ports: Iterable[str] = (),
        env: dict[str, str] | None = None,
        probe: Callable[[Program], Any] | None = None,
        owner: int | None = None,
        mark: str | None = None,
    ):
        """``ports`` names the ports to reserve (in :data:`SERVICE_PORTS`); ``args`` may refer
        to them as ``{name}``, e.g. ``["python", "-m", "http.server", "{http}"]``. ``probe``
        is called with the program and raises until it serves (e.g. :func:`http_probe`)."""
        self.PORTS = {port: SERVICE_PORTS for port in ports}  # type: ignore[misc]
        super().__init__(name, base_dir, owner=owner, mark=mark)
        self.args = list(args)
        self._env = env
        self._probe = probe

    def argv(self) -> list[str]:
        return [arg.format(**self.ports) if "{" in arg else arg for arg in self.args]

    def environment(self) -> dict[str, str]:
        env = super().environment()
        env.update(self._env or {})
        return env

    def probe(self) -> None:
        if self._probe is not None:
            self._probe(self)

    def _restored(self) -> None:
        self._env, self._probe = None, None


def http_probe(url: str, timeout: float = 1.0) -> Callable[[Component], None]:
    """A probe that passes when ``url`` (``{port}`` placeholders filled from the component's
    ports) answers HTTP with a status below 500, without any proxy from the environment."""

    def probe(component: Component) -> None:
        import requests

        with requests.Session() as http:
            http.trust_env = False
            resp = http.get(url.format(**component.ports), timeout=timeout)
            if resp.status_code >= 500:
                raise NotReady(f"{url} answered {resp.status_code}")

    return probe


def stop_components(components: Iterable[Component], timeout: float = 30.0) -> None:
    """Stop many components as the lab's teardown does: by ``STOP_ORDER`` (workers, then nodes,
    then epmd), each group asked at once and waited for together; their ports released."""
    groups: dict[int, list[Component]] = {}
    for component in components:
        groups.setdefault(component.STOP_ORDER, []).append(component)
    for order in sorted(groups):
        group = groups[order]
        for member in group:
            if member.is_running():
                member.request_stop()
        deadline = time.monotonic() + timeout
        for member in group:
            proc = member.process
            if proc is not None and not proc.wait_gone(max(0.1, deadline - time.monotonic())):
                member.kill(keep_ports=False)
            else:
                member._after_stop(keep_ports=False)


def process_gone(proc: psutil.Process) -> bool:
    """Whether a process has exited (a zombie has: only its exit status is left)."""
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
