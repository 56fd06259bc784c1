"""The lab from a terminal (issue 30): commands that read only read, every signal stops what a
command started, and everything the lab starts listens on 127.0.0.1 only.

Each test runs ``python -m mpsoa_lab`` in a lab home of its own, next to the session's lab."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from mpsoa_lab.plumbing.processes import managed_commands, managed_processes

#: Asserts nothing that another test's load could change: make test runs it beside others.
pytestmark = pytest.mark.beside_others


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MPSOA_")}
    return {**env, "MPSOA_LAB_HOME": str(home), **extra}


def _cli(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mpsoa_lab", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _gone(home: Path, timeout: float = 30) -> list[str]:
    deadline = time.monotonic() + timeout
    while managed_processes(home) and time.monotonic() < deadline:
        time.sleep(0.25)
    return [cmd[:100] for cmd in managed_commands(home).values()]


def _as_at_a_terminal() -> None:
    """In a child, before it executes: Ctrl-C's signal as a terminal gives it. A background job
    of a shell without job control inherits SIGINT ignored (a CI runner may be one), and Python
    then leaves it ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(env: dict[str, str], *args: str) -> subprocess.Popen:
    """``python -m mpsoa_lab ARGS`` started as at a terminal, its output read through a pipe."""
    return subprocess.Popen(
        [sys.executable, "-m", "mpsoa_lab", *args],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=_as_at_a_terminal,
    )


def _up(env: dict[str, str]) -> subprocess.Popen:
    holder = _start(env, "up")
    assert holder.stdout.readline().strip() == "The lab is up."
    return holder


#: The signals that stop a command: ``kill``'s, a closed terminal's and Ctrl-C's. Each test
#: below starts one command per signal, all at once, each in a lab home of its own, and then
#: signals each: the same checks as one after the other, the labs' starts and stops overlapping.
SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


def _homes(tmp_path: Path, signals: tuple[signal.Signals, ...] = SIGNALS) -> dict:
    homes = {sig: tmp_path / sig.name for sig in signals}
    for home in homes.values():
        home.mkdir()
    return homes


def _stop_all(procs: dict) -> None:
    for proc in procs.values():
        proc.kill()
        proc.wait()


def _nodes(home: Path) -> set[int]:
    return {pid for pid, cmd in managed_commands(home).items() if "rabbit" in cmd}


def test_status_and_env_with_no_lab_start_nothing(tmp_path):
    env = _env(tmp_path)
    status = _cli(env, "status")
    assert status.returncode == 1 and "No lab is running" in status.stdout
    assert "python -m mpsoa_lab up" in status.stdout
    exports = _cli(env, "env")
    assert exports.returncode == 1 and exports.stdout == ""
    assert (
        "no lab that stays up is running" in exports.stderr
        and "python -m mpsoa_lab up" in exports.stderr
    )
    assert managed_processes(tmp_path) == [] and not (tmp_path / "lab.json").exists()


