"""Notebook 03's tables and verdicts (mpsoa_lab.legacy.probes), on data made here: no broker."""

from __future__ import annotations

from kombu import Exchange, Queue

from mpsoa_lab.legacy.design2014 import ROUTER_CASES, compare_routers, legacy_route
from mpsoa_lab.legacy.probes import (
    POST_SETTINGS,
    SETTING_VERDICT,
    config_table,
    error_class,
    landing_table,
    router_table,
    set_by,
    setting_verdict,
    status_summary,
)


def test_router_table_has_a_line_per_name_and_shows_errors_and_newlines():
    rows = compare_routers(["mplogin.sync.register", "mpshop.sync.x", "mplogin.sync.register\n"])
    lines = router_table(rows).splitlines()
    assert len(lines) == 4 and lines[0].startswith("task name")
    assert lines[1].split() == ["mplogin.sync.register", "mplogin.sync", "mplogin.sync", "yes"]
    assert lines[2].split() == ["mpshop.sync.x", "mpshop.sync", "UnknownService", "NO"]
    assert lines[3].startswith("mplogin.sync.register\\n ")  # the newline shown, not printed


def test_error_class_is_the_class_name_or_none():
    by_name = {row["task"]: row for row in compare_routers(ROUTER_CASES)}
    assert error_class(by_name["mplogin-sync-register"]) == "MalformedTaskName"
    assert error_class(by_name["mplogin.sync.register"]) is None


def test_landing_table_uses_celery_for_unrouted_names_and_counts_per_queue():
    names = ["mplogin.sync.register", "mplogin.sync.register2", "mpshop.sync.x"]
    landed = {"mplogin.sync": 1, "celery": 1, "mpshop.sync": 1}
    lines = landing_table(names, landed, {"mplogin.sync"}, legacy_route).splitlines()
    assert [line.split()[1:] for line in lines[1:]] == [
        ["mplogin.sync", "1", "yes"],
        ["celery", "1", "no"],
        ["mpshop.sync", "1", "no"],
    ]


def test_status_summary_counts_every_status_and_wraps_between_settings():
    rows = [{"setting": f"SETTING_NUMBER_{i:02}", "status": "renamed"} for i in range(8)]
    rows.append({"setting": "X", "status": "removed"})
    text = status_summary(rows, width=60)
    assert "changed meaning    0  -" in text and text.endswith("total              9")
    renamed = [line for line in text.splitlines() if "SETTING_NUMBER" in line]
    assert len(renamed) > 1 and all(len(line) <= 60 for line in renamed)
    assert sum(line.count("SETTING_NUMBER_") for line in renamed) == 8


def test_config_table_shows_both_apps_and_the_queues_of_the_first():
    exchange = Exchange("mplogin", type="topic")
    configs = {
        "sync": {
            "task_queues": [Queue("mplogin.sync", exchange, "mplogin.sync.#"), Queue("celery")]
        },
        "async": {"task_ignore_result": True},
    }
    lines = config_table(configs).splitlines()
    assert lines[0].split() == ["setting", "sync", "app", "async", "app"]
    assert lines[1].split() == ["task_queues", "mplogin.sync,", "celery", "-"]
    assert lines[2].split() == ["task_ignore_result", "-", "True"]
    assert "topic exchange 'mplogin', binding key 'mplogin.sync.#'" in lines[4]
    assert "default exchange only" in lines[5]


def test_set_by_separates_what_the_post_set_from_what_the_lab_adds():
    for setting in [
        "CELERY_ROUTES",
        "CELERY_BACKEND",
        "BROKER_HEARTBEAT",
        "CELERY_QUEUES['<service>.sync']['delivery_mode']",
        "CELERY_IGNORE_RESULT",
        "BROKER_URL (PUBLISHER: librabbitmq://)",
    ]:
        assert set_by(setting) == "post", setting
    assert set_by("CELERY_RESULT_BACKEND") == "lab"


def test_setting_verdict_follows_the_status_and_quotes_the_observation():
    row = {
        "setting": "BROKER_HEARTBEAT",
        "status": "renamed",
        "celery5_name": "broker_heartbeat",
        "evidence": "Celery maps it: app.conf.broker_heartbeat is 10 (flagged); a worker got 10 s.",
    }
    found = setting_verdict(row)
    assert found["id"] == "config2014-broker-heartbeat" and found["verdict"] == "obsolete"
    assert found["number"] == "renamed to broker_heartbeat: a worker got 10 s"
    assert "broker_heartbeat = 10" in found["remedy"]
    row = {**row, "status": "still works", "evidence": "Published with delivery_mode 1. More."}
    found = setting_verdict(row)
    assert (found["verdict"], found["remedy"]) == ("holds", "")
    assert found["number"] == "still works: Published with delivery_mode 1"
    assert set(SETTING_VERDICT.values()) <= {"holds", "fails", "partly", "obsolete"}


def test_the_observation_leaves_out_clauses_that_restate_or_explain():
    row = {
        "setting": "BROKER_URL (PUBLISHER: librabbitmq://)",
        "status": "removed",
        "celery5_name": "broker_url",
        "evidence": "The app: send_task raised ModuleNotFoundError; Celery requires it only when x.",
    }
    assert (
        setting_verdict(row)["number"] == "removed: The app: send_task raised ModuleNotFoundError"
    )
    row = {
        "setting": "CELERY_BACKEND",
        "status": "silently ignored",
        "celery5_name": None,
        "evidence": "Not in Celery's old-name table; it changes nothing; .get() raised X. See docs.",
    }
    assert setting_verdict(row)["number"] == "silently ignored: it changes nothing; .get() raised X"


def test_every_setting_the_post_set_has_a_claim_and_a_remedy():
    ids = [suffix for suffix, _, _ in POST_SETTINGS.values()]
    assert len(ids) == len(set(ids))
    assert all(set_by(setting) == "post" for setting in POST_SETTINGS)
    for setting, (_, claim, remedy) in POST_SETTINGS.items():
        assert claim, setting
        # only the two that still work as written may go without a remedy
        assert remedy or setting.startswith(("CELERY_QUEUES[", "BROKER_URL (SUB")), setting
