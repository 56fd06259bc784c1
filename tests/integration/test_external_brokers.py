"""Brokers given by URL: node operations fail clearly, and the notebooks still run.

With ``MPSOA_SYNC_BROKER_URL`` and ``MPSOA_ASYNC_BROKER_URL`` set (docker compose's brokers, or a
reviewer's own) the lab runs no node. Acting on a node then raises :class:`NeedsLabNode`, and a
notebook cell marked ``%%needs_lab_nodes <section>`` is skipped with one line per section, while
every other cell runs. The session lab's two nodes stand in for such brokers here, at vhost
``/``, seen from a separate lab home: a lab that did not start them.

nbclient, not nbval, runs the notebooks: the skipped cells print the skip line instead of the
outputs saved with the notebook. Every cell must run without an error, a skipped one print at
most the skip line, and every other one print or draw something where the saved notebook does.
``make test`` runs the notebooks that have sections needing the lab's nodes so; ``make
test-urls`` runs all of them.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from urllib.parse import urlsplit

import nbformat
import pytest
from IPython.core.interactiveshell import InteractiveShell
from nbclient import NotebookClient
from traitlets.config import Config

import mpsoa_lab
from mpsoa_lab import NeedsLabNode
from mpsoa_lab.experiments import faults
from mpsoa_lab.observe.measured import RECORD_ENV
from mpsoa_lab.plumbing import settings as settings_mod
from mpsoa_lab.plumbing.kernels import AsyncLabKernelManager
from mpsoa_lab.plumbing.processes import managed_processes
from mpsoa_lab.plumbing.settings import redact_url
from mpsoa_lab.running import notebook as nb_magic

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
MAGIC = re.compile(r"%%needs_(?:lab_nodes|hosts) (.+)")


def _external_env(lab, home: Path) -> dict[str, str]:
    """The environment of a lab under ``home`` that uses the session lab's nodes by URL."""
    # Its space is its own, and it records no figure for notebooks/measured (the lab's own
    # nodes' runs do that, once per run).
    env = {k: v for k, v in os.environ.items() if k not in ("MPSOA_SPACE", RECORD_ENV)}
    env.update(
        {
            "MPSOA_SYNC_BROKER_URL": lab.sync.node_url,
            "MPSOA_ASYNC_BROKER_URL": lab.async_.node_url,
            "MPSOA_SYNC_MANAGEMENT_URL": lab.sync.management_url,
            "MPSOA_ASYNC_MANAGEMENT_URL": lab.async_.management_url,
            "MPSOA_LAB_HOME": str(home),
        }
    )
    return env


