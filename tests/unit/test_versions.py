"""The RabbitMQ releases the lab runs on: one range, said and enforced by the set-up script and
by the lab when its nodes start."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from mpsoa_lab import UnsupportedRabbitMQ
from mpsoa_lab.plumbing.versions import SUPPORTED, check_supported, parse_version

TOOLS = Path(__file__).resolve().parents[2] / "tools"


@pytest.mark.parametrize("version", ["3.10.8", "3.13.7", "4.0.5", "4.2.1", "4.3.0"])
def test_the_releases_in_range_pass(version):
    check_supported(version)


@pytest.mark.parametrize(
    ("version", "why"),
    [("3.8.9", "older than the lab needs"), ("3.9.13", "older"), ("5.0.0", "not been written for")],
)
def test_the_others_are_refused_saying_why_and_what_to_do(version, why):
    with pytest.raises(UnsupportedRabbitMQ) as caught:
        check_supported(version, "the server")
    text = str(caught.value)
    assert f"the server is RabbitMQ {version}" in text and why in text
    assert "3.10 up to (not including) 5.0" in text and "MPSOA_RABBITMQ_SERVER" in text


def test_versions_are_read_as_numbers():
    assert parse_version("3.13.7+rc.1") == (3, 13, 7) and parse_version("4.0.5") == (4, 0, 5)
    assert parse_version("3.9.13")[:2] < (3, 10)  # not compared as text


def test_the_set_up_script_says_the_same_range():
    script = (TOOLS / "ensure-rabbitmq.sh").read_text()
    lowest = re.search(r"^LOWEST=(\d+)\.(\d+)$", script, re.M)
    refused = re.search(r"^REFUSED_FROM=(\d+)\.(\d+)$", script, re.M)
    assert lowest and refused
    found = (tuple(map(int, lowest.groups())), tuple(map(int, refused.groups())))
    assert found == SUPPORTED


def _fake_server(tmp_path: Path, version: str) -> Path:
    """A rabbitmq-server in the generic layout: bin/ beside lib/rabbitmq_server-<version>."""
    (tmp_path / "lib" / f"rabbitmq_server-{version}").mkdir(parents=True)
    server = tmp_path / "bin" / "rabbitmq-server"
    server.parent.mkdir()
    server.write_text("#!/bin/sh\n")
    server.chmod(0o755)
    return server


@pytest.mark.parametrize(("version", "status"), [("3.10.8", 0), ("4.0.5", 0), ("3.9.13", 1)])
def test_the_set_up_script_states_the_range_and_refuses_others(tmp_path, version, status):
    done = subprocess.run(
        ["sh", str(TOOLS / "ensure-rabbitmq.sh")],
        env={
            "PATH": "/usr/bin:/bin",
            "MPSOA_RABBITMQ_SERVER": str(_fake_server(tmp_path, version)),
        },
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == status, done.stderr
    said = done.stdout + done.stderr
    assert f"RabbitMQ {version}" in said and "3.10 up to (not including) 5.0" in said
