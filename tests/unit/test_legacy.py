"""The 2014 router, queue table, config and factory as reproduced in
mpsoa_lab.legacy.design2014 (no broker).

Expected values were recorded by running the 2014 code; they pin the behaviour the notebooks
show, so a change in it fails here first.
"""

from __future__ import annotations

import re

import celery
import pytest

from mpsoa_lab.legacy import design2014 as legacy
from mpsoa_lab.legacy.design2014 import (
    ROUTER_CASES,
    CeleryConfig,
    Router,
    _get_celery_queues,
    compare_routers,
    legacy_celery_apps_factory,
    legacy_route,
)


def _route(queue: str, key: str) -> dict[str, str]:
    return {"routing_key": key, "queue": queue}


# -- the 2014 router ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [
        ("mplogin.sync.register", _route("mplogin.sync", "mplogin.sync.register")),
        (
            "mplogin.async.send_welcome_mail",
            _route("mplogin.async", "mplogin.async.send_welcome_mail"),
        ),
        ("mpwallet.sync.get_balance", _route("mpwallet.sync", "mpwallet.sync.get_balance")),
        ("mpledger.async.reconcile", _route("mpledger.async", "mpledger.async.reconcile")),
        # Celery's own tasks and other names are left to Celery's default queue.
        ("celery.ping", None),
        ("billing.sync.charge", None),
        # Digits are not in [a-z_]: valid Python method names are refused.
        ("mplogin.sync.register2", None),
        ("mpwallet.async.top_up_v2", None),
        # Uppercase, four parts, an empty method, an unknown kind.
        ("mplogin.sync.Register", None),
        ("MPLOGIN.sync.register", None),
        ("mplogin.sync.user.register", None),
        ("mplogin.sync.", None),
        ("mplogin.batch.register", None),
    ],
)
def test_router_routes_what_the_2014_patterns_accept(name, expected):
    assert legacy_route(name) == expected
    assert Router().route_for_task(name, args=(), kwargs={}) == expected


@pytest.mark.parametrize(
    "name, queue",
    [
        # The unescaped '.' accepts any character; the queue is "text before the first dot" + kind.
        ("mplogin-sync-register", "mplogin-sync-register.sync"),
        ("mplogin_sync_register", "mplogin_sync_register.sync"),
        ("mploginxsyncxregister", "mploginxsyncxregister.sync"),
        ("mplogin.sync_register", "mplogin.sync"),
        # The sync pattern matches a name that reads as async: the 'a' of async fills a dot.
        ("mplogin_async.register", "mplogin_async.sync"),
    ],
)
def test_unescaped_dot_accepts_any_character(name, queue):
    assert legacy_route(name) == _route(queue, name)


def test_unknown_service_is_routed_to_a_queue_the_2014_table_does_not_have():
    route = legacy_route("mpshop.sync.x")
    assert route == _route("mpshop.sync", "mpshop.sync.x")
    assert route["queue"] not in _get_celery_queues()


def test_dollar_matches_before_a_trailing_newline():
    route = legacy_route("mplogin.sync.register\n")
    assert route == _route("mplogin.sync", "mplogin.sync.register\n")


def test_patterns_are_the_2014_ones_with_unescaped_dots():
    assert legacy.LEGACY_SYNC_PATTERN == r"^mp[a-z_]+.sync.[a-z_]+$"
    assert legacy.LEGACY_ASYNC_PATTERN == r"^mp[a-z_]+.async.[a-z_]+$"
    assert "\\." not in legacy.LEGACY_SYNC_PATTERN + legacy.LEGACY_ASYNC_PATTERN
    assert re.match(legacy.LEGACY_SYNC_PATTERN, "mpXsyncXa") is None  # 'X' is not in [a-z_]
    assert re.match(legacy.LEGACY_SYNC_PATTERN, "mpaXsyncXa") is not None  # but '.' takes it


def test_celery5_still_calls_route_for_task_on_a_router_object():
    app = celery.Celery("t", set_as_current=False)
    app.config_from_object(CeleryConfig)
    route = app.amqp.router.route({}, "mplogin.sync.register")
    assert route["routing_key"] == "mplogin.sync.register"
    assert route["queue"].name == "mplogin.sync"
    assert route["queue"].exchange.name == "mplogin"
    assert route["queue"].exchange.type == "topic"