def _stop_external_lab(env: dict[str, str]) -> None:
    """Stop what the external lab started (its reaper, any worker left), and check it is gone."""
    settings = settings_mod.load(env)
    mpsoa_lab.up(settings, hold=False).down()
    deadline = time.monotonic() + 20
    while (left := managed_processes(settings.home)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, [" ".join(p.cmdline())[:120] for p in left]


def test_acting_on_a_broker_given_by_url_raises_needs_lab_node(lab, tmp_path):
    env = _external_env(lab, tmp_path / "home")
    external = mpsoa_lab.up(settings_mod.load(env))
    try:
        assert external.external and external.sync.node is None and not external.nodes
        with pytest.raises(NeedsLabNode) as info:
            external.restart_node("sync")
        message = str(info.value)
        password = urlsplit(lab.sync.node_url).password
        assert redact_url(lab.sync.node_url) in message  # names the broker ...
        assert f":{password}@" not in message  # ... without its password
        assert "MPSOA_SYNC_BROKER_URL" in message  # and says what to change
        for act in (external.stop_node, external.start_node, external.kill_node, external.node):
            with pytest.raises(NeedsLabNode):
                act("async")
        with pytest.raises(NeedsLabNode):
            faults.restart_nodes(external)
        with faults.restored(external):  # a scenario without node operations runs as usual
            pass
    finally:
        _stop_external_lab(env)
    assert lab.sync.node.is_running() and lab.async_.node.is_running()  # untouched


@pytest.fixture
def shell(tmp_path, monkeypatch):
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    config = Config()
    config.HistoryManager.enabled = False
    shell = InteractiveShell.instance(config=config)
    nb_magic.register(shell)
    yield shell
    InteractiveShell.clear_instance()


def test_needs_lab_nodes_runs_the_cell_on_lab_nodes_and_skips_it_with_urls(
    lab, shell, monkeypatch, capsys
):
    assert not lab.external
    result = shell.run_cell(
        "%%needs_lab_nodes (t) on lab nodes\nran = lab_nodes = 'yes'\nprint('ran')"
    )
    assert result.success and shell.user_ns["ran"] == "yes"
    assert capsys.readouterr().out == "ran\n"
    failing = shell.run_cell("%%needs_lab_nodes (t) on lab nodes\n1 / 0")
    assert isinstance(failing.error_in_exec, ZeroDivisionError)  # nbval sees a failing cell fail
    capsys.readouterr()

    monkeypatch.setenv("MPSOA_SYNC_BROKER_URL", lab.sync.node_url)
    monkeypatch.setenv("MPSOA_ASYNC_BROKER_URL", lab.async_.node_url)
    label = f"(t) given by URL {os.getpid()}"
    for _ in range(2):
        assert shell.run_cell(f"%%needs_lab_nodes {label}\nskipped = 'no'").success
    assert "skipped" not in shell.user_ns
    assert capsys.readouterr().out == nb_magic.skip_message(label) + "\n"  # once per section


def _text(cell) -> str:
    return "".join(
        o.get("text", "") for o in cell.get("outputs", []) if o["output_type"] == "stream"
    )


#: The notebooks with sections that need the lab's own nodes.
NODE_NOTEBOOKS = [
    "06_two_brokers_measured.ipynb",
    "07_faults.ipynb",
    "10_clusters_and_node_loss.ipynb",
    "11_partitions.ipynb",
    "13_who_may_publish.ipynb",
    "14_two_designs.ipynb",
]
#: ``make test`` runs on brokers given by URL the notebooks that need the lab's nodes as a whole
#: (each ends in seconds, every section skipped in one line). 06 and 07, whose other sections
#: measure again what make test has just measured on the lab's nodes (about 3.5 minutes), run so
#: in ``make test-urls`` (``MPSOA_BY_URL_NOTEBOOKS=all``), with every other notebook.
BY_URL = (
    sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if os.environ.get("MPSOA_BY_URL_NOTEBOOKS") == "all"
    else ["10_clusters_and_node_loss.ipynb", "11_partitions.ipynb", "14_two_designs.ipynb"]
)


@pytest.mark.parametrize("name", BY_URL)
def test_notebooks_run_on_brokers_given_by_url(lab, tmp_path, name):
    saved = nbformat.read(NOTEBOOKS / name, as_version=4)
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    env = _external_env(lab, tmp_path / "home")
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        kernel_manager_class=AsyncLabKernelManager,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    started = time.monotonic()
    try:
        client.execute(env=env)  # raises CellExecutionError on the first cell that raises
    finally:
        _stop_external_lab(env)
    print(f"{name} on brokers given by URL: {time.monotonic() - started:.0f} s")

    labels, skipped_cells = [], set()
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and (m := MAGIC.match(cell.source)):
            skipped_cells.add(i)
            labels.append(m.group(1).strip())
    assert bool(labels) == (name in NODE_NOTEBOOKS), "which notebooks have node sections changed"
    everything = "".join(_text(cell) for cell in nb.cells if cell.cell_type == "code")
    for label in dict.fromkeys(labels):
        assert everything.count(nb_magic.skip_message(label)) == 1, label
    for i, (ran, before) in enumerate(zip(nb.cells, saved.cells)):
        if ran.cell_type != "code":
            continue
        assert not any(o["output_type"] == "error" for o in ran.outputs), i
        if i in skipped_cells:
            # at most the skip line
            assert all(o["output_type"] == "stream" for o in ran.outputs), i
        elif before.outputs:  # the sections that ran printed or drew what they do on lab nodes
            assert ran.outputs, (i, ran.source[:80])
    if name.startswith("06"):
        assert "split: published 20000" in everything and "shared: published 20000" in everything
        # no CPU time: no process
        assert re.search(r"split\s+async\s+async\s+\d+\s+0\s+\d+\s+-", everything)
    elif name.startswith("10"):  # the whole notebook is its cluster: one line, no verdict
        assert "No verdict recorded" in everything and labels == ["the cluster"] * len(labels)
    elif name.startswith("11"):  # every run needs a cluster of the lab's own nodes
        assert "No verdict recorded" in everything and "No run: every section" in everything
    elif name.startswith("07"):
        table = next(_text(c) for c in nb.cells if "\nprint(page)" in c.source)
        assert "worker frozen (SIGSTOP)" in table and "broker restart" not in table
