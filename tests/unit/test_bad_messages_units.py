"""Notebook 12's pieces that need no broker: the dead-letter policy's pattern matches the
design's six queues and nothing else, each service's dead letters have a queue of their own,
the catalogue of bad messages is what its keys say, and the pickle payload does nothing but
create its marker, under the lab's home."""

from __future__ import annotations

import json
import re

import pytest

from mpsoa_lab.design.dead_letters import (
    DEAD_LETTER_EXCHANGE,
    KEEPING_CONSUMER,
    dead_letter_policy,
    dead_letter_queue,
    design_queue_pattern,
)
from mpsoa_lab.design.naming import KINDS, SERVICES, queue_name


def test_the_policy_matches_the_design_s_queues_and_nothing_else():
    pattern = re.compile(design_queue_pattern())
    for service in SERVICES:
        for kind in KINDS:
            assert pattern.search(queue_name(service, kind))
    for other in (
        "mpledger.dead",
        "mpledger.sync.x",
        "xmpledger.sync",
        "mpledgerXsync",
        "celery",
        "celery@host.celery.pidbox",
    ):
        assert not pattern.search(other), other


def test_the_policy_names_the_exchange_and_applies_to_queues_only():
    policy = dead_letter_policy()
    assert policy["definition"] == {"dead-letter-exchange": DEAD_LETTER_EXCHANGE}
    assert policy["apply_to"] == "queues"


def test_each_service_s_dead_letters_have_a_queue_bound_to_its_routing_keys():
    queue = dead_letter_queue("mpledger")
    assert queue.name == "mpledger.dead"
    assert queue.exchange.name == DEAD_LETTER_EXCHANGE and queue.exchange.type == "topic"
    assert queue.routing_key == "mpledger.#" and queue.durable


def test_the_keeping_consumer_is_a_setting_celery_accepts():
    from celery.app.defaults import SETTING_KEYS

    from mpsoa_lab.design.dead_letters import KeepingConsumer

    assert "worker_consumer" in SETTING_KEYS
    module, name = KEEPING_CONSUMER.split(":")
    assert getattr(__import__(module, fromlist=[name]), name) is KeepingConsumer


@pytest.fixture
def bad(monkeypatch, tmp_path):
    monkeypatch.setenv("MPSOA_LAB_HOME", str(tmp_path))
    from mpsoa_lab.experiments import bad_messages

    return bad_messages


def test_the_catalogue_is_what_its_keys_say(bad):
    messages = {m.key: m for m in bad.catalogue()}
    assert len(messages) == len(bad.catalogue())  # one message per key
    good = messages["wrong arguments"]
    assert good.headers["task"] == bad.TASK and good.content_type == "application/json"
    with pytest.raises(ValueError):
        json.loads(messages["garbage"].body)
    assert messages["content type"].content_type == "application/xml"
    assert messages["pickle"].content_type == "application/x-python-serialize"
    assert "task" not in messages["no celery headers"].headers
    assert "id" not in messages["no task id"].headers
    assert messages["unknown task"].headers["task"] not in {bad.TASK}
    assert messages["another service's task"].headers["task"].startswith("mplogin.")
    assert isinstance(json.loads(messages["body shape"].body), dict)
    assert json.loads(good.body)[1] == {"no_such_argument": 1}
    for message in messages.values():  # each can be found again, wherever it went
        assert message.headers[bad.CASE_HEADER] == message.key
        assert message.routing_key == "mpledger.async.record_entry"
    ids = [m.task_id for m in messages.values() if m.task_id]
    assert len(set(ids)) == len(ids)  # fresh ids


def test_the_pickle_case_is_a_plain_tuple():
    import pickletools

    from mpsoa_lab.experiments.bad_messages import catalogue

    body = next(m for m in catalogue() if m.key == "pickle").body
    ops = {op.name for op, _, _ in pickletools.genops(body)}
    assert not ops & {"GLOBAL", "STACK_GLOBAL", "REDUCE", "INST", "OBJ", "NEWOBJ", "BUILD"}


def test_the_pickle_payload_does_nothing_but_touch_its_marker(tmp_path):
    import pickle
    import pickletools

    from mpsoa_lab.experiments.pickle_payload import Marker, payload

    marker = tmp_path / "marker"
    body = payload(((Marker(marker),), {}, {}))
    globals_named = [
        arg for op, arg, _ in pickletools.genops(body) if op.name in ("GLOBAL", "SHORT_BINUNICODE")
    ]
    assert "Path.touch" in globals_named  # the one callable it names
    assert not {"os", "system", "subprocess", "eval", "exec"} & set(map(str, globals_named))
    assert not marker.exists()
    loaded = pickle.loads(body)  # what a worker that accepts pickle does
    assert marker.exists() and loaded[0] == (None,)


def test_a_marker_outside_the_lab_s_home_is_refused(tmp_path):
    from types import SimpleNamespace

    from mpsoa_lab.experiments.pickle_payload import marker_path

    lab = SimpleNamespace(home=tmp_path / "home", space_home=tmp_path / "home" / "spaces" / "k")
    assert (tmp_path / "home") in marker_path(lab, "x").parents
    elsewhere = SimpleNamespace(home=tmp_path / "home", space_home=tmp_path / "other")
    with pytest.raises(ValueError, match="under the lab's home"):
        marker_path(elsewhere, "x")
