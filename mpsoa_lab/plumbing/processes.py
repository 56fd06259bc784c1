"""Processes the lab starts: who they are, how to stop them, and how to find leftovers.

Every process the lab starts runs in a process group of its own (so a kill reaches its
children too) and carries :data:`MANAGED_MARK` in its environment, set to the lab home, so that
anything left behind can be found by it (``managed_processes(home)``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

__all__ = [
    "ManagedProcess",
    "process_started",
    "same_start",
    "MANAGED_MARK",
    "clean_env",
    "managed_processes",
    "managed_commands",
    "process_kind",
    "spawn",
]

#: Set in the environment of every process the lab starts, so a leak can be found by it.
MANAGED_MARK = "MPSOA_LAB_MANAGED"


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
#: A start time above this is seconds since the epoch (a state file written before start times
#: were counted from boot): a machine would have to be up for 31 years to count this far.
_EPOCH_FROM = 1e9


def process_started(pid: int) -> float | None:
    """When process ``pid`` started, as a number that never changes while it runs; None if it
    is gone (a zombie is gone).

    On Linux: seconds since boot, from the start time the kernel keeps in ``/proc/<pid>/stat``
    (in clock ticks). Not psutil's ``create_time()``, which adds the boot time to it, and
    recomputes the boot time from the wall clock at every call: a clock that is stepped or
    slewed across a second (NTP, a virtual machine resumed) moved every create time by a
    second, every process the lab started looked like another one, and the reaper stopped
    the lab under its holders. Elsewhere (macOS keeps the start time as a fixed timestamp),
    psutil's ``create_time()``.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except FileNotFoundError:  # no such process, or no /proc (macOS): ask psutil
        if os.path.isdir("/proc/self"):
            return None
        try:
            proc = psutil.Process(pid)
            return None if proc.status() == psutil.STATUS_ZOMBIE else proc.create_time()
        except psutil.NoSuchProcess:
            return None
    except OSError:
        return None
    fields = stat[stat.rindex(b")") + 2 :].split()  # after "pid (comm) ": state is field 3
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19]) / _CLOCK_TICKS  # field 22: starttime


def same_start(recorded: float, pid: int) -> bool:
    """Whether process ``pid`` runs now and is the one that started at ``recorded`` (a value of
    :func:`process_started`), not another that reuses its pid."""
    if recorded > _EPOCH_FROM and os.path.isdir("/proc/self"):  # an older state file's value
        try:
            return abs(psutil.Process(pid).create_time() - recorded) <= 1.0
        except psutil.Error:
            return False
    started = process_started(pid)
    return started is not None and abs(started - recorded) < 0.01