# -- the queue table and the config --------------------------------------------------------------


def test_queue_table_has_the_2014_shape():
    queues = _get_celery_queues()
    assert list(queues) == [
        "mplogin.sync",
        "mplogin.async",
        "mpwallet.sync",
        "mpwallet.async",
        "mpledger.sync",
        "mpledger.async",
    ]
    for service in legacy.LEGACY_SERVICES:
        assert queues[f"{service}.sync"] == {
            "binding_key": f"{service}.sync.#",
            "exchange": service,
            "exchange_type": "topic",
            "delivery_mode": 1,
        }
        assert queues[f"{service}.async"] == {
            "binding_key": f"{service}.async.#",
            "exchange": service,
            "exchange_type": "topic",
        }


def test_celery5_turns_the_queue_dicts_into_queues_whose_exchange_carries_delivery_mode():
    app = celery.Celery("t", set_as_current=False)
    app.config_from_object(CeleryConfig)
    built = app.amqp.queues
    assert set(built) == set(_get_celery_queues())
    assert built["mplogin.sync"].exchange.delivery_mode == 1
    assert built["mplogin.async"].exchange.delivery_mode is None
    assert built["mplogin.sync"].routing_key == "mplogin.sync.#"
    assert built["mplogin.sync"].queue_arguments is None  # no x-ha-policy


def test_celery_config_has_the_2014_names_and_values():
    names = {k: v for k, v in vars(CeleryConfig).items() if k.isupper()}
    assert set(names) == {
        "CELERY_ROUTES",
        "CELERY_ACCEPT_CONTENT",
        "CELERY_TASK_SERIALIZER",
        "CELERY_RESULT_SERIALIZER",
        "CELERY_TIMEZONE",
        "CELERY_ENABLE_UTC",
        "CELERY_BACKEND",
        "CELERY_QUEUE_HA_POLICY",
        "CELERY_DISABLE_RATE_LIMITS",
        "CELERY_QUEUES",
        "BROKER_HEARTBEAT",
        "BROKER_HEARTBEAT_CHECKRATE",
        "BROKER_POOL_LIMIT",
    }
    assert len(names["CELERY_ROUTES"]) == 1 and isinstance(names["CELERY_ROUTES"][0], Router)
    assert names["CELERY_ACCEPT_CONTENT"] == ["pickle", "json"]
    assert names["CELERY_TASK_SERIALIZER"] == names["CELERY_RESULT_SERIALIZER"] == "pickle"
    assert (names["CELERY_TIMEZONE"], names["CELERY_ENABLE_UTC"]) == ("UTC", True)
    assert names["CELERY_BACKEND"] == "amqp"
    assert names["CELERY_QUEUE_HA_POLICY"] == "all"
    assert names["CELERY_DISABLE_RATE_LIMITS"] is True
    assert names["CELERY_QUEUES"] == _get_celery_queues()
    assert (
        names["BROKER_HEARTBEAT"],
        names["BROKER_HEARTBEAT_CHECKRATE"],
        names["BROKER_POOL_LIMIT"],
    ) == (10, 2.0, 0)


# -- the factory (building apps does not connect) ------------------------------------------------


@pytest.mark.parametrize(
    "app_type, scheme", [("SUBSCRIBER", "pyamqp"), ("PUBLISHER", "librabbitmq")]
)
def test_factory_picks_the_transport_by_app_type(app_type, scheme):
    current = celery.current_app
    sync_app, async_app = legacy_celery_apps_factory(
        app_type, "guest:guest@sync-host:5672//", "guest:guest@async-host:5672//", "mplogin"
    )
    assert sync_app.conf.broker_url == f"{scheme}://guest:guest@sync-host:5672//"
    assert async_app.conf.broker_url == f"{scheme}://guest:guest@async-host:5672//"
    assert (sync_app.main, async_app.main) == ("mplogin.sync_app", "mplogin.async_app")
    assert celery.current_app is current


