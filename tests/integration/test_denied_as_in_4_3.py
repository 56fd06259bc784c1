"""The lab's own nodes deny what RabbitMQ 4.3 denies by default, so that a run on 4.0 shows what
4.3 would refuse; and the reply queues the lab's callers declare are ones 4.3 accepts.

On 3.x the setting is unknown and ignored: there the tests check the node runs with it.
"""

from __future__ import annotations

import pytest
from kombu import Connection, Queue

from mpsoa_lab.experiments.clusters import TransientReplyRPC
from mpsoa_lab.plumbing.management import Management
from mpsoa_lab.plumbing.node import DENIED_AS_IN_4_3
from mpsoa_lab.plumbing.versions import parse_version

#: Asserts nothing that another test's load could change: make test runs it beside others.
pytestmark = pytest.mark.beside_others


def _version(lab) -> tuple[int, ...]:
    with Management(lab.sync.management_url) as api:
        return parse_version(api.overview()["rabbitmq_version"])


def test_every_lab_node_is_configured_to_deny_them(lab):
    config = (lab.sync.node.base_dir / "advanced.config").read_text()
    assert "permit_deprecated_features" in config
    assert all(f"{feature} => false" in config for feature in DENIED_AS_IN_4_3)
    assert lab.sync.node.is_running()  # 3.x ignores the setting, 4.x reads it


def test_a_queue_neither_durable_nor_exclusive_is_refused_from_4_0_and_declared_before(lab):
    """On 4.x (``make test-rabbitmq4``) the node refuses it; 3.x has no such setting."""
    with Connection(lab.sync.url) as conn:
        queue = Queue("denied-as-in-4-3", durable=False, auto_delete=True)
        if _version(lab) < (4, 0):
            queue(conn.channel()).declare()
            assert queue(conn.channel()).queue_declare(passive=True).queue == queue.name
            queue(conn.channel()).delete()
            return
        with pytest.raises(Exception) as refused:
            queue(conn.channel()).declare()
    assert "transient_nonexcl_queues" in str(refused.value)


def test_the_callers_reply_queues_are_ones_4_3_accepts(lab):
    """The exclusive reply queue of :class:`TransientReplyRPC` and Celery's own (durable,
    auto-delete) reply queue are declared on a node that denies the rest."""
    from mpsoa_lab.design.apps import celery_apps_factory

    def app():  # a reply queue is named after its app: one app for each backend
        return celery_apps_factory("PUBLISHER", lab.sync.url, lab.async_.url, "mpledger")[0]

    with Connection(lab.sync.url) as conn:
        for backend in (TransientReplyRPC(app=app()), app().backend):
            backend.binding(conn.channel()).declare()
            assert backend.binding.exclusive or backend.binding.durable
