"""The state file of a running lab, ``<home>/lab.json``, and the processes holding the lab.

The running lab (:mod:`mpsoa_lab.running.lab`) writes it; whatever only needs to find the lab's
brokers (a service started by ``celery -A``, the reaper, ``python -m mpsoa_lab status``) reads
it from here, without importing the lab itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import settings as settings_mod
from .processes import ManagedProcess, process_started
from .settings import Settings, with_vhost

__all__ = ["StateFile", "running_lab_urls", "space_brokers", "space_nodes"]


class StateFile:
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
        started = process_started(pid)
        if started is None:
            raise ProcessLookupError(f"process {pid} is not running: it cannot hold the lab")
        (self.holders / str(pid)).write_text(repr(started))

    def remove_holder(self, pid: int) -> None:
        (self.holders / str(pid)).unlink(missing_ok=True)

    def live_holders(self, prune: bool = True) -> list[int]:
        """Holders still running; files of dead ones are removed on the way unless ``prune`` is
        False (a command that only reads)."""
        alive = []
        if not self.holders.exists():
            return alive
        for entry in self.holders.iterdir():
            try:
                pid, created = int(entry.name), float(entry.read_text() or 0)
            except (ValueError, OSError):
                if prune:
                    entry.unlink(missing_ok=True)
                continue
            if ManagedProcess("holder", pid, created).is_running():
                alive.append(pid)
            elif prune:
                entry.unlink(missing_ok=True)
        return alive


def space_nodes(state: dict[str, Any], space: str) -> dict[str, str]:
    """The component key of each role's node for ``space``: its own nodes, or the shared ones."""
    own = state.get("spaces", {}).get(space, {}).get("nodes")
    return own or state.get("nodes", {})


def space_brokers(state: dict[str, Any], space: str) -> dict[str, dict[str, Any]]:
    """Each role's broker (``url`` at vhost ``/``, ``management_url``) for ``space``."""
    own = state.get("spaces", {}).get(space, {}).get("brokers")
    return own or state["brokers"]


def running_lab_urls(settings: Settings | None = None) -> dict[str, str] | None:
    """The broker URLs of the lab running under ``MPSOA_LAB_HOME``, in the settings' space, or
    None."""
    settings = settings or settings_mod.load()
    state = StateFile(settings.home).read()
    if not state:
        return None
    return {
        role: with_vhost(broker["url"], settings.vhost)
        if not state.get("external")
        else broker["url"]
        for role, broker in space_brokers(state, settings.space).items()
    }
