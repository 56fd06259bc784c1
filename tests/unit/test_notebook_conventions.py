"""The GUIDE's rules for notebooks that a machine can check on the saved files.

Short cells, the glossary linked from the first cell, verdicts recorded under the notebook's
own name, saved from a clean run (execution counts 1..n), no link or path outside the
repository, no machine paths in the outputs. What only a reader can check (prose that matches
the outputs) is in each notebook's asserts and in the review of every change.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MAX_LINES = 25  # the GUIDE's "about 25 lines at most": blank lines and nbval's markers not counted
MACHINE_PATHS = re.compile(r"(/tmp/|/work/|/root/|/home/\w+/)")


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _source(cell: dict) -> str:
    return "".join(cell["source"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_code_cells_are_short(path):
    long = []
    for index, cell in enumerate(_cells(path)):
        lines = [
            ln for ln in _source(cell).splitlines() if ln.strip() and not ln.startswith("# NBVAL_")
        ]
        if cell["cell_type"] == "code" and len(lines) > MAX_LINES:
            long.append(f"cell {index}: {len(lines)} lines")
    assert not long, f"{path.name}: move harness code into the package: {long}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_first_cell_links_the_glossary(path):
    assert "](glossary.md)" in _source(_cells(path)[0])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_verdicts_are_recorded_under_the_notebooks_own_name(path):
    code = "\n".join(_source(c) for c in _cells(path) if c["cell_type"] == "code")
    assert f'Verdicts("{path.stem}")' in code
    assert ".record(" in code


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_saved_from_a_clean_run(path):
    counts = [c["execution_count"] for c in _cells(path) if c["cell_type"] == "code"]
    assert counts == list(range(1, len(counts) + 1)), "restart the kernel and run all, then save"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_link_leaves_the_repository_and_no_output_shows_a_machine_path(path):
    for index, cell in enumerate(_cells(path)):
        assert "](../../" not in _source(cell), f"cell {index} links outside the repository"
        for output in cell.get("outputs", []):
            text = "".join(output.get("text", "")) + "".join(
                "".join(v) for k, v in output.get("data", {}).items() if k == "text/plain"
            )
            assert not MACHINE_PATHS.search(text), f"cell {index} shows a machine path"
