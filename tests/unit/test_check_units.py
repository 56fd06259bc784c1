"""``make check``'s lines without running the lab: what each check says, when it fails, and its
fix; the lab's own run is skipped (and said so) when there is no RabbitMQ server."""

from __future__ import annotations

import io

import pytest

from mpsoa_lab.plumbing.errors import RabbitMQNotInstalled
from mpsoa_lab.plumbing.ports import PortAllocator
from mpsoa_lab.running import check


def test_a_line_says_ok_or_fail_with_its_fix_on_one_line():
    assert check.format_check(check.Check("wrk", True, "4.1.0")).split() == ["ok", "wrk", "4.1.0"]
    line = check.format_check(check.Check("wrk", False, "not found\non PATH", "apt-get install"))
    assert line.startswith("FAIL  wrk") and line.endswith("; fix: apt-get install")
    assert "\n" not in line


def test_an_old_python_fails_with_the_version_to_install():
    assert check.check_python((3, 11, 7)).ok
    old = check.check_python((3, 9, 18))
    assert not old.ok and "3.9.18, older than 3.10" in old.found and "3.10" in old.fix


@pytest.mark.parametrize("gib, ok", [(0.5, False), (1.99, False), (2.0, True), (20, True)])
def test_memory_and_disk_have_a_floor(tmp_path, gib, ok):
    size = int(gib * 2**30)
    assert check.check_memory(available=size).ok is ok
    disk = check.check_disk(tmp_path / "not-made-yet", free=size)
    assert disk.ok is ok and str(tmp_path) in disk.found  # the nearest folder that exists
    if not ok:
        assert "MPSOA_LAB_HOME" in disk.fix and "GiB" in check.check_memory(available=size).fix


def test_ports_are_reserved_and_given_back(tmp_path):
    allocator = PortAllocator(tmp_path / "ports.json")
    result = check.check_ports(allocator)
    assert result.found.startswith("10 free in each of 22000-29999, 20000-21999")
    assert allocator.reserved() == {}  # released again


def test_wrk_missing_is_named_with_its_fix(monkeypatch):
    monkeypatch.setattr(check.shutil, "which", lambda name, **kw: None)
    result = check.check_wrk()
    assert not result.ok and "wrk" in result.fix and "make setup" in result.fix


def test_an_error_becomes_a_line_and_its_advice_the_fix():
    error = RabbitMQNotInstalled("rabbitmq-server is not installed\nInstall it with:  apt-get x")
    failed = check._failed("rabbitmq-server", error)
    assert failed.found == "RabbitMQNotInstalled: rabbitmq-server is not installed"
    assert failed.fix == "Install it with:  apt-get x"
    log = check._failed("worker", RuntimeError("not ready\nFirst error lines of /x.log:"))
    assert log.fix == ""  # only a line that says what to do is a fix


def test_without_a_server_the_lab_is_not_started_and_the_answer_says_so(monkeypatch, tmp_path):
    def missing():
        raise RabbitMQNotInstalled("rabbitmq-server is not installed\nInstall it with: apt-get")

    monkeypatch.setattr(check, "check_rabbitmq", missing)
    monkeypatch.setattr(check, "check_running", lambda env: pytest.fail("started the lab"))
    out = io.StringIO()
    status = check.main({"MPSOA_LAB_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}, out)
    lines = out.getvalue().splitlines()
    assert status == 1
    assert any(line.startswith("FAIL  rabbitmq-server") for line in lines)
    nodes = next(line for line in lines if line.split()[1] == "nodes")
    assert "not tried" in nodes and "Install it with" in nodes
    assert "problem(s)" in lines[-1] and "rabbitmq-server" in lines[-1]
