"""The suite's files: pytest imports each test file by its basename (no packages under tests/),
so two files of the same name in tests/unit and tests/integration stop the whole second session
at collection ("import file mismatch"), which a fresh clone of this checkout once did."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_every_test_file_has_a_name_of_its_own():
    names = Counter(path.name for path in TESTS.rglob("test_*.py"))
    assert [name for name, n in names.items() if n > 1] == []
