"""The claims table: verdicts shown in a notebook are read back from the saved file, and the
README's table of claims agrees with the committed notebooks (ids and verdicts, not numbers)."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from mpsoa_lab.__main__ import main
from mpsoa_lab.design import recommended
from mpsoa_lab.observe.claims import (
    BEGIN,
    END,
    MIME,
    from_notebook,
    from_notebooks,
    readme_table,
    readme_verdicts,
    rewrite_readme,
)
from mpsoa_lab.observe.verdicts import Verdict
from mpsoa_lab.plumbing.kernels import AsyncLabKernelManager

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"


def _verdict(id_: str, verdict: str = "holds", **change: str) -> Verdict:
    fields = dict(claim="a | claim", number="3 of 3", conditions="here", evidence="§1",
                  notebook="04_sync_calls", remedy="" if verdict == "holds" else "do that")  # fmt: skip
    return Verdict(id_, verdict=verdict, **{**fields, **change})


def test_a_verdict_shown_in_a_kernel_is_read_back_from_the_saved_notebook(tmp_path):
    source = (
        "from mpsoa_lab.observe import Verdicts\n"
        f"v = Verdicts('04_sync_calls', home={str(tmp_path)!r})\n"
        "v.record('sync-one', claim='c', verdict='holds', number='1', conditions='k', evidence='e')\n"
        "v.record('sync-two', claim='c', verdict='fails', number='2', conditions='k', "
        "evidence='e', remedy='r')"
    )
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    NotebookClient(
        notebook, timeout=60, kernel_name="python3", kernel_manager_class=AsyncLabKernelManager
    ).execute()
    path = tmp_path / "04_sync_calls.ipynb"
    nbformat.write(notebook, path)
    outputs = notebook.cells[0].outputs
    assert [o["data"]["text/plain"] for o in outputs] == [
        "[HOLDS] sync-one: 1 (k).",
        "[FAILS] sync-two: 2 (k). Remedy: r",
    ]  # what a reader sees
    assert [(v.id, v.verdict, v.remedy) for v in from_notebook(path)] == [
        ("sync-one", "holds", ""), ("sync-two", "fails", "r")
    ]  # fmt: skip


def test_the_readme_table_is_written_between_its_markers_and_read_back(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{BEGIN}\nstale-row\n{END}\n\nafter\n")
    verdicts = [_verdict("sync-one"), _verdict("sync-two", "partly")]
    assert rewrite_readme(readme, verdicts)
    assert not rewrite_readme(readme, verdicts)  # the same table: nothing to write
    text = readme.read_text()
    assert (
        text.startswith("# x\n\n")
        and text.endswith(f"{END}\n\nafter\n")
        and "stale-row" not in text
    )
    assert "2 claims: 1 holds, 1 partly." in text and "a \\| claim" in text
    assert readme_verdicts(readme) == [("sync-one", "holds"), ("sync-two", "partly")]
    assert len(readme_table(verdicts).splitlines()) == 4


def test_a_readme_without_markers_is_refused(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# x\n")
    with pytest.raises(ValueError, match="markers"):
        rewrite_readme(readme, [_verdict("sync-one")])


def test_every_notebook_that_records_verdicts_shows_them_in_its_saved_outputs():
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        sources = [
            "".join(c["source"])
            for c in json.loads(path.read_text())["cells"]
            if c["cell_type"] == "code"
        ]
        if any("verdicts.record(" in s for s in sources):
            assert from_notebook(path), f"{path.name}: save it again from a clean run"


def test_the_readme_table_agrees_with_the_saved_notebooks():
    in_notebooks = [(v.id, v.verdict) for v in from_notebooks(NOTEBOOKS)]
    assert len(in_notebooks) >= 40 and len(set(in_notebooks)) == len(in_notebooks)
    assert readme_verdicts(ROOT / "README.md") == in_notebooks, (
        "run: .venv/bin/python -m mpsoa_lab claims"
    )


def test_the_command_writes_the_table(tmp_path, capsys):
    (tmp_path / "notebooks").mkdir()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [nbformat.v4.new_output("display_data", data={
        "text/plain": "[HOLDS] ...", MIME: {**_verdict("sync-one").__dict__}})]  # fmt: skip
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), tmp_path / "notebooks" / "04_x.ipynb")
    readme = tmp_path / "README.md"
    readme.write_text(f"{BEGIN}\n{END}\n{recommended.README_BEGIN}\n{recommended.README_END}\n")
    assert main(["claims", "--readme", str(readme)]) == 0
    assert readme_verdicts(readme) == [("sync-one", "holds")]
    out = capsys.readouterr().out
    assert "1 claims, written again" in out and "recommended choices, written again" in out
    assert recommended.choices_markdown() in readme.read_text()
    readme.write_text(f"{BEGIN}\n{END}\n")  # no place for the recommended design's table
    assert main(["claims", "--readme", str(readme)]) == 2
    assert "no '<!-- recommended" in capsys.readouterr().err


def test_the_readmes_table_of_the_recommended_design_is_the_codes():
    text = (ROOT / "README.md").read_text()
    table = text.split(recommended.README_BEGIN, 1)[1].split(recommended.README_END, 1)[0]
    assert table.strip() == recommended.choices_markdown(), "run: python -m mpsoa_lab claims"
