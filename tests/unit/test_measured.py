"""Figures recorded by runs on other server versions: written only when asked, the newest few of
each version kept, printed with their version, date and conditions."""

from __future__ import annotations

import json

from mpsoa_lab.observe.measured import (
    KEEP,
    RECORD_ENV,
    format_recorded,
    record_measured,
    recorded_runs,
)

LABELS = {"a": "broker a", "b": "broker b"}


def test_nothing_is_written_unless_recording_is_on(tmp_path, monkeypatch):
    monkeypatch.delenv(RECORD_ENV, raising=False)
    path = tmp_path / "m.json"
    assert not record_measured(path, "3.10.8", {"a": 1.0}, "c")
    assert not path.exists() and recorded_runs(path) == []


def test_the_newest_runs_of_each_version_are_kept(tmp_path, monkeypatch):
    monkeypatch.setenv(RECORD_ENV, "1")
    path = tmp_path / "measured" / "m.json"
    for i in range(KEEP + 2):
        assert record_measured(path, "4.0.5", {"a": float(i)}, f"run {i}")
    record_measured(path, "3.10.8", {"a": 400.0, "b": 1.0}, "three")
    runs = json.loads(path.read_text())
    assert [r["figures"]["a"] for r in runs if r["version"] == "4.0.5"] == [2.0, 3.0, 4.0]
    assert [r["version"] for r in recorded_runs(path, besides="4.0.5")] == ["3.10.8"]


def test_each_recorded_run_is_one_line_with_its_conditions():
    runs = [
        {
            "version": "4.0.5",
            "date": "2026-12-05",
            "figures": {"a": 41.2},
            "conditions": "20000 tasks",
        }
    ]
    assert (
        format_recorded(runs, LABELS, "MB")
        == "RabbitMQ 4.0.5 (2026-12-05): broker a 41 MB; 20000 tasks"
    )
    assert "MPSOA_RECORD_MEASURED=1" in format_recorded([], LABELS, "MB")
