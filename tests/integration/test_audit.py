"""The 2014 settings on Celery 5 and the lab's RabbitMQ nodes, as mpsoa_lab.legacy.audit finds them.

Every status below was observed by running the audit against the lab; if Celery, kombu or
RabbitMQ start treating a 2014 setting differently, these tests go red.
"""

from __future__ import annotations

import pytest
from celery.app.defaults import _TO_NEW_KEY

from mpsoa_lab.legacy import design2014 as legacy
from mpsoa_lab.legacy.audit import (
    STATUSES,
    audit_legacy_settings,
    observe_legacy_on_broker,
    probe_mixed_names,
)
from mpsoa_lab.legacy.upgrade import run_celery_upgrade_settings
from mpsoa_lab.plumbing.errors import ManagementAPIUnavailable
from mpsoa_lab.plumbing.management import Management

#: Asserts nothing that another test's load could change: make test runs it beside others.
pytestmark = pytest.mark.beside_others

#: The status of each 2014 setting, as the audit observed it.
EXPECTED = {
    "CELERY_ROUTES": "renamed",
    "CELERY_ACCEPT_CONTENT": "renamed",
    "CELERY_TASK_SERIALIZER": "renamed",
    "CELERY_RESULT_SERIALIZER": "renamed",
    "CELERY_TIMEZONE": "renamed",
    "CELERY_ENABLE_UTC": "silently ignored",
    "CELERY_BACKEND": "silently ignored",
    "CELERY_RESULT_BACKEND": "removed",
    "CELERY_QUEUE_HA_POLICY": "silently ignored",
    "CELERY_DISABLE_RATE_LIMITS": "renamed",
    "CELERY_QUEUES": "renamed",
    "CELERY_QUEUES['<service>.sync']['delivery_mode']": "still works",
    "BROKER_HEARTBEAT": "renamed",
    "BROKER_HEARTBEAT_CHECKRATE": "renamed",
    "BROKER_POOL_LIMIT": "renamed",
    "CELERY_IGNORE_RESULT": "renamed",
    "BROKER_URL (SUBSCRIBER: pyamqp://)": "still works",
    "BROKER_URL (PUBLISHER: librabbitmq://)": "removed",
}


def _urls(lab) -> dict:
    return {
        "sync_url": lab.sync.url,
        "async_url": lab.async_.url,
        "management_url": lab.sync.management_url,
        "async_management_url": lab.async_.management_url,
    }


@pytest.fixture(scope="module")
def rows(lab):
    return {row["setting"]: row for row in audit_legacy_settings(**_urls(lab))}


@pytest.fixture(scope="module")
def observed(lab):
    return observe_legacy_on_broker(**_urls(lab))


def _vhosts(management_url: str) -> set[str]:
    with Management(management_url) as api:
        return set(api.vhosts())


# -- the audit table -------------------------------------------------------------------------------


def test_one_row_per_2014_setting_with_a_known_status(rows):
    config_names = {k for k in vars(legacy.CeleryConfig) if k.isupper()}
    assert config_names <= set(rows)
    assert set(rows) == set(EXPECTED)
    for row in rows.values():
        assert set(row) == {"setting", "value_2014", "celery5_name", "status", "evidence"}
        assert row["status"] in STATUSES
        assert row["evidence"]


def test_statuses_are_the_observed_ones(rows):
    assert {name: row["status"] for name, row in rows.items()} == EXPECTED


def test_renamed_settings_carry_celerys_own_new_name(rows):
    for name, row in rows.items():
        if row["status"] == "renamed":
            assert row["celery5_name"] == _TO_NEW_KEY[name]
            assert name in _TO_NEW_KEY


def test_ha_policy_is_silently_ignored(rows):
    row = rows["CELERY_QUEUE_HA_POLICY"]
    assert row["status"] == "silently ignored"
    assert row["celery5_name"] is None
    assert "x-ha-policy is on 0 of the 6 declared queues" in row["evidence"]


def test_x_ha_policy_is_absent_on_the_broker(observed):
    assert set(observed["queues"]) == set(legacy._get_celery_queues())
    for name, info in observed["queues"].items():
        assert info is not None, name
        assert info["arguments"] == {}, name
        assert info["durable"] is True
    # The broker does keep the argument when a client sends it: it is Celery that drops it.
    assert observed["ha_control"]["arguments"] == {"x-ha-policy": "all"}


def test_celery_backend_is_not_a_key_and_get_fails_at_once(rows, observed):
    row = rows["CELERY_BACKEND"]
    assert row["status"] == "silently ignored" and row["celery5_name"] is None
    assert "CELERY_BACKEND" not in _TO_NEW_KEY and "CELERY_RESULT_BACKEND" in _TO_NEW_KEY
    kind, message = observed["get"]
    assert kind == "NotImplementedError"
    assert message.startswith("No result backend is configured")


