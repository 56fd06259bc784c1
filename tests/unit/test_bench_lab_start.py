"""make bench's part (d), the lab's start against its nodes' own boot, as the report prints it."""

from __future__ import annotations

from mpsoa_lab.bench.report import _lab_start


def test_the_report_shows_both_starts_side_by_side_with_the_verdict():
    start = {
        "rounds": 2,
        "up_s": [6.9, 6.5],
        "nodes_by_hand_s": [6.2, 6.3],
        "up_median_s": 6.7,
        "nodes_median_s": 6.25,
        "ratios": [1.113, 1.032],
        "ratio": 1.072,
        "target": 1.1,
        "met": True,
    }
    lines = _lab_start(start)
    assert lines[1].startswith("(d) the lab's start against its nodes' own boot, 2 rounds")
    assert "6.70 s" in lines[2] and "6.90, 6.50" in lines[2]
    assert "6.25 s" in lines[3] and "6.20, 6.30" in lines[3]
    assert lines[4].endswith("1.07x (median of the rounds' ratios): PASS")
    assert _lab_start({**start, "met": False})[4].endswith("FAIL")


def test_a_skipped_start_says_why_and_an_old_run_has_none():
    assert _lab_start({"skipped": "not in a quick run"})[1].endswith("skipped, not in a quick run")
    assert _lab_start(None) == []
