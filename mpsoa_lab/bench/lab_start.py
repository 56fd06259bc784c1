"""How long the lab takes to come up against how long its nodes take to boot, side by side.

In each round, in turn (which goes first alternates): ``python -m mpsoa_lab up`` in a fresh lab
home, timed from the command's start to its line "The lab is up" (the interpreter, the imports,
epmd, both nodes, the reaper and the space included), then stopped with SIGTERM; and the same
two nodes started *by hand*: an epmd of their own (as the lab starts one), the lab's config for
each node, both ``rabbitmq-server`` processes launched at once and polled every 20 ms until
each accepts AMQP and its management API answers (the readiness the lab waits for), nothing
else around them. The nodes by hand are recorded in the benchmark's lab, so its reaper stops
them if this process dies.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..plumbing.node import Epmd, RabbitMQNode
from ..plumbing.settings import ROLES

if TYPE_CHECKING:
    from ..running.lab import Lab

__all__ = ["lab_start", "TARGET"]

#: ``up`` may take at most this much longer than its two nodes' own boot.
TARGET = 1.10
POLL = 0.02


def _up_once(home: Path, timeout: float) -> float:
    """Seconds from starting ``python -m mpsoa_lab up`` to its line "The lab is up"."""
    env = {**os.environ, "MPSOA_LAB_HOME": str(home)}
    for name in ("MPSOA_SYNC_BROKER_URL", "MPSOA_ASYNC_BROKER_URL", "MPSOA_SPACE"):
        env.pop(name, None)
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mpsoa_lab", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "The lab is up" in line:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                break
        raise RuntimeError(f"python -m mpsoa_lab up did not come up in {home}: {line!r}")
    finally:
        proc.send_signal(signal.SIGTERM)  # it stops what it started, as on Ctrl-C
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _nodes_once(lab: Lab, home: Path, timeout: float) -> float:
    """Seconds from launching the lab's two nodes by hand until both are ready."""
    mark, tag = str(home), f"bench-{os.getpid()}-{home.name}"  # keys of their own in the lab
    started = time.monotonic()  # a node needs an epmd: the lab's start pays for one too
    epmd = Epmd(None, home, mark=mark, name=f"epmd-{tag}").start()
    lab.record(epmd)
    nodes = [
        RabbitMQNode(
            f"{role}-{tag}",
            home / "nodes" / role,
            epmd_port=epmd.port,
            erlang_home=home / "erlang",
            nodename=f"mpsoa-hand{os.getpid()}-{role}@localhost",
            server=lab.settings.rabbitmq_server,
            mark=mark,
        )
        for role in ROLES
    ]
    try:
        for node in nodes:
            node.start(wait=False)
            lab.record(node)
        waiting = list(nodes)
        while waiting:
            for node in list(waiting):
                try:
                    node.probe()
                    waiting.remove(node)
                except Exception:  # noqa: BLE001 - not yet
                    if not node.is_running():
                        raise RuntimeError(
                            f"{node.name} exited while booting:\n{node.tail()}"
                        ) from None
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"the nodes by hand were not ready within {timeout:.0f} s")
            if waiting:
                time.sleep(POLL)
        return time.monotonic() - started
    finally:
        for component in (*nodes, epmd):
            if component.is_running():
                component.stop()
            lab.forget(component)


def lab_start(
    lab: Lab, rounds: int, log: Callable[[str], None], timeout: float = 120.0
) -> dict[str, Any]:
    """``rounds`` of ``up`` and of the nodes by hand, alternating which goes first; the
    medians, the ratio of each round and its median, and whether it meets :data:`TARGET`.
    Skipped (``{"skipped": why}``) where no ``rabbitmq-server`` is installed."""
    from ..plumbing.errors import LabError
    from ..plumbing.install import find_rabbitmq_server

    try:
        find_rabbitmq_server(lab.settings.rabbitmq_server)
    except LabError as exc:
        return {"skipped": f"no rabbitmq-server to start nodes with: {exc}"}
    if rounds < 1:
        return {"skipped": "not in a quick run (make bench runs it)"}
    up_s: list[float] = []
    nodes_s: list[float] = []
    for i in range(rounds):
        order = ("up", "nodes") if i % 2 == 0 else ("nodes", "up")
        for what in order:
            home = Path(tempfile.mkdtemp(prefix=f"mpsoa-bench-{what}-"))
            try:
                if what == "up":
                    up_s.append(_up_once(home, timeout))
                else:
                    nodes_s.append(_nodes_once(lab, home, timeout))
            finally:
                shutil.rmtree(home, ignore_errors=True)
        log(f"lab start, round {i + 1}/{rounds}: up {up_s[-1]:.2f} s, nodes {nodes_s[-1]:.2f} s")
    ratios = [u / n for u, n in zip(up_s, nodes_s)]
    ratio = statistics.median(ratios)
    return {
        "rounds": rounds,
        "up_s": [round(x, 3) for x in up_s],
        "nodes_by_hand_s": [round(x, 3) for x in nodes_s],
        "up_median_s": round(statistics.median(up_s), 3),
        "nodes_median_s": round(statistics.median(nodes_s), 3),
        "ratios": [round(r, 3) for r in ratios],
        "ratio": round(ratio, 3),
        "target": TARGET,
        "met": ratio <= TARGET,
    }
