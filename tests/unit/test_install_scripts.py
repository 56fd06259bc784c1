"""The set-up scripts' install step (tools/install-packages.sh, sourced by tools/ensure-*.sh) on
each kind of machine, with fake `uname`, `id`, `apt-get`, `sudo` and `brew`: nothing is
installed, and no real package tool is on the PATH the scripts get."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[2] / "tools"

FAKES = {
    "uname": 'echo "$FAKE_OS"',
    "id": 'echo "$FAKE_UID"',
    "apt-get": 'echo "apt-get $* (DEBIAN_FRONTEND=${DEBIAN_FRONTEND:-})"',
    "brew": 'echo "brew $*"',
    "sudo": '[ "$1" = -n ] && shift; [ "$1" = true ] && exit 0; echo "sudo:"; exec "$@"',
}

# Another apt holding the lock (a second make, unattended-upgrades) is waited for, not an error.
WAIT = "-o DPkg::Lock::Timeout=300"


def machine(tmp_path: Path, os_name: str, uid: int, *tools: str) -> dict[str, str]:
    """The environment of a machine that runs ``os_name`` as ``uid`` and has ``tools`` (of
    apt-get, brew, sudo), and only the few real programs the scripts need besides."""
    fake, real = tmp_path / "fake", tmp_path / "real"
    fake.mkdir()
    real.mkdir()
    for name in ("uname", "id", *tools):
        (fake / name).write_text(f"#!/bin/sh\n{FAKES[name]}\n")
        (fake / name).chmod(0o755)
    for name in ("sh", "cat", "dirname"):
        (real / name).symlink_to(shutil.which(name))
    return {
        "PATH": f"{fake}:{real}",
        "HOME": str(tmp_path),
        "FAKE_OS": os_name,
        "FAKE_UID": str(uid),
    }


def install(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``install_packages`` sourced as the ensure scripts do, with a ``cannot_install`` that
    prints its reason and exits 3."""
    script = (
        'set -eu; cannot_install() { echo "cannot: $1"; exit 3; }; . "$1"; '
        'install_packages "a and b" "brew-a brew-b" "apt-a apt-b"'
    )
    return subprocess.run(
        ["sh", "-c", script, "sh", str(TOOLS / "install-packages.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize("uid, tools", [(0, ("apt-get",)), (1000, ("apt-get", "sudo"))])
def test_linux_installs_with_apt_get_as_root_or_with_sudo(tmp_path, uid, tools):
    done = install(machine(tmp_path, "Linux", uid, *tools))
    sudo = "sudo:\n" if uid else ""
    assert (done.returncode, done.stdout) == (
        0,
        "Installing a and b from the OS packages (apt-get install apt-a apt-b)...\n"
        f"{sudo}apt-get {WAIT} update -q (DEBIAN_FRONTEND=)\n"
        f"{sudo}apt-get {WAIT} install -y -q apt-a apt-b (DEBIAN_FRONTEND=noninteractive)\n",
    )


def test_macos_installs_with_homebrew(tmp_path):
    done = install(machine(tmp_path, "Darwin", 501, "brew"))
    assert (done.returncode, done.stdout) == (
        0,
        "Installing a and b with Homebrew...\nbrew install brew-a brew-b\n",
    )


@pytest.mark.parametrize(
    "os_name, uid, tools, reason",
    [
        ("Linux", 1000, ("apt-get",), "installing needs root, and sudo asks for a password"),
        ("Linux", 0, (), "no apt-get on this Linux"),
        ("Darwin", 501, (), "Homebrew is not installed"),
        ("FreeBSD", 0, ("apt-get",), "unknown OS FreeBSD"),
    ],
)
def test_a_machine_it_cannot_install_on_gets_the_reason(tmp_path, os_name, uid, tools, reason):
    done = install(machine(tmp_path, os_name, uid, *tools))
    assert (done.returncode, done.stdout) == (3, f"cannot: {reason}\n")


def test_ensure_rabbitmq_names_the_reason_and_the_commands(tmp_path):
    env = machine(tmp_path, "Linux", 0) | {"MPSOA_RABBITMQ_SERVER": str(tmp_path / "none")}
    done = subprocess.run(
        ["sh", str(TOOLS / "ensure-rabbitmq.sh")], env=env, capture_output=True, text=True
    )
    assert done.returncode == 1
    assert "could not install one here (no apt-get on this Linux)." in done.stderr
    assert "sudo apt-get install -y rabbitmq-server" in done.stderr


@pytest.mark.parametrize("option, code", [("", 1), ("--optional", 0)])
def test_ensure_haproxy_says_what_is_missing_and_optional_goes_on(tmp_path, option, code):
    """A copy of the script whose programs are not on any machine."""
    copy = tmp_path / "tools"
    copy.mkdir()
    shutil.copy(TOOLS / "install-packages.sh", copy)
    text = (TOOLS / "ensure-haproxy.sh").read_text()
    assert 'PACKAGES="haproxy wrk"\n' in text
    missing = text.replace('PACKAGES="haproxy wrk"', 'PACKAGES="mpsoa-none-a mpsoa-none-b"')
    (copy / "ensure-haproxy.sh").write_text(missing)
    done = subprocess.run(
        ["sh", str(copy / "ensure-haproxy.sh"), *([option] if option else [])],
        env=machine(tmp_path, "Darwin", 501),
        capture_output=True,
        text=True,
    )
    assert done.returncode == code
    assert "They could not be installed here: Homebrew is not installed." in done.stderr
    assert "brew install mpsoa-none-a mpsoa-none-b" in done.stderr


@pytest.mark.parametrize("option, code", [("", 1), ("--optional", 0)])
def test_ensure_browser_says_what_is_missing_and_how_to_install_it(tmp_path, option, code):
    """On a machine that cannot install (macOS without Homebrew), the script names what is
    missing and the commands for both systems."""
    copy = tmp_path / "tools"
    copy.mkdir()
    shutil.copy(TOOLS / "install-packages.sh", copy)
    text = (TOOLS / "ensure-browser.sh").read_text()
    assert 'PROGRAMS="chromium chromedriver"\n' in text
    (copy / "ensure-browser.sh").write_text(
        text.replace('PROGRAMS="chromium chromedriver"', 'PROGRAMS="mpsoa-none-c mpsoa-none-d"')
    )
    done = subprocess.run(
        ["sh", str(copy / "ensure-browser.sh"), *([option] if option else [])],
        env=machine(tmp_path, "Darwin", 501),
        capture_output=True,
        text=True,
    )
    assert done.returncode == code
    assert "(mpsoa-none-c mpsoa-none-d missing)" in done.stderr
    assert "could not be installed here: Homebrew is not installed." in done.stderr
    assert "sudo apt-get install -y chromium chromium-driver" in done.stderr


def test_ensure_browser_installs_debians_packages_as_root(tmp_path):
    copy = tmp_path / "tools"
    copy.mkdir()
    shutil.copy(TOOLS / "install-packages.sh", copy)
    text = (TOOLS / "ensure-browser.sh").read_text()
    (copy / "ensure-browser.sh").write_text(
        text.replace('PROGRAMS="chromium chromedriver"', 'PROGRAMS="mpsoa-none-c"')
    )
    done = subprocess.run(
        ["sh", str(copy / "ensure-browser.sh")],
        env=machine(tmp_path, "Linux", 0, "apt-get"),
        capture_output=True,
        text=True,
    )
    assert (
        "apt-get -o DPkg::Lock::Timeout=300 install -y -q chromium chromium-driver" in done.stdout
    )
    assert done.returncode == 1  # the fake apt-get installed nothing: still missing, said so
    assert "the install finished but mpsoa-none-c is still not found" in done.stderr
