"""``make review`` (issue 25, part 2) on the session's lab: two short notebooks run, the page and
claims.json written, the page opened in a real browser with no network; a failing notebook still
yields a page; on brokers given by URL the skipped sections are named."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import jsonschema
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

import mpsoa_lab
from mpsoa_lab.observe.review_page import SCHEMA_FILE
from mpsoa_lab.plumbing import settings as settings_mod
from mpsoa_lab.running.review import run_review

pytestmark = [pytest.mark.integration, pytest.mark.beside_others]
ROOT = Path(__file__).resolve().parents[2]


def _browser():
    """Headless Chromium through the system's chromedriver, with every network fetch sent to a
    proxy that is not there: the page must need none."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, (
        "make test installs chromium and chromedriver (tools/ensure-browser.sh)"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
                "--host-resolver-rules=MAP * ~NOTFOUND"):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def _checked(out: Path) -> dict:
    doc = json.loads((out / "claims.json").read_text())
    jsonschema.validate(doc, json.loads(SCHEMA_FILE.read_text()))
    return doc


def test_make_review_on_two_short_notebooks_opens_offline_with_every_claim(lab, tmp_path):
    out = tmp_path / "review"
    env = {**os.environ, "MPSOA_LAB_HOME": str(lab.home)}
    done = subprocess.run(
        ["make", "-s", "review", "NB=01 02", f"REVIEW_ARGS=--out {out}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    doc = _checked(out)
    assert [run["status"] for run in doc["notebooks"]] == ["passed", "passed"]
    ids = [claim["id"] for claim in doc["claims"]]
    assert len(ids) >= 3 and {c["notebook"] for c in doc["claims"]} == {
        "01_architecture", "02_exchanges_queues_bindings"}  # fmt: skip
    assert doc["brokers"]["sync"]["rabbitmq"] != "unknown"
    assert f"{len(ids)} claims" in done.stdout

    browser = _browser()
    try:
        browser.get((out / "index.html").as_uri())
        assert browser.title == "mpsoa-lab review"
        shown = {e.get_attribute("id") for e in browser.find_elements("css selector", ".claim")}
        assert shown == set(ids)
        errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
        assert not errors, errors
        for claim in doc["claims"]:  # each link lands on a cell of the notebook's page
            page, anchor = claim["link"].split("#")
            browser.get((out / page).as_uri() + "#" + anchor)
            assert browser.execute_script(
                "return document.getElementById(arguments[0]) !== null", anchor
            ), claim["link"]
            errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
            assert not errors, (page, errors)
    finally:
        browser.quit()


def _notebook(path: Path, cells: list) -> Path:
    nbformat.write(new_notebook(cells=cells), path)
    return path


RECORD = """\
from mpsoa_lab.observe import Verdicts
Verdicts("97_review_probe").record(
    "review-probe", claim="a probe", verdict="holds", number="1 of 1",
    conditions="the review's test", evidence="§The probe")"""


def test_a_failing_notebook_still_yields_a_page_with_its_error(lab, tmp_path):
    path = _notebook(tmp_path / "97_review_probe.ipynb", [
        new_markdown_cell("## The probe"),
        new_code_cell(RECORD),
        new_code_cell("assert 1 + 1 == 3, 'made to fail'"),
        new_code_cell("print('never' + ' ran')"),
    ])  # fmt: skip
    failing = nbformat.read(path, as_version=4).cells[2].id
    out = tmp_path / "review"
    doc = run_review(lab, out, [path], timeout=120)
    _checked(out)
    (run,) = doc["notebooks"]
    assert run["status"] == "failed" and run["failed_cell"] == failing
    assert "AssertionError: made to fail" in run["error"]
    assert [c["id"] for c in doc["claims"]] == ["review-probe"]  # recorded before the failure
    page = (out / "index.html").read_text()
    assert "made to fail" in page and 'id="review-probe"' in page
    assert "never ran" not in (out / "notebooks" / "97_review_probe.html").read_text()


def test_on_brokers_given_by_url_the_skipped_sections_are_named(lab, tmp_path, monkeypatch):
    for name, value in {
        "MPSOA_SYNC_BROKER_URL": lab.sync.node_url,
        "MPSOA_ASYNC_BROKER_URL": lab.async_.node_url,
        "MPSOA_LAB_HOME": str(tmp_path / "home"),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MPSOA_SPACE", raising=False)
    path = _notebook(tmp_path / "96_review_urls.ipynb", [
        new_code_cell("import mpsoa_lab\nlab = mpsoa_lab.up()"),
        new_code_cell("%%needs_lab_nodes (x) a restart\nlab.restart_node('sync')"),
        new_code_cell("print(lab.external)"),
    ])  # fmt: skip
    external = mpsoa_lab.up(settings_mod.load())
    try:
        doc = run_review(external, tmp_path / "review", [path], timeout=120)
    finally:
        external.down()
    (run,) = doc["notebooks"]
    assert run["status"] == "passed", run["error"]
    assert doc["brokers_given_by_url"] is True
    assert len(run["skipped"]) == 1 and run["skipped"][0].startswith("Skipped (x) a restart:")
    assert "Skipped (x) a restart" in (tmp_path / "review" / "index.html").read_text()
