"""Notebook 14's harness without a broker: the two designs' settings, the side-by-side table
and what counts as a message gone."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from mpsoa_lab.design import recommended as rec  # noqa: E402
from mpsoa_lab.experiments import two_designs as td  # noqa: E402
from mpsoa_lab.experiments.bad_messages import CELERY_CONSUMER, Fate  # noqa: E402


def test_the_2014_side_runs_the_2014_settings_celery_5_still_has():
    worker, options, config, publish, call, queues = td.DESIGNS["2014"]
    settings = config("async")
    assert settings["accept_content"] == ["pickle", "json"]
    assert settings["task_serializer"] == settings["result_serializer"] == "pickle"
    assert settings["broker_heartbeat"] == 10
    assert settings["worker_consumer"] == CELERY_CONSUMER
    assert not settings.get("task_acks_late") and "confirm_publish" not in str(settings)
    assert "broker_pool_limit" not in td.SETTINGS_2014  # left out: it holds for every app
    assert options("async")["prefetch_multiplier"] == 4 and queues is None
    assert publish() == {} and call() == {}
    assert worker("sync") == td.SETTINGS_2014 and worker("sync") is not td.SETTINGS_2014


def test_the_recommended_side_is_the_recommended_design():
    worker, options, config, publish, call, queues = td.DESIGNS["recommended"]
    assert worker is rec.worker_config and options is rec.worker_options
    assert config is rec.recommended_config and queues is rec.recommended_queues
    assert publish() == {"mandatory": True}
    assert call() == {"expires": rec.SYNC_TIMEOUT}


def _fate(**changes):
    base = dict(key="k", left_in_queue=0, dead_lettered=False, death_reason=None, ran=False,
                kept_as_failed=False, log=[], worker_alive=True, sentinel_ran=True)  # fmt: skip
    return Fate(**{**base, **changes})


@pytest.mark.parametrize(
    "changes, gone",
    [
        ({}, True),
        ({"ran": True}, False),
        ({"kept_as_failed": True}, False),
        ({"dead_lettered": True}, False),
        ({"left_in_queue": 1}, False),
        ({"worker_alive": False}, True),  # dying of it is counted apart
    ],
)
def test_a_message_is_gone_when_it_left_no_trace(changes, gone):
    assert td.gone(_fate(**changes)) is gone


def _table():
    table = td.SideBySide()
    table.add("sync call", "median ms", {"2014": 6.78, "recommended": 8.33})
    table.add("worker killed", "tasks lost", {"2014": 1, "recommended": 0}, harm=True)
    table.add("malformed", "messages gone", {"2014": 6, "recommended": 0}, harm=True)
    return table


def test_the_table_has_a_row_per_measure_and_a_column_per_design():
    lines = _table().table().splitlines()
    assert lines[0].split() == ["scenario", "measure", "2014", "recommended"]
    assert lines[1].split()[-2:] == ["6.78", "8.33"]
    assert lines[2].split()[-2:] == ["1", "0"]
    assert len(lines) == 4


def test_values_are_read_back_and_an_unknown_row_is_named():
    table = _table()
    assert table.value("malformed", "messages gone", "2014") == 6
    assert table.harm == [("worker killed", "tasks lost"), ("malformed", "messages gone")]
    with pytest.raises(KeyError, match="no row.*'burst'"):
        table.value("burst", "tasks lost", "2014")


def test_the_harm_plot_draws_a_bar_per_design_and_harm_row():
    fig, ax = plt.subplots()
    try:
        _table().plot_harm(ax)
        assert len(ax.patches) == 4  # 2 harm rows x 2 designs
        assert [t.get_text() for t in ax.get_yticklabels()] == [
            "worker killed: tasks lost",
            "malformed: messages gone",
        ]
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["2014", "recommended"]
    finally:
        plt.close(fig)


def test_median_ms():
    assert td.median_ms([0.001, 0.003, 0.002]) == pytest.approx(2.0)
