"""The verdict API: records that say what a notebook measured, checked at the door."""

from __future__ import annotations

import json

import pytest

from mpsoa_lab.observe import Verdicts, load_verdicts

GOOD = dict(
    claim="round robin spreads calls evenly",
    verdict="holds",
    number="50 and 50 of 100 calls",
    conditions="2 workers, prefetch 1",
    evidence="§2",
)


def test_a_record_is_printed_written_and_read_back(tmp_path, capsys):
    verdicts = Verdicts("04_sync_calls", home=tmp_path)
    verdicts.record("sync-round-robin", **GOOD)
    assert capsys.readouterr().out.strip() == (
        "[HOLDS] sync-round-robin: 50 and 50 of 100 calls (2 workers, prefetch 1)."
    )
    (back,) = load_verdicts(tmp_path)
    assert (back.id, back.notebook, back.verdict) == ("sync-round-robin", "04_sync_calls", "holds")


def test_a_notebook_run_again_replaces_its_own_records_and_keeps_the_others(tmp_path):
    Verdicts("05_async_tasks", home=tmp_path).record("async-fire-and-forget", **GOOD, show=False)
    first = Verdicts("04_sync_calls", home=tmp_path)
    first.record("sync-round-robin", **GOOD, show=False)
    first.record("sync-prefetch", **GOOD, show=False)
    again = Verdicts("04_sync_calls", home=tmp_path)
    again.record("sync-round-robin", **{**GOOD, "number": "49 and 51 of 100 calls"}, show=False)
    found = {(v.notebook, v.id): v.number for v in load_verdicts(tmp_path)}
    assert found == {
        ("04_sync_calls", "sync-round-robin"): "49 and 51 of 100 calls",
        ("05_async_tasks", "async-fire-and-forget"): "50 and 50 of 100 calls",
    }
    stored = json.loads((tmp_path / "results" / "verdicts" / "04_sync_calls.json").read_text())
    assert [entry["id"] for entry in stored] == ["sync-round-robin"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"verdict": "ok"}, "use one of holds, fails, partly, obsolete"),
        ({"verdict": "fails"}, "give the remedy"),
        ({"number": " "}, "number is empty"),
        ({"evidence": ""}, "evidence is empty"),
    ],
)
def test_an_incomplete_record_is_refused_with_what_is_missing(tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        Verdicts("04_sync_calls", home=tmp_path).record("sync-round-robin", **{**GOOD, **change})
    assert load_verdicts(tmp_path) == []


@pytest.mark.parametrize("bad", ["Sync Round Robin", "sync_round_robin", "-x", ""])
def test_a_malformed_id_is_refused(tmp_path, bad):
    with pytest.raises(ValueError, match="lower-case words joined by '-'"):
        Verdicts("04_sync_calls", home=tmp_path).record(bad, **GOOD)


def test_a_notebook_name_must_be_the_file_name(tmp_path):
    with pytest.raises(ValueError, match="file name without .ipynb"):
        Verdicts("04_sync_calls.ipynb", home=tmp_path)
