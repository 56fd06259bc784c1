"""The claims of the 2014 design and their verdicts, read back from saved notebooks.

:meth:`~mpsoa_lab.observe.verdicts.Verdicts.record` shows each verdict in a notebook as one
output with two forms: its line as text (what a reader sees, in JupyterLab and on GitHub) and the
whole record as JSON under :data:`MIME`. A saved notebook therefore carries its verdicts, and
:func:`from_notebooks` reads them back without running anything.

The README's table of claims is written from them (:func:`rewrite_readme`, ``python -m mpsoa_lab
claims``), between two markers; a test compares the README's ids and verdicts with the saved
notebooks', so neither can change without the other.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

from .verdicts import VERDICTS, Verdict

__all__ = ["MIME", "BEGIN", "END", "from_notebook", "from_notebooks", "readme_table",
           "rewrite_between", "rewrite_readme", "readme_verdicts"]  # fmt: skip

#: The media type of a verdict record in a notebook's outputs.
MIME = "application/vnd.mpsoa.verdict+json"
BEGIN = (
    "<!-- claims: written by python -m mpsoa_lab claims from the saved notebooks; do not edit -->"
)
END = "<!-- /claims -->"
_ROW = re.compile(r"^\| (?P<verdict>\w+) \| `(?P<id>[a-z0-9-]+)` \|", re.M)


def from_notebook(path: Path | str) -> list[Verdict]:
    """The verdicts a saved notebook shows, in the order its cells show them (a verdict
    recorded twice counts once, as its last record)."""
    notebook = json.loads(Path(path).read_text())
    found: dict[str, Verdict] = {}
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            record = output.get("data", {}).get(MIME)
            if record is not None:
                verdict = Verdict(**record)
                found.pop(verdict.id, None)
                found[verdict.id] = verdict
    return list(found.values())


def from_notebooks(folder: Path | str) -> list[Verdict]:
    """The verdicts of every notebook in ``folder`` (``NN_*.ipynb``), in notebook order."""
    paths = sorted(p for p in Path(folder).glob("[0-9][0-9]_*.ipynb"))
    return [v for path in paths for v in from_notebook(path)]


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def readme_table(verdicts: Iterable[Verdict]) -> str:
    """A Markdown table, one claim per row: verdict, id, the claim, its number, the notebook."""
    rows = [
        "| verdict | id | the 2014 design's claim | the number (one run; conditions in the notebook) | notebook |",
        "|---|---|---|---|---|",
    ]
    for v in verdicts:
        link = f"[{v.notebook[:2]}](notebooks/{v.notebook}.ipynb)"
        rows.append(f"| {v.verdict} | `{v.id}` | {_cell(v.claim)} | {_cell(v.number)} | {link} |")
    return "\n".join(rows)


def _summary(verdicts: list[Verdict]) -> str:
    counts = {name: sum(v.verdict == name for v in verdicts) for name in VERDICTS}
    told = ", ".join(f"{n} {name}" for name, n in counts.items() if n)
    return f"{len(verdicts)} claims: {told}."


def rewrite_between(path: Path | str, begin: str, end: str, body: str) -> bool:
    """Write ``body`` between the lines ``begin`` and ``end`` of the file at ``path``; True if
    that changed the file."""
    path = Path(path)
    text = path.read_text()
    if begin not in text or end not in text:
        raise ValueError(f"{path}: no {begin!r} ... {end!r} markers to write between")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    new = f"{head}{begin}\n{body}\n{end}{tail}"
    if new != text:
        path.write_text(new)
    return new != text


def rewrite_readme(readme: Path | str, verdicts: list[Verdict]) -> bool:
    """Write the table between :data:`BEGIN` and :data:`END` in ``readme``; True if it changed."""
    return rewrite_between(readme, BEGIN, END, f"{_summary(verdicts)}\n\n{readme_table(verdicts)}")


def readme_verdicts(readme: Path | str) -> list[tuple[str, str]]:
    """(id, verdict) of each row of the README's table, in order."""
    text = Path(readme).read_text()
    if BEGIN not in text:
        return []
    table = text.split(BEGIN, 1)[1].split(END, 1)[0]
    return [(m["id"], m["verdict"]) for m in _ROW.finditer(table)]
