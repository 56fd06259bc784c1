"""The review: one page of every claim, and the same for machines, from executed notebooks.

:mod:`mpsoa_lab.running.review` runs the notebooks (``make review``, ``python -m mpsoa_lab
review``); this module turns what they showed into files, without a network or a broker:

* ``claims.json`` (:func:`document`): every verdict the notebooks recorded, with where its
  evidence is, and every notebook's run (passed, failed with its error, or not run; the
  sections it skipped and why), the machine and the brokers. Its schema is
  :data:`SCHEMA_FILE` (JSON Schema, draft 2020-12), checked by the tests.
* ``index.html`` (:func:`index_html`): a summary (how many claims hold, fail, partly hold or are
  obsolete; the brokers' versions and the machine), then each claim with its verdict, number,
  conditions and remedy, a small plot where its section has one, and a link to the executed
  notebook at the evidence cell.
* ``notebooks/NN_name.html`` (:func:`notebook_html`): each executed notebook.

Every page is self-contained: styles inline, plots as ``data:`` images, no script and nothing
fetched, so it opens with no network (nbconvert's default HTML template loads scripts from the
internet; its ``basic`` template, used here inside a page of our own, does not).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .claims import MIME
from .verdicts import VERDICTS, Verdict

__all__ = [
    "SCHEMA_FILE",
    "SCHEMA_ID",
    "NotebookRun",
    "Evidence",
    "evidence",
    "skipped_sections",
    "document",
    "notebook_html",
    "index_html",
]

#: The JSON Schema of ``claims.json``.
SCHEMA_FILE = Path(__file__).with_name("claims.schema.json")
SCHEMA_ID = "https://mpsoa-lab.invalid/schemas/claims-1.json"
_HEADING = re.compile(r"^#+\s*(.+)$", re.M)
_SKIPPED = re.compile(r"^Skipped .+$", re.M)


@dataclass(frozen=True)
class NotebookRun:
    """How one notebook's run ended: ``passed``, ``failed`` (with ``error`` and the failing
    cell's id) or ``not run`` (with ``error`` saying why)."""

    notebook: str
    status: str
    seconds: float
    error: str = ""
    failed_cell: str = ""
    skipped: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.status not in ("passed", "failed", "not run"):
            raise ValueError(f"status must be passed, failed or not run, not {self.status!r}")


@dataclass(frozen=True)
class Evidence:
    """Where a verdict's evidence is in its executed notebook: the cell to link to (its
    section's heading, or the verdict's own cell) and the last plot of that section."""

    cell_id: str
    plot_png: str = field(default="", repr=False)  # base64, as the notebook holds it


def _text(source: str | list[str]) -> str:
    return "".join(source) if isinstance(source, list) else source


def _plain(text: str) -> str:
    return " ".join(re.sub(r"[*_`#]", "", text).split()).lower()


def _sections(evidence_text: str) -> list[str]:
    """The headings an evidence string names: ``§(a) the restart`` or ``07 · X; Y``."""
    text = re.sub(r"^(§|\d\d · )", "", evidence_text.strip())
    return [_plain(part) for part in text.split(";") if part.strip()]


def evidence(notebook: Mapping[str, Any], verdicts: Iterable[Verdict]) -> dict[str, Evidence]:
    """For each verdict shown in ``notebook`` (a notebook as a dict), its :class:`Evidence`:
    the heading cell its ``evidence`` names (first named section), else the last heading
    before the verdict's own cell, else that cell; and the last PNG between the two."""
    cells = notebook.get("cells", [])
    shown: dict[str, int] = {}
    for i, cell in enumerate(cells):
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            record = output.get("data", {}).get(MIME)
            if record is not None:
                shown[record["id"]] = i
    headings = [
        (i, _plain(m.group(1)))
        for i, cell in enumerate(cells)
        if cell.get("cell_type") == "markdown"
        for m in _HEADING.finditer(_text(cell.get("source", "")))
    ]
    found = {}
    for verdict in verdicts:
        if verdict.id not in shown:
            continue
        at = shown[verdict.id]
        wanted = _sections(verdict.evidence)
        named = [i for i, title in headings if wanted and title.startswith(wanted[0])]
        before = [i for i, _ in headings if i <= at]
        start = named[0] if named else (before[-1] if before else at)
        plots = [
            output["data"]["image/png"]
            for cell in cells[min(start, at) : at + 1]
            for output in cell.get("outputs", [])
            if "image/png" in output.get("data", {})
        ]
        found[verdict.id] = Evidence(
            str(cells[start].get("id", "")), _text(plots[-1]).strip() if plots else ""
        )
    return found


