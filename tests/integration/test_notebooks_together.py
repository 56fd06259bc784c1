"""Several notebooks at once on one lab, as in a workshop where people leave one running and
open the next: each kernel works in a space of its own (its vhost on each node, its services'
storage), so two kernels that reset the same service's storage and consume the same queues
never see each other's rows or messages."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from mpsoa_lab.plumbing.kernels import AsyncLabKernelManager

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
# Each run is kept whole, outputs included: after a failure, the numbers beside the failing
# assert; after a pass, the figures each notebook measured with the other one beside it.
KEPT = Path(__file__).resolve().parents[2] / ".pytest_cache" / "notebooks-together"


def execute(path: Path, outcome: dict, key: str) -> None:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        kernel_manager_class=AsyncLabKernelManager,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    started = time.monotonic()
    try:
        client.execute()
        outcome[key] = ("ok", time.monotonic() - started)
    except Exception as exc:  # noqa: BLE001 - the failure is the observation
        outcome[key] = ("failed", failing_line(f"{type(exc).__name__}: {exc}"))
    finally:
        nbformat.write(nb, KEPT / f"{key.replace(' ', '-')}.ipynb")


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def failing_line(error: str) -> str:
    """The line IPython marks with its arrow and the error's last line: pytest shortens a long
    message in the middle, which is where the failing line of a cell of asserts is."""
    lines = ANSI.sub("", error).splitlines()
    marked = [line.strip() for line in lines if re.match(r"-+> ", line.lstrip())]
    return " | ".join(marked[-1:] + [line.strip() for line in lines if line.strip()][-1:])


@pytest.mark.parametrize(
    "names",
    [
        # Notebook 01 resets mplogin's storage, registers "ada" and asserts she is user 1, counts
        # the messages in mplogin's queues and the rows of its tables: any sharing between the two
        # kernels breaks one of those asserts.
        ("01_architecture", "01_architecture"),
        # Two different notebooks that publish to and consume the same service queues.
        ("01_architecture", "03_router_and_config"),
    ],
    ids=["01 twice", "01 and 03"],
)
def test_notebooks_at_once_on_one_lab(lab, names):
    KEPT.mkdir(parents=True, exist_ok=True)
    outcome: dict = {}
    runs = [
        threading.Thread(target=execute, args=(NOTEBOOKS / f"{name}.ipynb", outcome, f"{i} {name}"))
        for i, name in enumerate(names)
    ]
    for run in runs:
        run.start()
    for run in runs:
        run.join(timeout=840)
    assert sorted(outcome) == sorted(f"{i} {name}" for i, name in enumerate(names))
    assert all(result == "ok" for result, _ in outcome.values()), outcome


#: Notebooks that measure, two or three run at once: what each reads from the broker (its
#: counters, rates, queues and connections) must be its own while the others work beside it. Each
#: runs under nbval exactly as ``make test`` runs a notebook alone (its asserts, and the
#: outputs of its ``NBVAL_CHECK_OUTPUT`` cells compared), so the suite does not also run these
#: alone: ``conftest.py`` leaves their lone runs out when this test is collected. 12 and 13
#: assert little timing (12 sizes and a ratio of in-process work, 13 refusals, counts and two
#: ratios of plain and TLS measured taking turns); 10 asserts counts and ratios within each of
#: its runs (their margins over repeated runs of the three together: the README, The notebooks).
MEASURING_PAIRS = {
    "04 and 09": ("04_sync_calls", "09_rest_against_amqp"),
    "05 and 07": ("05_async_tasks_and_fairness", "07_faults"),
    "10, 12 and 13": (
        "10_clusters_and_node_loss",
        "12_what_a_publisher_can_do",
        "13_who_may_publish",
    ),
    "11 and 14": ("11_partitions", "14_two_designs"),
}


def _nbval(name: str) -> subprocess.Popen:
    """``name`` under nbval in a pytest of its own, on this session's lab (the child inherits
    ``MPSOA_LAB_HOME``, so its conftest attaches to the running lab instead of starting one)."""
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", str(NOTEBOOKS / f"{name}.ipynb")]
        + ["--nbval-lax", "--nbval-current-env", "--timeout=600", "-p", "no:cacheprovider"]
        + ["-q", "--durations=3", "--tb=short", "-rfE"],
        cwd=NOTEBOOKS.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},  # the short summary's reasons, not cut at 80
    )


def _failures(output: str) -> str:
    """A failed nbval run's report, without colours: the end of its first error (an error at
    set-up, such as a kernel that did not start, fails every cell with the same traceback), its
    failures (each failing cell's source and traceback, at most 20,000 characters) and pytest's
    short summary (a line per failing cell with its reason)."""
    text = ANSI.sub("", output)
    at = {h: text.find(f"= {h} =") for h in ("ERRORS", "FAILURES", "short test summary info")}
    ends = sorted([i for i in at.values() if i >= 0] + [len(text)])
    block = {h: text[i : next(e for e in ends if e > i)] for h, i in at.items() if i >= 0}
    parts = []
    if "ERRORS" in block:
        first = re.split(r"\n_{3,} .+ _{3,}\n", block["ERRORS"])[1:2] or [block["ERRORS"]]
        parts.append("the first error, its end:\n" + "\n".join(first[0].splitlines()[-15:]))
    if "FAILURES" in block:
        parts.append(block["FAILURES"][:20_000])
    parts.append(block.get("short test summary info", text[-4_000:])[-4_000:])
    return "\n".join(parts)


@pytest.mark.parametrize("pair", list(MEASURING_PAIRS))
def test_measuring_notebooks_at_once_under_nbval(lab, pair):
    runs = {name: _nbval(name) for name in MEASURING_PAIRS[pair]}
    outputs = {}
    try:
        for name, run in runs.items():
            outputs[name] = run.communicate(timeout=780)[0]
    finally:
        for run in runs.values():
            if run.poll() is None:
                run.kill()
                run.wait()
    failed = {name: _failures(outputs[name]) for name, run in runs.items() if run.returncode != 0}
    for name, output in outputs.items():  # each notebook's pytest summary, in the test's log
        print(f"--- {name} ---\n" + "\n".join(output.strip().splitlines()[-6:]))
    assert not failed, "\n\n".join(f"--- {name} ---\n{out}" for name, out in failed.items())