def test_a_newcomer_s_terminals_leave_nothing_and_stop_no_lab_in_use(tmp_path):
    env = _env(tmp_path)
    holder = _up(env)
    try:
        nodes = _nodes(tmp_path)
        exports = _cli(env, "env")
        assert exports.returncode == 0, exports.stderr
        given = dict(
            line.removeprefix("export ").split("=", 1) for line in exports.stdout.splitlines()
        )
        assert set(given) == {
            f"MPSOA_{role}_{what}_URL"
            for role in ("SYNC", "ASYNC")
            for what in ("BROKER", "MANAGEMENT")
        }
        # status with those exported reads, and stops nothing (it used to tear the lab down)
        status = _cli({**env, **given}, "status")
        assert status.returncode == 0, status.stderr
        assert "runs its own nodes" in status.stdout and "holders:" in status.stdout
        # a process that asks for brokers given by URL is refused while the lab is held
        refused = subprocess.run(
            [sys.executable, "-c", "import mpsoa_lab; mpsoa_lab.up()"],
            env={**env, **given},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert refused.returncode != 0 and "LabInUse" in refused.stderr
        assert "Nothing was stopped" in refused.stderr
        assert _nodes(tmp_path) == nodes and holder.poll() is None
        # every listener of the lab is on loopback: AMQP, management, Erlang distribution, epmd
        listening = [
            (c.laddr.ip, c.laddr.port, c.pid)
            for c in psutil.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
            and c.pid in {p.pid for p in managed_processes(tmp_path)}
        ]
        assert len(listening) >= 7, listening  # epmd, and AMQP, management, dist for each node
        # (epmd listens on ::1 too, always: IPv6's loopback, also reachable from nowhere else)
        assert all(ipaddress.ip_address(ip).is_loopback for ip, _, _ in listening), listening
        # down is the command that stops a lab, whatever the environment says
        down = _cli({**env, **given}, "down")
        assert down.returncode == 0 and "Lab stopped." in down.stdout, down.stderr
        out = holder.communicate(timeout=60)[0]
    finally:
        holder.kill()
        holder.wait()
    assert holder.returncode == 0 and "stopped from elsewhere" in out
    assert _gone(tmp_path) == []


def test_up_stops_the_lab_on_sigterm_sighup_and_sigint(tmp_path):
    homes = _homes(tmp_path)
    holders = {sig: _start(_env(home), "up") for sig, home in homes.items()}
    try:
        for sig, holder in holders.items():
            assert holder.stdout.readline().strip() == "The lab is up.", sig.name
        for sig, holder in holders.items():
            holder.send_signal(sig)
        outs = {sig: holder.communicate(timeout=60)[0] for sig, holder in holders.items()}
    finally:
        _stop_all(holders)
    for sig, holder in holders.items():
        assert holder.returncode == 0 and "Lab stopped." in outs[sig], (sig.name, outs[sig])
        assert _gone(homes[sig]) == [], sig.name


def test_run_stops_its_command_and_the_lab_on_every_signal(tmp_path):
    homes = _homes(tmp_path, (*SIGNALS, signal.SIGKILL))
    command = [sys.executable, "-c", "import time; print('child up', flush=True); time.sleep(300)"]
    runs = {
        sig: _start(_env(home, MPSOA_LAB_GRACE="1"), "run", "--", *command)
        for sig, home in homes.items()
    }
    try:
        children = {}
        for sig, run in runs.items():
            lines = []
            while len(lines) < 20 and "child up" not in "".join(lines):
                lines.append(run.stdout.readline())
            assert "child up" in lines[-1], (sig.name, lines)
            (children[sig],) = [  # run's other children are the lab's: epmd, nodes, reaper
                p for p in psutil.Process(run.pid).children() if "child up" in " ".join(p.cmdline())
            ]
        for sig, run in runs.items():
            run.send_signal(sig)
        for sig, run in runs.items():
            run.wait(timeout=60)
            children[sig].wait(timeout=30)  # gone, whether run stopped it or the kernel told it
    finally:
        _stop_all(runs)
    for sig, home in homes.items():
        assert _gone(home, 40) == [], sig.name


def _listening(pids: set[int]) -> list[tuple[str, int]]:
    return [
        (c.laddr.ip, c.laddr.port)
        for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.pid in pids
    ]


def test_edge_stops_what_it_started_on_every_signal_and_listens_on_loopback(tmp_path):
    homes = _homes(tmp_path)
    edges = {sig: _start(_env(home), "edge", "--no-workers") for sig, home in homes.items()}
    try:
        procs = {}
        for sig, edge in edges.items():
            lines = [edge.stdout.readline() for _ in range(12)]
            assert any("The edge answers on http://127.0.0.1:" in line for line in lines), lines
            procs[sig] = managed_processes(homes[sig])
            listening = _listening({p.pid for p in procs[sig]})
            assert len(listening) >= 8  # the nodes' and epmd's, and the edge's
            assert all(ipaddress.ip_address(ip).is_loopback for ip, _ in listening), listening
        for sig, edge in edges.items():
            edge.send_signal(sig)
        outs = {sig: edge.communicate(timeout=60)[0] for sig, edge in edges.items()}
    finally:
        _stop_all(edges)
    for sig, edge in edges.items():
        assert edge.returncode == 0 and "Lab stopped." in outs[sig], (sig.name, outs[sig])
        assert _gone(homes[sig]) == [] and _left(procs[sig]) == [], sig.name


def test_make_lab_stops_jupyterlab_and_the_lab_on_every_signal(tmp_path):
    """The README's command as a newcomer runs it, then stopped: SIGTERM to make (``kill``), and
    SIGINT and SIGHUP to its whole process group, as a terminal sends Ctrl-C and a hang-up to
    the job in its foreground. JupyterLab (on loopback) and the lab are gone, and nothing
    listens any more."""
    from mpsoa_lab.plumbing.node import free_port

    repo = Path(__file__).resolve().parents[2]
    homes, makes, ports = _homes(tmp_path), {}, {}
    for sig, home in homes.items():
        ports[sig] = port = free_port()
        args = f"--allow-root --no-browser --ServerApp.port={port} --ServerApp.port_retries=0"
        makes[sig] = subprocess.Popen(
            ["make", "--no-print-directory", "-C", str(repo), "lab", f"JUPYTER_ARGS={args}"],
            env=_env(home, MPSOA_LAB_GRACE="1"),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            stdin=subprocess.DEVNULL,  # JupyterLab asks before it stops on Ctrl-C at a terminal
            start_new_session=True,  # a process group of its own, as a terminal's job
            preexec_fn=_as_at_a_terminal,
        )
    try:
        procs = {}
        for sig, make in makes.items():
            port, deadline, seen = ports[sig], time.monotonic() + 120, []
            while time.monotonic() < deadline and f":{port}/lab" not in "".join(seen):
                seen.append(make.stdout.readline())
            assert f":{port}/lab" in "".join(seen), (sig.name, "".join(seen))
            # Processes, not pids: pids wrap around at 32768 here, and the suite spawns many.
            procs[sig] = psutil.Process(make.pid).children(recursive=True)
            procs[sig] += managed_processes(homes[sig])
            listening = _listening({p.pid for p in procs[sig]})
            assert port in {p for _, p in listening}
            assert all(ipaddress.ip_address(ip).is_loopback for ip, _ in listening), listening
        for sig, make in makes.items():
            make.send_signal(sig) if sig == signal.SIGTERM else os.killpg(make.pid, sig)
        outs = {sig: make.communicate(timeout=90)[0] for sig, make in makes.items()}
    finally:
        _stop_all(makes)
    for sig, out in outs.items():
        assert "Lab stopped." in out, (sig.name, out[-2000:])
        assert _gone(homes[sig], 40) == [], sig.name
        assert _left(procs[sig]) == [], sig.name
        assert _listening({p.pid for p in procs[sig] if p.is_running()}) == [], sig.name


def _left(procs: list[psutil.Process]) -> list[str]:
    """Which of ``procs`` still run (the same processes: ``is_running`` checks their start time,
    so a reused pid is not taken for them; zombies aside), with their command lines."""
    left = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                left.append(f"{proc.pid} {' '.join(proc.cmdline())[:120]} (parent {proc.ppid()})")
    return left
