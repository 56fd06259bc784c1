"""A pickle payload on a real broker, both sides (mpsoa_lab.experiments.pickle_payload): the lab's
JSON-only worker and caller refuse it and serve on; with the 2014 settings it runs (its only
effect: an empty marker file under the lab's home). If a refusal ever loosens, this goes red."""

from __future__ import annotations

import os

import pytest

from mpsoa_lab.experiments import pickle_payload

#: Outcomes, no timings: make test runs it beside others.
pytestmark = pytest.mark.beside_others


def test_a_worker_runs_the_payload_only_if_it_accepts_pickle(lab):
    outcomes = pickle_payload.to_worker(lab)
    lab_way, old = outcomes["lab (JSON only)"], outcomes["2014 (pickle accepted)"]
    assert not lab_way.marker and lab_way.good_task_ran and lab_way.alive
    assert "untrusted content" in lab_way.log
    assert old.marker and old.good_task_ran and old.alive  # it ran, and the worker served on
    as_root = os.geteuid() == 0
    assert old.refused_to_start == as_root == old.forced_root  # Celery's guard: root only here
    assert not list((lab.space_home / "markers").iterdir())  # nothing left behind


def test_a_caller_runs_a_forged_result_only_if_it_accepts_pickle_results(lab):
    outcomes = pickle_payload.to_caller(lab)
    lab_way, old = outcomes["lab (JSON only)"], outcomes["2014 (pickle results)"]
    assert not lab_way.marker and "ContentDisallowed" in lab_way.answer
    assert old.marker and old.answer == "returned None"
    assert lab_way.reply_to and old.reply_to  # read from the request, as any consumer can
