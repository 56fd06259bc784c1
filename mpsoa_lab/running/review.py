"""``make review``: run the notebooks on the lab (or on brokers given by URL) and write the page of
every claim (:mod:`mpsoa_lab.observe.review_page`).

Each notebook runs in a kernel of its own, as JupyterLab would run it, attached to the lab this
process holds; a progress bar per notebook counts its code cells. A notebook that fails does not
stop the review: its executed part is kept, its error goes on the page, and the next one runs.
Writes, under ``out`` (``review/`` by default)::

    index.html                  every claim, its verdict, number, conditions, remedy, plot, link
    claims.json                 the same for machines (schema: observe/claims.schema.json)
    notebooks/NN_name.ipynb     each notebook as it ran
    notebooks/NN_name.html      and as a page, which the claims link into
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from ..observe.claims import from_notebook
from ..observe.review_page import (
    NotebookRun,
    document,
    evidence,
    index_html,
    notebook_html,
    skipped_sections,
)
from ..plumbing.errors import LabError
from ..plumbing.settings import redact_url
from .lab import Lab

__all__ = ["NOTEBOOKS", "select_notebooks", "run_notebook", "run_review", "about"]

#: The lab's notebooks, beside the package in a checkout.
NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def select_notebooks(wanted: Sequence[str] = (), folder: Path = NOTEBOOKS) -> list[Path]:
    """The notebooks of ``folder`` (``NN_*.ipynb``), all or those whose number or name is in
    ``wanted`` (``["01", "03"]``); an unknown one is an error that lists them all."""
    found = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise LabError(f"no notebooks (NN_*.ipynb) in {folder}: run the review in a checkout")
    if not wanted:
        return found
    chosen = []
    for name in wanted:
        match = [p for p in found if name in (p.stem, p.stem[:2], p.name)]
        if not match:
            known = ", ".join(p.stem for p in found)
            raise LabError(f"no notebook {name!r} in {folder}; the notebooks: {known}")
        chosen += [p for p in match if p not in chosen]
    return chosen


def _failure(nb: Any) -> tuple[str, str]:
    """The first error a notebook's cells show: ``(type: message | failing line, cell id)``."""
    for cell in nb.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if output.get("output_type") == "error":
                marked = [
                    line.strip()
                    for frame in output.get("traceback", [])
                    for line in _ANSI.sub("", frame).splitlines()
                    if line.lstrip().startswith("---->")
                ]
                text = f"{output.get('ename')}: {output.get('evalue')}"
                return (text + (f" | {marked[-1]}" if marked else ""), str(cell.get("id", "")))
    return "", ""


def run_notebook(
    path: Path,
    out: Path,
    env: dict[str, str],
    *,
    timeout: float = 900,
    stream: TextIO | None = None,
) -> tuple[NotebookRun, dict[str, Any]]:
    """Run the notebook at ``path`` in a kernel of its own (environment ``env``, working folder
    the notebook's), with a progress bar on ``stream`` (stderr); keep it under
    ``out/notebooks/``. Returns how it ended and the executed notebook (as a dict)."""
    import nbformat
    from nbclient import NotebookClient
    from tqdm import tqdm

    from ..plumbing.kernels import AsyncLabKernelManager

    nb = nbformat.read(path, as_version=4)
    code = sum(cell.cell_type == "code" for cell in nb.cells)
    bar = tqdm(total=code, desc=path.stem[:28], unit="cell", file=stream or sys.stderr)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        kernel_manager_class=AsyncLabKernelManager,
        resources={"metadata": {"path": str(path.parent)}},
        on_cell_executed=lambda **_: bar.update(1),
    )
    started = time.monotonic()
    status, error, cell_id = "passed", "", ""
    try:
        client.execute(env=env)
    except Exception as exc:  # noqa: BLE001 - a failing notebook is reported, not raised
        status = "failed"
        error, cell_id = _failure(nb)
        if not error:  # not a cell's error: a timeout, a dead kernel
            last = str(exc).strip().splitlines()[-1:] or [""]
            error = f"{type(exc).__name__}: {last[0]}"
    finally:
        bar.close()
    seconds = time.monotonic() - started
    executed = json.loads(nbformat.writes(nb))
    (out / "notebooks").mkdir(parents=True, exist_ok=True)
    (out / "notebooks" / path.name).write_text(nbformat.writes(nb))
    run = NotebookRun(path.stem, status, round(seconds, 1), error, cell_id,
                      skipped_sections(executed))  # fmt: skip
    return run, executed


def _broker_versions(lab: Lab) -> dict[str, dict[str, str]]:
    from ..plumbing.management import Management

    brokers = {}
    for role, broker in lab.brokers.items():
        found = {"url": redact_url(broker.url), "rabbitmq": "unknown", "erlang": "unknown"}
        try:
            with Management.for_broker(broker, timeout=5) as api:
                overview = api.overview()
            found["rabbitmq"] = str(overview.get("rabbitmq_version", "unknown"))
            found["erlang"] = str(overview.get("erlang_version", "unknown"))
        except Exception:  # noqa: BLE001 - a broker given by URL may not expose its API to us
            pass
        brokers[role] = found
    return brokers


def about(lab: Lab) -> dict[str, Any]:
    """When, on what machine, against which brokers."""
    import celery
    import kombu
    import psutil

    return {
        "generated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "brokers_given_by_url": lab.external,
        "machine": {
            "cores": os.cpu_count() or 0,
            "memory GiB": round(psutil.virtual_memory().total / 2**30, 1),
            "system": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(),
            "celery": celery.__version__,
            "kombu": kombu.__version__,
        },
        "brokers": _broker_versions(lab),
    }


def run_review(
    lab: Lab,
    out: Path,
    notebooks: Sequence[Path],
    *,
    timeout: float = 900,
    stream: TextIO | None = None,
) -> dict[str, Any]:
    """Run ``notebooks`` one after the other on ``lab`` (each kernel attaches to it: its
    ``MPSOA_LAB_HOME``, and its brokers' URLs when they were given), then write the review under
    ``out``; returns ``claims.json``'s content."""
    env = {k: v for k, v in os.environ.items() if k != "MPSOA_SPACE"}
    env["MPSOA_LAB_HOME"] = str(lab.home)
    if lab.external:
        env["MPSOA_SYNC_BROKER_URL"], env["MPSOA_ASYNC_BROKER_URL"] = lab.sync.url, lab.async_.url
    out.mkdir(parents=True, exist_ok=True)
    runs, executed = [], {}
    for path in notebooks:
        run, nb = run_notebook(path, out, env, timeout=timeout, stream=stream)
        runs.append(run)
        executed[run.notebook] = nb
    verdicts = {name: from_notebook(out / "notebooks" / f"{name}.ipynb") for name in executed}
    found = {name: evidence(nb, verdicts[name]) for name, nb in executed.items()}
    doc = document(runs, executed, verdicts, about(lab), found)
    plots = {
        claim: where.plot_png
        for per_notebook in found.values()
        for claim, where in per_notebook.items()
        if where.plot_png
    }
    folders = {path.stem: path.parent for path in notebooks}
    for name, nb in executed.items():
        page = notebook_html(nb, f"mpsoa-lab review: {name}", folders[name])
        (out / "notebooks" / f"{name}.html").write_text(page)
    (out / "claims.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    (out / "index.html").write_text(index_html(doc, plots))
    return doc
