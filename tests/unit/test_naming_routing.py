"""Task names, the modern router and the app factory: pure logic, no broker."""

from __future__ import annotations

import pytest

from mpsoa_lab import MalformedTaskName, RoutingError, UnknownService, celery_apps_factory
from mpsoa_lab.design.apps import base_config, normalize_broker_url
from mpsoa_lab.design.naming import SERVICES, TaskName, parse_task_name
from mpsoa_lab.design.routing import kind_router, route_task
from mpsoa_lab.design.topology import binding_key, platform_queues, service_queues

URL = "amqp://guest:guest@127.0.0.1:1//"  # never connected to: nothing here publishes


@pytest.mark.parametrize(
    "name,expected",
    [
        ("mplogin.sync.register", TaskName("mplogin", "sync", "register")),
        ("mpwallet.async.credit", TaskName("mpwallet", "async", "credit")),
        ("mpledger.sync.entry_count", TaskName("mpledger", "sync", "entry_count")),
        ("mplogin.sync.register_v2", TaskName("mplogin", "sync", "register_v2")),
    ],
)
def test_parse_valid_names(name, expected):
    parsed = parse_task_name(name)
    assert parsed == expected
    assert parsed.queue == f"{expected.service}.{expected.kind}"
    assert parsed.exchange == expected.service
    assert parsed.routing_key == name


@pytest.mark.parametrize(
    "name",
    [
        "mplogin.sync",
        "mplogin.sync.",
        "mplogin.sync.register.extra",
        "mplogin.SYNC.register",
        "mploginXsyncXregister",
        "mplogin.syncing.register",
        "mplogin.sync.2fa",
        "mp.sync.x",
        "mplogin..register",
        "mplogin.sync.Register",
        "mplogin.sync.register\n",
    ],
)
def test_malformed_platform_names_raise_with_advice(name):
    with pytest.raises(MalformedTaskName) as err:
        parse_task_name(name)
    assert repr(name) in str(err.value)
    assert "<service>.<sync|async>.<method>" in str(err.value)


def test_unknown_service_names_the_known_ones():
    with pytest.raises(UnknownService) as err:
        parse_task_name("mpshop.sync.checkout")
    message = str(err.value)
    assert "'mpshop'" in message
    assert all(service in message for service in SERVICES)


def test_router_leaves_celery_tasks_to_celery():
    assert route_task("celery.ping") is None
    assert route_task("celery.chord_unlock") is None
    assert route_task("myapp.tasks.add") is None


def test_router_routes_platform_tasks_by_name():
    assert route_task("mpwallet.async.credit") == {
        "queue": "mpwallet.async",
        "routing_key": "mpwallet.async.credit",
    }


def test_router_raises_instead_of_falling_back():
    with pytest.raises(MalformedTaskName):
        route_task("mplogin-sync-register")
    with pytest.raises(MalformedTaskName):  # a mistyped platform name, not someone else's task
        route_task("MPLOGIN.sync.register")
    with pytest.raises(UnknownService):
        route_task("mpshop.async.x")


def test_kind_router_refuses_the_other_kind():
    sync_router = kind_router("sync")
    assert sync_router("mplogin.sync.register")["queue"] == "mplogin.sync"
    with pytest.raises(RoutingError, match="is an async task but was sent through the sync app"):
        sync_router("mplogin.async.record_login")
    with pytest.raises(RoutingError, match="is a sync task but was sent through the async app"):
        kind_router("async")("mplogin.sync.register")
    with pytest.raises(ValueError):
        kind_router("batch")


def test_topology_matches_the_design():
    queues = {q.name: q for q in platform_queues()}
    assert sorted(queues) == sorted(f"{s}.{k}" for s in SERVICES for k in ("sync", "async"))
    for service in SERVICES:
        sync_q, async_q = service_queues(service)
        for queue, kind in ((sync_q, "sync"), (async_q, "async")):
            assert queue.exchange.name == service
            assert queue.exchange.type == "topic"
            assert queue.routing_key == binding_key(service, kind) == f"{service}.{kind}.#"
            assert queue.durable and queue.exchange.durable


def test_factory_returns_modern_apps():
    sync_app, async_app = celery_apps_factory("PUBLISHER", URL, URL, "mplogin")
    assert sync_app.main == "mplogin.sync_app" and async_app.main == "mplogin.async_app"
    assert sync_app.conf.result_backend == "rpc://"
    assert async_app.conf.task_ignore_result is True
    for app in (sync_app, async_app):
        assert app.conf.task_serializer == "json"
        assert app.conf.accept_content == ["json"]
        assert app.conf.enable_utc is True and app.conf.timezone == "UTC"
        assert app.conf.task_create_missing_queues is False
        assert app.conf.broker_url == URL
    assert sync_app.conf.task_default_delivery_mode == "transient"
    assert async_app.conf.task_default_delivery_mode == "persistent"
    assert {q.name for q in sync_app.amqp.queues.values()} == {
        *(f"{s}.sync" for s in SERVICES),
        "celery",
    }


def test_factory_routes_through_celery_router():
    sync_app, async_app = celery_apps_factory("SUBSCRIBER", URL, URL, "mpwallet")
    route = sync_app.amqp.router.route({}, "mpwallet.sync.deposit")
    assert route["queue"].name == "mpwallet.sync"
    assert route["routing_key"] == "mpwallet.sync.deposit"
    assert route["queue"].exchange.name == "mpwallet"
    # Celery's own tasks still have a queue to go to.
    assert sync_app.amqp.router.route({}, "celery.ping")["queue"].name == "celery"
    with pytest.raises(MalformedTaskName):
        async_app.amqp.router.route({}, "mpwallet.async.credit.now")


@pytest.mark.parametrize(
    "kwargs,error",
    [
        (dict(app_type="CONSUMER", service_name="mplogin"), ValueError),
        (dict(app_type="PUBLISHER", service_name="mpshop"), UnknownService),
    ],
)
def test_factory_rejects_bad_arguments(kwargs, error):
    with pytest.raises(error):
        celery_apps_factory(sync_broker_url=URL, async_broker_url=URL, **kwargs)


def test_scheme_less_urls_like_the_design():
    assert normalize_broker_url("guest:guest@host:5672//") == "pyamqp://guest:guest@host:5672//"
    assert normalize_broker_url(URL) == URL
    with pytest.raises(ValueError):
        normalize_broker_url("")


def test_base_config_has_no_old_setting_names():
    for kind in ("sync", "async"):
        assert all(key == key.lower() for key in base_config(kind))