def test_amqp_result_backend_is_removed(rows):
    row = rows["CELERY_RESULT_BACKEND"]
    assert (row["value_2014"], row["celery5_name"]) == ("amqp", "result_backend")
    assert row["status"] == "removed"
    assert "ImproperlyConfigured: Unknown result backend: 'amqp'" in row["evidence"]


def test_enable_utc_old_spelling_is_silently_ignored(rows):
    row = rows["CELERY_ENABLE_UTC"]
    assert row["status"] == "silently ignored"
    assert "(it knows ENABLE_UTC)" in row["evidence"]


def test_queue_dict_delivery_mode_still_makes_sync_messages_transient(rows, observed):
    assert observed["sync_message"]["delivery_mode"] == 1
    assert observed["async_message"]["delivery_mode"] == 2
    assert rows["CELERY_QUEUES['<service>.sync']['delivery_mode']"]["status"] == "still works"


def test_legacy_router_and_pickle_reach_the_broker(observed):
    assert observed["sync_message"]["exchange"] == "mplogin"
    assert observed["sync_message"]["routing_key"] == "mplogin.sync.register"
    assert observed["sync_message"]["content_type"] == "application/x-python-serialize"
    assert observed["async_message"]["routing_key"] == "mplogin.async.send_welcome_mail"


def test_queue_table_is_declared_with_its_bindings(observed):
    for name, spec in legacy._get_celery_queues().items():
        assert (spec["exchange"], name, spec["binding_key"]) in observed["bindings"]
        assert observed["exchanges"][spec["exchange"]] == "topic"


def test_heartbeat_reaches_worker_connections_only(observed):
    assert observed["heartbeat_worker"] == 10
    assert observed["heartbeat_publisher"] == 0


def test_pool_limit_zero_disables_the_pool(observed):
    assert observed["pool"] == {"limit": 0, "reused": False, "closed_on_release": True}


def test_librabbitmq_publisher_is_removed(rows, observed):
    assert observed["publisher"][0] == "ModuleNotFoundError"
    assert rows["BROKER_URL (PUBLISHER: librabbitmq://)"]["status"] == "removed"


def test_scratch_vhosts_are_deleted(lab, observed):
    assert observed["vhosts"]
    left = _vhosts(lab.sync.management_url) | _vhosts(lab.async_.management_url)
    assert not left & set(observed["vhosts"])
    assert not {v for v in left if v.startswith("mpsoa-audit-")}


# -- mixing names, and celery upgrade settings ----------------------------------------------


def test_one_new_name_among_old_ones_makes_celery_refuse_the_config():
    report = probe_mixed_names()
    assert report["config_from_object"] == "returned"
    assert report["raised"] == "ImproperlyConfigured"
    assert "result_backend -> CELERY_RESULT_BACKEND" in report["message"]


@pytest.fixture(scope="module")
def upgrade():
    return run_celery_upgrade_settings()


def test_celery_upgrade_settings_renames_what_it_knows(upgrade):
    assert upgrade["returncode"] == 0
    assert upgrade["backup_written"] is True
    assert upgrade["renamed"] == {
        old: _TO_NEW_KEY[old]
        for old in (
            "CELERY_ROUTES",
            "CELERY_ACCEPT_CONTENT",
            "CELERY_TASK_SERIALIZER",
            "CELERY_RESULT_SERIALIZER",
            "CELERY_TIMEZONE",
            "CELERY_DISABLE_RATE_LIMITS",
            "CELERY_QUEUES",
            "BROKER_HEARTBEAT",
            "BROKER_HEARTBEAT_CHECKRATE",
            "BROKER_POOL_LIMIT",
            "CELERY_IGNORE_RESULT",
        )
    }
    assert upgrade["renamed_where"]["CELERY_ROUTES"] == "class body"
    assert upgrade["renamed_where"]["CELERY_IGNORE_RESULT"] == "attribute of an object"


def test_celery_upgrade_settings_falls_short(upgrade):
    assert upgrade["left_unchanged"] == ["CELERY_BACKEND", "CELERY_QUEUE_HA_POLICY"]
    assert upgrade["mangled"] == {"CELERY_ENABLE_UTC": "CELERY_enable_utc"}
    after = upgrade["after_upgrade"]
    assert after["error"] is None
    assert after["deprecated_settings"] == []
    assert after["unknown_keys"] == [
        "CELERY_BACKEND",
        "CELERY_QUEUE_HA_POLICY",
        "CELERY_enable_utc",
    ]
    assert after["mangled_effect"]["CELERY_enable_utc"] == {
        "set_to": False,
        "setting": "enable_utc",
        "reads": True,
    }
    assert after["result_backend"] is None
    assert after["task_serializer"] == "pickle"
    assert after["factory_still_uses_librabbitmq"] is True
    assert len(upgrade["other_lines_changed"]) == 1  # the queue table's docstring


def test_audit_without_a_management_api_says_so(lab):
    with pytest.raises(ManagementAPIUnavailable, match="did not answer"):
        audit_legacy_settings(lab.sync.url, management_url="http://guest:guest@127.0.0.1:9/")