def test_factory_ignores_results_on_the_async_app_only():
    sync_app, async_app = legacy_celery_apps_factory("SUBSCRIBER", "h//", "h//", "mplogin")
    assert async_app.conf.task_ignore_result is True
    assert sync_app.conf.task_ignore_result is False
    # and neither has a result backend: CELERY_BACKEND is not a key Celery 5 reads
    assert sync_app.conf.result_backend is None


# -- the two routers side by side -----------------------------------------------------------------

#: Whether the 2014 router and the modern one agree on each of ROUTER_CASES (recorded by running).
AGREE = {
    "mplogin.sync.register": True,
    "mplogin.async.send_welcome_mail": True,
    "mpwallet.sync.get_balance": True,
    "mpwallet.async.top_up": True,
    "mpledger.sync.post_entry": True,
    "mpledger.async.reconcile": True,
    "celery.ping": True,
    "celery.backend_cleanup": True,
    "billing.sync.charge": True,
    "mplogin.sync.register2": False,
    "mpwallet.async.top_up_v2": False,
    "mplogin-sync-register": False,
    "mplogin_sync_register": False,
    "mploginxsyncxregister": False,
    "mplogin.sync_register": False,
    "mplogin_async.register": False,
    "mpshop.sync.x": False,
    "mpshop.async.notify": False,
    "mplogin.sync.Register": False,
    "MPLOGIN.sync.register": False,
    "mplogin.sync.user.register": False,
    "mplogin.sync.": False,
    "mplogin.batch.register": False,
    "mplogin.sync.register\n": False,
}


def test_router_cases_hold_agreements_and_disagreements():
    assert set(ROUTER_CASES) == set(AGREE)
    rows = compare_routers(ROUTER_CASES)
    assert [row["task"] for row in rows] == list(ROUTER_CASES)
    assert {row["task"]: row["agree"] for row in rows} == AGREE


def test_agreeing_rows_return_the_same_route_and_no_error():
    for row in compare_routers(ROUTER_CASES):
        if row["agree"]:
            assert row["modern_error"] is None
            assert row["legacy"] == row["modern"]


@pytest.mark.parametrize(
    "name, error",
    [
        ("mplogin-sync-register", "MalformedTaskName"),
        ("mplogin.sync_register", "MalformedTaskName"),
        ("mplogin_async.register", "MalformedTaskName"),
        ("mpshop.sync.x", "UnknownService"),
        ("mpshop.async.notify", "UnknownService"),
        ("mplogin.sync.Register", "MalformedTaskName"),
        ("mplogin.sync.user.register", "MalformedTaskName"),
        ("mplogin.sync.", "MalformedTaskName"),
        ("mplogin.batch.register", "MalformedTaskName"),
    ],
)
def test_modern_router_refuses_with_a_named_error(name, error):
    (row,) = compare_routers([name])
    assert row["modern"] is None
    assert row["modern_error"].startswith(f"{error}: Task name {name!r}")
    assert row["agree"] is False


@pytest.mark.parametrize("name", ["mplogin.sync.register2", "mpwallet.async.top_up_v2"])
def test_digits_are_routed_by_the_modern_router_only(name):
    (row,) = compare_routers([name])
    assert row["legacy"] is None
    queue = name.rsplit(".", 1)[0]
    assert row["modern"] == {"queue": queue, "routing_key": name}


def test_trailing_newline_is_routed_by_2014_and_refused_now():
    # "$" in the 2014 pattern also matches before a final newline; the modern parser uses fullmatch.
    (row,) = compare_routers(["mplogin.sync.register\n"])
    assert row["legacy"]["routing_key"] == "mplogin.sync.register\n"
    assert row["modern"] is None and row["modern_error"].startswith("MalformedTaskName:")
    assert row["agree"] is False


def test_modern_side_uses_the_router_of_the_names_kind():
    rows = {
        r["task"]: r
        for r in compare_routers(
            ["mplogin.sync.register", "mplogin.async.x", "celery.ping", "mplogin-sync-register"]
        )
    }
    assert rows["mplogin.sync.register"]["modern_router"] == "kind_router('sync')"
    assert rows["mplogin.async.x"]["modern_router"] == "kind_router('async')"
    assert rows["celery.ping"]["modern_router"] == "route_task"
    assert rows["mplogin-sync-register"]["modern_router"] == "route_task"
