"""The recommended design (issue 25, part 1): every remedy the notebooks recorded is one of its
choices, each choice answers verdicts the notebooks really recorded, and the apps it builds
carry each choice's settings on the kind of app it names."""

from __future__ import annotations

from pathlib import Path

import pytest
from celery import Celery

from mpsoa_lab.design import recommended as rec
from mpsoa_lab.design.apps import base_config
from mpsoa_lab.design.edge.publishing import DEFAULT_TIMEOUT
from mpsoa_lab.design.rpc_backend import REPLY_EXCHANGE_BACKEND
from mpsoa_lab.observe.claims import from_notebooks
from mpsoa_lab.plumbing.errors import RoutingError, UnknownService

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@pytest.fixture(scope="module")
def recorded():
    return {v.id: v for v in from_notebooks(NOTEBOOKS)}


def test_every_claim_a_choice_answers_was_recorded_by_its_notebook(recorded):
    for choice in rec.CHOICES:
        for claim in choice.claims:
            assert claim in recorded, f"{choice.topic}: no notebook recorded {claim!r}"
            assert recorded[claim].notebook[:2] in choice.notebooks, (choice.topic, claim)


def test_every_remedy_the_notebooks_found_is_a_choice(recorded):
    answered = {claim for choice in rec.CHOICES for claim in choice.claims}
    remedied = {i for i, v in recorded.items() if v.verdict != "holds"}
    assert remedied - answered - set(rec.AS_A_WHOLE) == set()


def test_the_verdicts_the_whole_design_answers_were_recorded_by_notebook_14(recorded):
    for claim in rec.AS_A_WHOLE:
        assert recorded[claim].notebook.startswith("14_"), claim
        assert "mpsoa_lab.design.recommended" in recorded[claim].remedy


def test_choices_are_complete_rows():
    rows = rec.choices_table()
    assert len(rows) == len(rec.CHOICES) == len({c.topic for c in rec.CHOICES})
    for row in rows:
        assert all(row[k].strip() for k in ("topic", "where", "setting", "reason", "notebooks"))


def test_a_choice_names_where_and_which_notebook():
    with pytest.raises(ValueError, match="where must be one of"):
        rec.Choice("x", "everywhere", "s", "r", ("04",))
    with pytest.raises(ValueError, match="name the notebook"):
        rec.Choice("x", "edge", "s", "r", ())


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_each_kind_carries_its_choices_settings(kind):
    config = rec.recommended_config(kind)
    chosen = rec.choices_for(kind)
    assert chosen
    for choice in chosen:
        for key, value in choice.config.items():
            assert config[key] == value, (choice.topic, key)
    other = {k for c in rec.CHOICES if c.config and kind not in c.kinds() for k in c.config}
    assert not {k for k in other if config.get(k) != base_config(kind).get(k)} - set(
        k for c in chosen for k in c.config
    )


def test_the_kinds_differ_where_the_notebooks_said():
    sync, async_ = rec.recommended_config("sync"), rec.recommended_config("async")
    assert sync["result_backend"] == REPLY_EXCHANGE_BACKEND and "result_backend" not in async_
    assert async_["task_acks_late"] is True and "task_acks_late" not in sync
    assert async_["broker_transport_options"] == {"confirm_publish": True}
    assert sync["task_default_delivery_mode"] == "transient"
    assert async_["task_default_delivery_mode"] == "persistent"
    for config in (sync, async_):
        assert config["accept_content"] == ["json"] and config["broker_heartbeat"] == 10
        assert config["broker_pool_limit"] == 10


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_the_design_queues_are_quorum_queues(kind):
    queues = rec.recommended_config(kind)["task_queues"]
    design = [q for q in queues if q.name != "celery"]
    assert [q.name for q in design] == [f"{s}.{kind}" for s in ("mplogin", "mpwallet", "mpledger")]
    assert all(q.queue_arguments == {"x-queue-type": "quorum"} for q in design)
    assert all(q.exchange.type == "topic" and q.durable for q in design)


def test_apps_have_the_2014_factorys_shape_and_the_labs_router():
    sync, async_ = rec.recommended_apps("PUBLISHER", "a:b@h:1//", "amqp://c:d@h:2//", "mpwallet")
    assert isinstance(sync, Celery) and isinstance(async_, Celery)
    assert sync.conf.broker_url == "pyamqp://a:b@h:1//"
    assert async_.conf.broker_url == "amqp://c:d@h:2//"
    assert sync.amqp.router.route({}, "mpwallet.sync.balance")["queue"].name == "mpwallet.sync"
    with pytest.raises(RoutingError):
        sync.amqp.router.route({}, "mpwallet.async.credit")


def test_bad_input_is_named():
    with pytest.raises(UnknownService, match="known services"):
        rec.recommended_apps("PUBLISHER", "h", "h", "mpbank")
    with pytest.raises(ValueError, match="app_type"):
        rec.recommended_apps("EDGE", "h", "h", "mplogin")
    for call in (rec.queue_arguments, rec.worker_options, rec.choices_for):
        with pytest.raises(ValueError, match="kind must be one of"):
            call("batch")


def test_worker_options_and_the_edges_timeout():
    assert rec.worker_options("async")["prefetch_multiplier"] == 1
    assert rec.worker_options("sync")["prefetch_multiplier"] == 4
    assert rec.SYNC_TIMEOUT == DEFAULT_TIMEOUT
    assert rec.BROKER_CONFIG == {"cluster_partition_handling": "pause_minority"}


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_workers_config_is_json_and_matches_the_apps(kind):
    import json

    config = json.loads(json.dumps(rec.worker_config(kind)))
    app = rec.recommended_config(kind)
    for key, value in config.items():
        if key != "task_queues":
            assert app[key] == value, key
    assert set(config["task_queues"]) == {q.name for q in app["task_queues"]} - {"celery"}
    assert all(
        q["queue_arguments"] == {"x-queue-type": "quorum"} for q in config["task_queues"].values()
    )
