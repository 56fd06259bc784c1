"""The GitHub Actions workflow a fork copies (issue 26, part 3) cannot run here: it is held to
the Makefile, the tools/ scripts and .ci/run instead. It installs from the distribution every
package make setup would, runs the same test command as .ci/run as a user who is not root, and
caches the virtual environment by the files make reinstalls it for."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "test.yml"


@pytest.fixture(scope="module")
def job():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    assert set(workflow["jobs"]) == {"test"}
    return workflow["jobs"]["test"]


def _runs(job) -> list[str]:
    return [step["run"] for step in job["steps"] if "run" in step]


def _commands(job) -> list[str]:
    """The steps' commands but the package installation (whose list names the package make)."""
    return [r for r in _runs(job) if "apt-get" not in r]


def _apt_packages(job) -> set[str]:
    text = " ".join(r.replace("\\\n", " ") for r in _runs(job) if "apt-get install" in r)
    words = shlex.split(text[text.index("apt-get install") :])
    return {w for w in words[2:] if not w.startswith("-")}


def _makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-z][\w-]*):", text, re.M))


def test_it_runs_the_same_command_as_ci_run_as_a_user_who_is_not_root(job):
    ci = [
        line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.startswith("exec ")
    ]
    assert ci == ["exec make test"]
    commands = [r for r in _commands(job) if "make " in r]
    assert len(commands) == 1
    words = shlex.split(commands[0])
    assert words[:3] == ["runuser", "-u", "tester"] and words[3] == "--"
    assert words[4:] == ["make", "test"]  # .ci/run's command, the README's test command
    assert "useradd --create-home tester" in " ".join(_commands(job))
    assert "make test" in (ROOT / "README.md").read_text()


def test_every_make_target_it_names_exists(job):
    named = set(re.findall(r"\bmake ([a-z][\w-]*)", " ".join(_commands(job))))
    assert named and named <= _makefile_targets()


def test_it_installs_what_make_setup_would_install(job):
    tools = ROOT / "tools"
    wanted = {"rabbitmq-server", "python3-venv"}
    wanted |= set(
        re.search(r'^PACKAGES="([^"]+)"', (tools / "ensure-haproxy.sh").read_text(), re.M)[
            1
        ].split()
    )
    wanted |= set(
        re.search(
            r"apt-get install -y (chromium[^\n]*)", (tools / "ensure-browser.sh").read_text()
        )[1].split()
    )
    assert "rabbitmq-server" in (tools / "ensure-rabbitmq.sh").read_text()
    assert wanted <= _apt_packages(job), wanted - _apt_packages(job)


def test_the_virtual_environment_is_cached_by_what_make_reinstalls_it_for(job):
    makefile = (ROOT / "Makefile").read_text()
    venv = re.search(r"^VENV\s*\?=\s*(\S+)", makefile, re.M)[1]
    stamp_inputs = re.search(r"^\$\(STAMP\):\s*(.+)$", makefile, re.M)[1].split()
    cache = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/cache@"))
    assert cache["with"]["path"] == venv
    key = cache["with"]["key"]
    for name in stamp_inputs:
        assert f"'{name}'" in key, name
    steps = [s.get("name", s.get("uses", "")) for s in job["steps"]]
    order = {name: i for i, name in enumerate(steps)}
    chown = next(n for n in steps if "owns the checkout" in n)
    assert order[cache.get("name")] < order[chown]  # the restored .venv is the user's too


def test_it_runs_on_the_distribution_the_lab_is_built_on_within_ci_time(job):
    assert job["container"].startswith("debian:")
    assert 60 <= job["timeout-minutes"] <= 90
