"""The review's files from executed notebooks (issue 25, part 2), without running anything: the
evidence cell and plot each claim links to, claims.json against its schema, and pages that
fetch nothing. Running notebooks and opening the page in a browser: tests/integration/test_review.py."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import asdict
from pathlib import Path

import jsonschema
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from mpsoa_lab.observe import review_page as page
from mpsoa_lab.observe.claims import MIME, from_notebook
from mpsoa_lab.observe.verdicts import Verdict

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n-a-plot-").decode()
NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def verdict(id_: str, evidence: str, verdict: str = "holds", **extra) -> Verdict:
    remedy = "" if verdict == "holds" else "do this instead"
    return Verdict(id_, "the claim", verdict, "3 of 3", "one run", evidence, "99_sample",
                   remedy=remedy, **extra)  # fmt: skip


def shown(v: Verdict) -> dict:
    return new_output("display_data", data={"text/plain": v.line(), MIME: asdict(v)})


def sample() -> dict:
    a, b = verdict("first-claim", "§(a) the burst"), verdict("second-claim", "§nowhere", "fails")
    cells = [
        new_markdown_cell("# 99 · Sample"),
        new_markdown_cell("## (a) The burst, counted"),
        new_code_cell("plot()", outputs=[new_output("display_data", data={"image/png": PNG})]),
        new_code_cell("x = 1"),
        new_markdown_cell("## (b) Something else"),
        new_code_cell(
            "record()",
            outputs=[
                shown(a),
                shown(b),
                new_output("stream", name="stdout", text="Skipped (c) a restart: no nodes.\n"),
            ],
        ),
    ]
    nb = new_notebook(cells=cells)
    return json.loads(nbformat.writes(nb))


def test_evidence_links_the_named_section_or_the_last_heading_before_the_verdict():
    nb = sample()
    found = page.evidence(nb, [verdict("first-claim", "§(a) the burst"),
                               verdict("second-claim", "§nowhere", "fails")])  # fmt: skip
    ids = [c["id"] for c in nb["cells"]]
    assert found["first-claim"].cell_id == ids[1]  # "(a) The burst, counted"
    assert found["first-claim"].plot_png == PNG  # the plot in that section
    assert found["second-claim"].cell_id == ids[4]  # no such heading: the last one before
    assert found["second-claim"].plot_png == ""  # and no plot between it and the verdict


def test_evidence_in_the_saved_notebooks_names_a_heading_for_most_claims():
    """The evidence strings the notebooks record point at their sections: a link lands on the
    section's heading, not only on the cell that recorded the verdict."""
    named = total = 0
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        nb = json.loads(path.read_text())
        verdicts = from_notebook(path)
        found = page.evidence(nb, verdicts)
        assert set(found) == {v.id for v in verdicts}
        cells = {c.get("id"): c for c in nb["cells"]}
        for where in found.values():
            total += 1
            named += cells[where.cell_id]["cell_type"] == "markdown"
    assert total >= 40 and named == total


def test_skipped_sections_are_read_from_the_printed_lines():
    assert page.skipped_sections(sample()) == ("Skipped (c) a restart: no nodes.",)


def runs():
    ok = page.NotebookRun(
        "99_sample", "passed", 12.3, skipped=("Skipped (c) a restart: no nodes.",)
    )
    bad = page.NotebookRun("98_broken", "failed", 2.0, "AssertionError: 1 != 2 | ----> 3 assert x",
                           "abc123")  # fmt: skip
    return ok, bad


def test_claims_json_follows_its_schema():
    nb = sample()
    doc = page.document(
        runs(),
        {"99_sample": nb, "98_broken": {"cells": []}},
        {"99_sample": from_notebook_dict(nb)},
        {"generated_at": "2026-12-07T05:00:00+00:00", "brokers_given_by_url": False,
         "machine": {"cores": 2, "python": "3.11.7"},
         "brokers": {"sync": {"url": "amqp://guest:********@127.0.0.1:1/x", "rabbitmq": "3.10.8",
                              "erlang": "25.2"}}},
    )  # fmt: skip
    schema = json.loads(page.SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(doc, schema)
    assert doc["summary"] == {"claims": 2, "holds": 1, "fails": 1, "partly": 0, "obsolete": 0}
    first = doc["claims"][0]
    assert first["link"] == f"notebooks/99_sample.html#cell-id={nb['cells'][1]['id']}"
    assert first["has_plot"] and not doc["claims"][1]["has_plot"]
    bad = dict(doc, summary={**doc["summary"], "claims": -1})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_evidence_found_once_is_not_looked_for_again():
    nb = sample()
    verdicts = from_notebook_dict(nb)
    found = {"99_sample": {v.id: page.Evidence("given", "") for v in verdicts}}
    doc = page.document(runs()[:1], {"99_sample": nb}, {"99_sample": verdicts},
                        {"generated_at": "now", "machine": {}, "brokers": {}}, found)  # fmt: skip
    assert [c["link"] for c in doc["claims"]] == ["notebooks/99_sample.html#cell-id=given"] * 2
    assert not any(c["has_plot"] for c in doc["claims"])


def from_notebook_dict(nb: dict) -> list[Verdict]:
    return [
        Verdict(**o["data"][MIME])
        for c in nb["cells"]
        for o in c.get("outputs", [])
        if MIME in o.get("data", {})
    ]


FETCHES = re.compile(r"<(script|link|iframe|object|embed)\b|(?:src|href)=\"(?:https?:)?//", re.I)


def test_the_index_shows_every_claim_the_failure_and_the_skips_and_fetches_nothing():
    nb = sample()
    verdicts = from_notebook_dict(nb)
    doc = page.document(runs(), {"99_sample": nb}, {"99_sample": verdicts},
                        {"generated_at": "now", "machine": {}, "brokers": {}})  # fmt: skip
    html = page.index_html(doc, {"first-claim": PNG})
    for v in verdicts:
        assert f'id="{v.id}"' in html and v.remedy in html
    assert "AssertionError: 1 != 2" in html and "Skipped (c) a restart" in html
    assert f"data:image/png;base64,{PNG}" in html
    assert "default-src 'none'" in html  # the page forbids itself any fetch
    assert not FETCHES.search(html)


def test_a_notebook_page_has_an_anchor_per_cell_and_fetches_nothing():
    nb = sample()
    html = page.notebook_html(nb, "99")
    for cell in nb["cells"]:
        assert f'id="cell-id={cell["id"]}"' in html
    assert "default-src 'none'" in html
    assert not FETCHES.search(html.replace('href="#', 'href="x'))


def test_a_run_says_how_it_ended():
    with pytest.raises(ValueError, match="passed, failed or not run"):
        page.NotebookRun("01_x", "ok", 1.0)


def test_links_to_other_notebooks_go_to_their_pages_and_the_rest_into_the_notebooks_folder():
    body = (
        '<a href="03_router_and_config.ipynb#x">03</a> <a href="glossary.md">g</a> '
        '<a href="#cell-id=1">here</a> <a href="https://example.org/">out</a>'
    )
    linked = page._relink(body, NOTEBOOKS)
    assert 'href="03_router_and_config.html#x"' in linked
    assert f'href="{(NOTEBOOKS / "glossary.md").as_uri()}"' in linked
    assert 'href="#cell-id=1"' in linked and 'href="https://example.org/"' in linked
    assert page._relink(body, None).count('href="glossary.md"') == 1
