"""Pytest plumbing shared by the unit tests, the integration tests and the notebooks (nbval).

* The test session gets a lab home of its own (unless ``MPSOA_LAB_HOME`` is set), so tests never
  touch a lab you have open in JupyterLab.
* If anything collected needs a broker (``tests/integration`` and every notebook), the session
  starts the lab once, holds it while the notebooks attach to it through the state file, and
  stops it at the end. A missing or broken RabbitMQ is an error in those tests, never a skip.
* Tests marked ``beside_others`` (the unit tests, and the integration modules that say so:
  they assert nothing that another test's load could change) may run three at a time under
  pytest-xdist (``-n 3``), as ``make test`` runs them before the rest; each xdist worker gets a
  lab home and a lab of its own. Everything else, every notebook included, runs one at a time.
* The kernels nbval starts take their ports from the lab's allocator
  (``mpsoa_lab.plumbing.kernels``), not from the range the lab's own connections use.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

_session: dict = {"lab": None, "error": None, "home": None}


def pytest_configure(config: pytest.Config) -> None:
    if config.pluginmanager.hasplugin("nbval"):
        # nbval makes its kernel manager from this module-level name (nbval.kernel's
        # start_new_kernel); nbval has no option for the class.
        import nbval.kernel

        from mpsoa_lab.plumbing.kernels import LabKernelManager

        nbval.kernel.KernelManager = LabKernelManager
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # set in xdist's workers only
    if worker or not os.environ.get("MPSOA_LAB_HOME"):
        # An xdist worker inherits its controller's home: two labs of one home would stop each
        # other's nodes at the end. Each worker gets its own.
        home = tempfile.mkdtemp(prefix=f"mpsoa-lab-pytest-{worker or 'main'}-")
        os.environ["MPSOA_LAB_HOME"] = home
        _session["home"] = home


def _needs_broker(item: pytest.Item) -> bool:
    path = Path(str(item.fspath))
    return path.suffix == ".ipynb" or "integration" in path.parts


@pytest.hookimpl(tryfirst=True)  # before ``-m`` selects by these marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _needs_broker(item):
            item.add_marker(pytest.mark.integration)
        else:  # no broker, no timing: the unit tests run beside anything
            item.add_marker(pytest.mark.beside_others)
    _leave_out_lone_runs_of_paired_notebooks(config, items)


def _leave_out_lone_runs_of_paired_notebooks(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    """A notebook that ``test_measuring_notebooks_at_once_under_nbval`` runs under nbval beside
    another one is not run alone as well in the same session: the pair runs it cell by cell as
    nbval runs it alone, with the other notebook beside it. Run alone (``make notebook NB=04``,
    or ``pytest notebooks``) it runs as usual."""
    paired = set()
    for item in items:
        if getattr(item, "originalname", "") == "test_measuring_notebooks_at_once_under_nbval":
            paired.update(item.module.MEASURING_PAIRS[item.callspec.params["pair"]])
    if not paired:
        return
    lone = [
        i
        for i in items
        if Path(str(i.fspath)).suffix == ".ipynb" and Path(str(i.fspath)).stem in paired
    ]
    if lone:
        config.hook.pytest_deselected(items=lone)
        items[:] = [i for i in items if i not in lone]


def pytest_collection_finish(session: pytest.Session) -> None:
    if not any(_needs_broker(item) for item in session.items):
        return
    import mpsoa_lab

    try:
        _session["lab"] = mpsoa_lab.up()
    except mpsoa_lab.LabError as exc:  # every test that needs it reports this error
        _session["error"] = exc


def _leftovers(home: str) -> list[str]:
    """Processes that the lab under this session's home started and that still run, and the
    network namespaces and links it made that still exist."""
    from mpsoa_lab.plumbing.netns import lab_tag, leftovers
    from mpsoa_lab.plumbing.processes import managed_commands

    found = [f"{pid} {cmd[:120]}" for pid, cmd in managed_commands(home).items()]
    return found + [f"network namespace or link {name}" for name in leftovers(lab_tag(home))]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    lab = _session["lab"]
    home = _session["home"]
    if lab is not None and lab.started_here and home:
        # The session's own home is deleted below, so nothing a graceful stop would write to
        # disk is kept: kill the nodes (a graceful stop takes ~7 s), then down() stops the
        # rest. Graceful down() is tested in tests/integration/test_lab.py on labs of their own.
        lab.refresh()  # a notebook may have restarted a node: act on the pids running now
        for node in lab.nodes.values():
            node.kill()
    if lab is not None:
        lab.down() if lab.started_here else lab.release()
    if home:
        # Whatever the tests and notebooks started must be gone now; a leak fails the run.
        import time

        deadline = time.monotonic() + 20
        while (left := _leftovers(home)) and time.monotonic() < deadline:
            time.sleep(0.5)
        if left:
            print("\nLeft behind by the lab (a cleanup bug):\n" + "\n".join(left))
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def lab():
    """The session's lab: the design's two brokers, started once for the whole run."""
    if _session["error"] is not None:
        raise _session["error"]
    if _session["lab"] is None:
        import mpsoa_lab

        _session["lab"] = mpsoa_lab.up()
    return _session["lab"]


@pytest.fixture
def holder():
    """Start a stand-in for a notebook kernel: ``holder(script, space)`` runs ``script`` in a
    child process (its space's name as ``sys.argv[1]``, on this session's lab) and returns the
    first line it prints; ``holder.kill()`` sends it SIGKILL, so that nothing of its own cleans
    up. Killed at the end of the test in any case."""
    import subprocess
    import sys

    children: list[subprocess.Popen] = []

    def start(script: str, space: str) -> str:
        child = subprocess.Popen(
            [sys.executable, "-c", script, space],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "MPSOA_SPACE": ""},
        )
        children.append(child)
        line = child.stdout.readline().strip()
        assert line, f"the holder ended early (exit {child.poll()})"
        return line

    def kill() -> None:
        for child in children:
            child.kill()
            child.wait()

    start.kill = kill  # type: ignore[attr-defined]
    yield start
    kill()
