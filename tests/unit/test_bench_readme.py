"""The README's benchmark figures are the committed reference run's, never retyped."""

from __future__ import annotations

import copy
import json

import pytest

from mpsoa_lab.bench.readme import README, REFERENCE_RUN, block_in, render

RUN = json.loads(REFERENCE_RUN.read_text())


def test_the_readme_quotes_the_committed_reference_run():
    assert block_in(README.read_text()) == render(RUN), (
        "README.md's benchmark block differs from benchmarks/reference-run.json: "
        "run `.venv/bin/python -m mpsoa_lab.bench.readme`"
    )


def test_every_figure_comes_from_the_run():
    changed = copy.deepcopy(RUN)
    changed["async_publish"]["ratios"]["celery_stripped/raw"] = 0.987
    changed["targets"]["sync_p50"]["met"] = False
    text = render(changed)
    assert "reached 0.99×" in text
    assert text.count("**missed**") == 1 + (not RUN["targets"]["async_publish"]["met"])


def test_a_quick_run_is_refused():
    with pytest.raises(ValueError, match="full run"):
        render({**RUN, "mode": "quick"})