def clean_env(home: Path | str | None = None) -> dict[str, str]:
    """The caller's environment without RabbitMQ or Erlang settings that would leak into a node,
    marked with :data:`MANAGED_MARK` (the lab home) so leftovers can be found."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RABBITMQ_", "ERL_", "MPSOA_SYNC_", "MPSOA_ASYNC_"))
    }
    if home is not None:
        env[MANAGED_MARK] = str(home)
    return env


def managed_processes(home: Path | str) -> list[psutil.Process]:
    """Processes running now that the lab under ``home`` started (and their children).

    A zombie (exited, not yet waited for by its parent) is not running and is left out. The list
    is a snapshot: a short-lived helper of a RabbitMQ node (see :func:`process_kind`) may exit
    right after it, so read anything more from these processes with :func:`managed_commands`
    or :func:`process_kind`, which take that into account.
    """
    found = []
    for proc in psutil.process_iter():
        try:
            if (
                proc.environ().get(MANAGED_MARK) == str(home)
                and proc.status() != psutil.STATUS_ZOMBIE
            ):
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


def managed_commands(home: Path | str) -> dict[int, str]:
    """The command line of each process :func:`managed_processes` finds, by pid.

    A process that exits between being found and being read is left out, not an error.
    """
    commands = {}
    for proc in managed_processes(home):
        try:
            commands[proc.pid] = " ".join(proc.cmdline())
        except (psutil.Error, OSError):
            continue
    return commands


def process_kind(proc: psutil.Process) -> str:
    """What one of the lab's processes is, read from its command line.

    Besides what the lab starts itself, a RabbitMQ node starts helpers: ``erl_child_setup`` and
    ``inet_gethost`` (Erlang's own), a shell for its disk monitor, and, at boot and then every
    60 s (``rabbit_epmd_monitor``), a second Erlang VM that lives well under a second,
    ``erl -sname epmd-starter-N -s erlang halt``, only to make sure epmd runs. Counting every
    ``beam.smp`` as a node therefore counts one node too many now and then.
    """
    try:
        cmd = proc.cmdline()
        name = proc.name()
        parent = proc.parent()
        parent_cmd = " ".join(parent.cmdline()) if parent is not None else ""
    except (psutil.Error, OSError):
        return "gone"
    line = " ".join(cmd)
    if "celery" in line and " worker" in line:
        same_as_parent = "celery" in parent_cmd and " worker" in parent_cmd
        return "celery worker (pool child)" if same_as_parent else "celery worker"
    if "mpsoa_lab.running.reaper" in line:
        return "reaper"
    if name == "epmd":
        return "epmd"
    if name.startswith("beam"):
        if "-sname" in cmd and any(a.startswith("epmd-starter-") for a in cmd):
            return "epmd starter (RabbitMQ, short-lived)"
        if "rabbit" in cmd and "boot" in cmd:
            return "RabbitMQ node"
        return "RabbitMQ CLI" if "escript" in cmd else "Erlang VM (other)"
    if "rabbitmq-server" in line:
        return "RabbitMQ node (its start script)"
    return "RabbitMQ node helper" if name in {"erl_child_setup", "inet_gethost", "sh"} else name


@dataclass
class ManagedProcess:
    """A process the lab started: pid plus start time (:func:`process_started`, kept as
    ``create_time`` in state files), so a reused pid is never mistaken for it."""

    name: str
    pid: int
    create_time: float
    owner: int | None = None  # pid whose death ends this process; None: lives as long as the lab

    @classmethod
    def from_popen(
        cls, name: str, proc: subprocess.Popen, owner: int | None = None
    ) -> ManagedProcess:
        started = process_started(proc.pid)
        if started is None:  # it ended already: nothing that runs now can be mistaken for it
            started = -1.0
        return cls(name, proc.pid, started, owner)

    def process(self) -> psutil.Process | None:
        if not same_start(self.create_time, self.pid):
            return None
        try:
            return psutil.Process(self.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None

    def is_running(self) -> bool:
        return self.process() is not None

    def send(self, sig: int, *, group: bool = False) -> None:
        """Send ``sig`` to this process only, or with ``group=True`` to the whole process group
        it leads (start_new_session=True): its children too."""
        if self.process() is None:
            return
        try:
            (os.killpg if group else os.kill)(self.pid, sig)
        except ProcessLookupError:
            pass

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to the whole process group (children included)."""
        self.send(sig, group=True)

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
        """Ask the process to stop and let it stop its children its own way (a Celery worker
        finishes the tasks in hand: signalling its pool processes too would kill them mid-task);
        after ``timeout`` seconds, or once it is gone, SIGKILL whatever is left of its group."""
        self.send(sig)
        if not self.wait_gone(timeout):
            self.signal_group(signal.SIGKILL)
            self.wait_gone(5.0)
        self.kill_stragglers()

    def kill_stragglers(self) -> None:
        """SIGKILL any process left in the group after its leader has gone."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pid": self.pid,
            "create_time": self.create_time,
            "owner": self.owner,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ManagedProcess:
        return cls(data["name"], data["pid"], data["create_time"], data.get("owner"))


def _reap(pid: int) -> None:
    """Collect the exit status of our own child, so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def spawn(args: list[str], env: dict[str, str], log: Path, cwd: Path) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(
            args,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
