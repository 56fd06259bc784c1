"""``make check`` on this machine (issue 26): every check passes within a minute and leaves
nothing running; with HAProxy missing, the answer is one FAIL line that says so and how to fix
it, and the status is not 0."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from mpsoa_lab.plumbing.processes import MANAGED_MARK

pytestmark = [pytest.mark.integration]
ROOT = Path(__file__).resolve().parents[2]


def _check(tmp_path: Path, **env: str) -> tuple[int, list[str], float]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MPSOA_")}
    environ.update(MPSOA_LAB_HOME=str(tmp_path / "home"), **env)
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "mpsoa_lab", "check"], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    return done.returncode, done.stdout.splitlines(), time.monotonic() - t0


def _scratch_processes() -> list[int]:
    """Processes a check's scratch lab started (marked with its home, mpsoa-check-*)."""
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if "mpsoa-check-" in proc.environ().get(MANAGED_MARK, ""):
                found.append(proc.pid)
    return found


def test_make_check_passes_here_within_a_minute_and_leaves_nothing(tmp_path):
    status, lines, took = _check(tmp_path)
    assert status == 0, "\n".join(lines)
    checks = lines[:-1]
    names = [line.split()[1] for line in checks]
    assert names == ["python", "rabbitmq-server", "erlang", "haproxy", "wrk", "ports", "memory",
                     "disk", "nodes", "worker", "edge"]  # fmt: skip
    assert all(line.startswith("ok ") for line in checks), lines
    assert "this machine can run the lab" in lines[-1]
    assert took < 60, f"make check took {took:.0f} s (issue 26: under 60 s on this machine)"
    assert not _scratch_processes()
    assert not list(Path(tempfile.gettempdir()).glob("mpsoa-check-*"))  # its scratch home is gone


@pytest.mark.beside_others
def test_a_missing_haproxy_is_one_line_with_its_fix(tmp_path):
    status, lines, _ = _check(tmp_path, MPSOA_HAPROXY=str(tmp_path / "no" / "haproxy"))
    assert status == 1, "\n".join(lines)
    failed = [line for line in lines if line.startswith("FAIL")]
    assert len(failed) == 1 and failed[0].split()[1] == "haproxy", lines
    assert "is not an executable file" in failed[0] and "fix: Install it with:" in failed[0]
    assert "1 problem(s): haproxy" in lines[-1]


@pytest.mark.beside_others
def test_on_brokers_given_by_url_it_checks_them_instead_of_starting_nodes(lab, tmp_path):
    status, lines, _ = _check(tmp_path, MPSOA_SYNC_BROKER_URL=lab.sync.url,
                              MPSOA_ASYNC_BROKER_URL=lab.async_.url)  # fmt: skip
    assert status == 0, "\n".join(lines)
    assert [line.split()[1:3] for line in lines[-4:-1]] == [
        ["brokers", "by"],
        ["worker", "mplogin.sync"],
        ["edge", "GET"],
    ]
    status, lines, _ = _check(tmp_path, MPSOA_SYNC_BROKER_URL="amqp://guest:guest@127.0.0.1:9//",
                              MPSOA_ASYNC_BROKER_URL="amqp://guest:guest@127.0.0.1:9//")  # fmt: skip
    assert status == 1
    failed = [line for line in lines if line.startswith("FAIL")]
    assert len(failed) == 1 and "BrokerUnreachable" in failed[0] and "127.0.0.1:9" in failed[0]
