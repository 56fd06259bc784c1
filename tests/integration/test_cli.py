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


def _up(env: dict[str, str]) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-m", "mpsoa_lab", "up"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=_as_at_a_terminal,
    )
    assert holder.stdout.readline().strip() == "The lab is up."
    return holder


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


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_up_stops_the_lab_on_sigterm_sighup_and_sigint(tmp_path, sig):
    holder = _up(_env(tmp_path))
    try:
        holder.send_signal(sig)
        out = holder.communicate(timeout=60)[0]
    finally:
        holder.kill()
        holder.wait()
    assert holder.returncode == 0 and "Lab stopped." in out
    assert _gone(tmp_path) == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGKILL])
def test_run_stops_its_command_and_the_lab_on_every_signal(tmp_path, sig):
    env = _env(tmp_path, MPSOA_LAB_GRACE="1")
    command = [sys.executable, "-c", "import time; print('child up', flush=True); time.sleep(300)"]
    run = subprocess.Popen(
        [sys.executable, "-m", "mpsoa_lab", "run", "--", *command],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=_as_at_a_terminal,
    )
    try:
        lines = []
        while len(lines) < 20 and "child up" not in "".join(lines):
            lines.append(run.stdout.readline())
        assert "child up" in lines[-1], lines
        (child,) = [  # run's other children are the lab's: epmd, the nodes, the reaper
            p for p in psutil.Process(run.pid).children() if "child up" in " ".join(p.cmdline())
        ]
        run.send_signal(sig)
        run.wait(timeout=60)
        child.wait(timeout=30)  # gone, whether run stopped it or the kernel told it run died
    finally:
        run.kill()
        run.wait()
    assert _gone(tmp_path, 40) == []


def _listening(pids: set[int]) -> list[tuple[str, int]]:
    return [
        (c.laddr.ip, c.laddr.port)
        for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.pid in pids
    ]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_edge_stops_what_it_started_on_every_signal_and_listens_on_loopback(tmp_path, sig):
    edge = subprocess.Popen(
        [sys.executable, "-m", "mpsoa_lab", "edge", "--no-workers"],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=_as_at_a_terminal,
    )
    try:
        lines = [edge.stdout.readline() for _ in range(12)]
        assert any("The edge answers on http://127.0.0.1:" in line for line in lines), lines
        procs = managed_processes(tmp_path)
        listening = _listening({p.pid for p in procs})
        assert len(listening) >= 8  # the nodes' and epmd's, and the edge's
        assert all(ipaddress.ip_address(ip).is_loopback for ip, _ in listening), listening
        edge.send_signal(sig)
        out = edge.communicate(timeout=60)[0]
    finally:
        edge.kill()
        edge.wait()
    assert edge.returncode == 0 and "Lab stopped." in out
    assert _gone(tmp_path) == [] and _left(procs) == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_make_lab_stops_jupyterlab_and_the_lab_on_every_signal(tmp_path, sig):
    """The README's command as a newcomer runs it, then stopped: SIGTERM to make (``kill``), and
    SIGINT and SIGHUP to its whole process group, as a terminal sends Ctrl-C and a hang-up to
    the job in its foreground. JupyterLab (on loopback) and the lab are gone, and nothing
    listens any more."""
    from mpsoa_lab.plumbing.node import free_port

    repo = Path(__file__).resolve().parents[2]
    port = free_port()
    args = f"--allow-root --no-browser --ServerApp.port={port} --ServerApp.port_retries=0"
    make = subprocess.Popen(
        ["make", "--no-print-directory", "-C", str(repo), "lab", f"JUPYTER_ARGS={args}"],
        env=_env(tmp_path, MPSOA_LAB_GRACE="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        stdin=subprocess.DEVNULL,  # JupyterLab asks before it stops on Ctrl-C at a terminal
        start_new_session=True,  # a process group of its own, as a terminal's job
        preexec_fn=_as_at_a_terminal,
    )
    try:
        deadline, seen = time.monotonic() + 120, []
        while time.monotonic() < deadline and f":{port}/lab" not in "".join(seen):
            seen.append(make.stdout.readline())
        assert f":{port}/lab" in "".join(seen), "".join(seen)
        # Processes, not pids: pids wrap around at 32768 here, and the suite spawns many.
        procs = psutil.Process(make.pid).children(recursive=True) + managed_processes(tmp_path)
        lab_and_jupyter = {p.pid for p in procs}
        listening = _listening(lab_and_jupyter)
        assert port in {p for _, p in listening}
        assert all(ipaddress.ip_address(ip).is_loopback for ip, _ in listening), listening
        if sig == signal.SIGTERM:
            make.send_signal(sig)
        else:
            os.killpg(make.pid, sig)
        out = make.communicate(timeout=90)[0]
    finally:
        make.kill()
        make.wait()
    assert "Lab stopped." in out, out[-2000:]
    assert _gone(tmp_path, 40) == []
    assert _left(procs) == []
    assert _listening({p.pid for p in procs if p.is_running()}) == []


def _left(procs: list[psutil.Process]) -> list[str]:
    """Which of ``procs`` still run (the same processes: ``is_running`` checks their start time,
    so a reused pid is not taken for them; zombies aside), with their command lines."""
    left = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                left.append(f"{proc.pid} {' '.join(proc.cmdline())[:120]} (parent {proc.ppid()})")
    return left
