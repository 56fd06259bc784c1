"""The notebook progress bar is saved the way it ended, not at 0 % (tqdm's widget is)."""

from __future__ import annotations

import nbformat
from nbclient import NotebookClient

from mpsoa_lab.plumbing.kernels import AsyncLabKernelManager


def test_a_saved_notebook_shows_the_bar_finished():
    code = (
        "from mpsoa_lab.observe import progress\n"
        "for _ in progress(range(3), desc='looping'):\n"
        "    pass\n"
        "with progress(total=5, desc='counting', unit='msg') as bar:\n"
        "    bar.update(5)\n"
        "    bar.set_postfix_str('done')"
    )
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    NotebookClient(
        nb, timeout=120, kernel_name="python3", kernel_manager_class=AsyncLabKernelManager
    ).execute()
    shown = [out["data"]["text/plain"] for out in nb.cells[0].outputs if "data" in out]
    assert len(shown) == 2
    assert shown[0].startswith("looping: 100%") and "3/3" in shown[0]
    assert shown[1].startswith("counting: 100%") and "5/5" in shown[1] and "done" in shown[1]


def test_outside_a_notebook_it_is_tqdm():
    from tqdm import tqdm

    from mpsoa_lab.observe import progress

    bar = progress(total=2, disable=True)
    assert isinstance(bar, tqdm)
    bar.close()