def skipped_sections(notebook: Mapping[str, Any]) -> tuple[str, ...]:
    """The lines a notebook printed for each section it skipped (``Skipped <section>: why``)."""
    lines = []
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            if output.get("output_type") == "stream":
                lines += _SKIPPED.findall(_text(output.get("text", "")))
    return tuple(dict.fromkeys(lines))


def document(
    runs: Sequence[NotebookRun],
    notebooks: Mapping[str, Mapping[str, Any]],
    verdicts: Mapping[str, Sequence[Verdict]],
    about: Mapping[str, Any],
    found: Mapping[str, Mapping[str, Evidence]] | None = None,
) -> dict[str, Any]:
    """``claims.json``: the runs, the claims with their evidence, a summary, and ``about``
    (when, the machine, the brokers). ``found`` is each notebook's :func:`evidence` where the
    caller has it already (it reads every output of the notebook)."""
    claims = []
    for run in runs:
        if found is not None and run.notebook in found:
            where_each = found[run.notebook]
        else:
            where_each = evidence(notebooks.get(run.notebook, {}), verdicts.get(run.notebook, ()))
        for verdict in verdicts.get(run.notebook, ()):
            record = {k: v for k, v in asdict(verdict).items() if k != "recorded_at"}
            where = where_each.get(verdict.id)
            record["link"] = f"notebooks/{run.notebook}.html" + (
                f"#cell-id={where.cell_id}" if where and where.cell_id else ""
            )
            record["has_plot"] = bool(where and where.plot_png)
            claims.append(record)
    summary = {name: sum(c["verdict"] == name for c in claims) for name in VERDICTS}
    return {
        "$schema": SCHEMA_ID,
        "schema_version": 1,
        **about,
        "summary": {"claims": len(claims), **summary},
        "notebooks": [
            {**asdict(run), "skipped": list(run.skipped), "html": f"notebooks/{run.notebook}.html"}
            for run in runs
        ],
        "claims": claims,
    }


_STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#1b1b1b}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.6em}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:.3em .5em;vertical-align:top;text-align:left}
.claim{border:1px solid #ddd;border-radius:6px;padding:.6em .9em;margin:.8em 0;display:flex;gap:1em}
.claim .body{flex:1}.claim img{width:260px;height:auto;border:1px solid #eee}
.v{display:inline-block;padding:0 .5em;border-radius:4px;font-weight:600;color:#fff}
.holds{background:#2e7d32}.fails{background:#c62828}.partly{background:#ef6c00}
.obsolete{background:#616161}.failed{color:#c62828;font-weight:600}.muted{color:#555}
pre{white-space:pre-wrap;background:#f6f6f6;padding:.5em;overflow-x:auto}code{font-size:.92em}
"""


def _page(title: str, body: str, extra_style: str = "") -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title>"
        # Nothing may be fetched: no script at all, styles and images inline only.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src data:; style-src 'unsafe-inline'\">"
        f"<style>{_STYLE}{extra_style}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


_LINK = re.compile(r'href="(?![a-z][a-z0-9+.-]*:|#|/)([^"#]*)(#[^"]*)?"', re.I)


def _relink(body: str, folder: Path | None) -> str:
    """Relative links of a notebook's page: another notebook's ``NN_name.ipynb`` becomes its page
    beside this one (``NN_name.html``); anything else (the glossary, the README) points into
    ``folder``, the notebooks' own folder, as a file URI (or stays as it is without one)."""

    def link(match: re.Match) -> str:
        target, anchor = match.group(1), match.group(2) or ""
        if re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", target):
            return f'href="{target[: -len(".ipynb")]}.html{anchor}"'
        if folder is None or not target:
            return match.group(0)
        return f'href="{html.escape((folder / target).resolve().as_uri())}{anchor}"'

    return _LINK.sub(link, body)


def notebook_html(notebook: Mapping[str, Any], title: str, folder: Path | None = None) -> str:
    """One executed notebook as a self-contained page (nbconvert's ``basic`` template: each
    cell a ``div`` with ``id="cell-id=<the cell's id>"``, the anchor the claims link to);
    relative links as :func:`_relink` makes them, from the notebooks' ``folder``."""
    import nbformat
    from nbconvert import HTMLExporter
    from pygments.formatters import HtmlFormatter

    node = nbformat.reads(json.dumps(notebook), as_version=4)
    body, _ = HTMLExporter(template_name="basic").from_notebook_node(node)
    body = _relink(re.sub(r"<script\b.*?</script>", "", body, flags=re.S | re.I), folder)
    return _page(title, body, HtmlFormatter().get_style_defs(".highlight"))


def _e(value: Any) -> str:
    return html.escape(str(value))


def index_html(doc: Mapping[str, Any], plots: Mapping[str, str]) -> str:
    """The review page of ``doc`` (:func:`document`), with ``plots`` (claim id -> PNG, base64)."""
    summary = doc["summary"]
    counts = ", ".join(f'<span class="v {name}">{summary[name]} {name}</span>' for name in VERDICTS)
    brokers = "".join(
        f"<tr><th>{_e(role)} broker</th><td>{_e(b.get('url', ''))}</td>"
        f"<td>RabbitMQ {_e(b.get('rabbitmq', 'unknown'))}, Erlang {_e(b.get('erlang', 'unknown'))}"
        f"</td></tr>"
        for role, b in doc.get("brokers", {}).items()
    )
    machine = ", ".join(f"{k} {v}" for k, v in doc.get("machine", {}).items())
    runs = []
    for run in doc["notebooks"]:
        state = (
            f'<span class="failed">{_e(run["status"])}</span>'
            if run["status"] != "passed"
            else "passed"
        )
        error = f"<pre>{_e(run['error'])}</pre>" if run["error"] else ""
        skipped = "".join(f'<div class="muted">{_e(line)}</div>' for line in run["skipped"])
        runs.append(
            f'<tr><td><a href="{_e(run["html"])}">{_e(run["notebook"])}</a></td>'
            f"<td>{state}{error}{skipped}</td><td>{run['seconds']:.0f} s</td></tr>"
        )
    claims = []
    for c in doc["claims"]:
        plot = (
            f'<img alt="plot of {_e(c["id"])}" src="data:image/png;base64,{plots[c["id"]]}">'
            if c["id"] in plots
            else ""
        )
        remedy = f"<div><b>Remedy:</b> {_e(c['remedy'])}</div>" if c["remedy"] else ""
        claims.append(
            f'<div class="claim" id="{_e(c["id"])}"><div class="body">'
            f'<span class="v {_e(c["verdict"])}">{_e(c["verdict"])}</span> '
            f'<code>{_e(c["id"])}</code> <span class="muted">notebook {_e(c["notebook"])}</span>'
            f"<div><b>2014:</b> {_e(c['claim'])}</div><div><b>Measured:</b> {_e(c['number'])}</div>"
            f'<div class="muted"><b>Conditions:</b> {_e(c["conditions"])}</div>{remedy}'
            f'<div><a href="{_e(c["link"])}">evidence: {_e(c["evidence"])}</a></div>'
            f"</div>{plot}</div>"
        )
    glance = "".join(
        f'<tr><td><span class="v {_e(c["verdict"])}">{_e(c["verdict"])}</span></td>'
        f'<td><a href="#{_e(c["id"])}">{_e(c["id"])}</a></td><td>{_e(c["claim"])}</td>'
        f"<td>{_e(c['notebook'][:2])}</td></tr>"
        for c in doc["claims"]
    )
    body = (
        "<h1>mpsoa-lab review: the 2014 design's claims, measured</h1>"
        f"<p>{summary['claims']} claims: {counts}. Generated {_e(doc.get('generated_at', ''))}.</p>"
        f'<table>{brokers}<tr><th>machine</th><td colspan="2">{_e(machine)}</td></tr></table>'
        "<h2>Notebooks</h2><table><tr><th>notebook</th><th>run</th><th>time</th></tr>"
        + "".join(runs)
        + "</table><h2>At a glance</h2><table><tr><th>verdict</th><th>claim</th>"
        "<th>the 2014 design said</th><th>notebook</th></tr>"
        + glance
        + "</table><h2>Claims, with their numbers and remedies</h2>"
        + "".join(claims)
    )
    return _page("mpsoa-lab review", body)
