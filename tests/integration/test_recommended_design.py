"""The recommended design (issue 25, part 1) works as a whole on a real broker: quorum queues, the
reply exchange, late acks with prefetch 1, confirms and ``mandatory``, heartbeats, JSON only,
in a vhost of its own on each of the lab's nodes, with callers built by ``recommended_apps`` and
daemons started with ``worker_config`` and ``worker_options``."""

from __future__ import annotations

import contextlib
import uuid

import pytest
from kombu import Connection

from mpsoa_lab.design import recommended as rec
from mpsoa_lab.design.rpc_backend import REPLY_EXCHANGE, declare_reply_exchange
from mpsoa_lab.design.topology import declare
from mpsoa_lab.plumbing import Management, wait_until
from mpsoa_lab.plumbing.settings import with_vhost
from mpsoa_lab.running import start_worker

pytestmark = [pytest.mark.integration, pytest.mark.beside_others]


@contextlib.contextmanager
def recommended_vhost(lab):
    """A vhost of its own on each node, with the recommended queues and the reply exchange
    declared as the deployment declares them; deleted on the way out."""
    name = f"{lab.space}.recommended"
    urls = {}
    try:
        for role, broker in lab.brokers.items():
            with Management.for_broker(broker) as api:
                api.create_vhost(name)
            urls[role] = with_vhost(broker.node_url, name)
            with Connection(urls[role]) as conn:
                declare(conn, rec.recommended_queues(role))
                if role == "sync":
                    declare_reply_exchange(conn)
        yield urls
    finally:
        for broker in lab.brokers.values():
            with contextlib.suppress(Exception), Management.for_broker(broker) as api:
                api.delete_vhost(name)


def consumed(api, vhost: str, queue: str) -> list[int]:
    """The prefetch count of each consumer of ``queue`` the management API lists."""
    return [c["prefetch_count"] for c in api.consumers(vhost) if c["queue"]["name"] == queue]


def test_the_recommended_design_answers_and_keeps_its_promises(lab):
    from mpsoa_lab.design.services import mpledger  # after the lab is up: it finds the brokers

    storage = mpledger.service.storage
    storage.reset()
    with recommended_vhost(lab) as urls:
        workers = [
            start_worker(lab, "mpledger", kind, config=rec.worker_config(kind),
                         broker_urls=(urls["sync"], urls["async"]), **rec.worker_options(kind))
            for kind in ("sync", "async")
        ]  # fmt: skip
        sync_app, async_app = rec.recommended_apps(
            "PUBLISHER", urls["sync"], urls["async"], "mpledger"
        )
        try:
            entry = str(uuid.uuid4())
            sent = async_app.send_task(
                "mpledger.async.record_entry",
                kwargs={"entry_id": entry, "account": "rec", "amount_cents": 250},
                mandatory=True,
            )
            assert sent.id
            answer = sync_app.send_task(
                "mpledger.sync.balance", kwargs={"account": "rec"}, expires=rec.SYNC_TIMEOUT
            )
            wait_until(lambda: len(storage.executions()) >= 1, timeout=20)
            balance = sync_app.send_task(
                "mpledger.sync.balance", kwargs={"account": "rec"}, expires=rec.SYNC_TIMEOUT
            ).get(timeout=rec.SYNC_TIMEOUT)
            assert balance == 250 and answer.get(timeout=rec.SYNC_TIMEOUT) in (0, 250)

            with Management.for_broker(lab.sync) as api:
                vhost = f"{lab.space}.recommended"
                queues = {q["name"]: q for q in api.queues(vhost)}
                bindings = [b for b in api.bindings(vhost) if b["source"] == REPLY_EXCHANGE]
                wait_until(lambda: consumed(api, vhost, "mpledger.sync"), timeout=15)
                prefetch = consumed(api, vhost, "mpledger.sync")
            assert queues["mpledger.sync"]["type"] == "quorum"
            assert any(b["destination_type"] == "queue" for b in bindings)  # the caller's replies
            assert prefetch == [4]  # Celery's default multiplier, concurrency 1
            with Management.for_broker(lab.async_) as api:
                vhost = f"{lab.space}.recommended"
                queues = {q["name"]: q for q in api.queues(vhost)}
                # the management API lists a consumer once its node's statistics have it
                wait_until(lambda: consumed(api, vhost, "mpledger.async"), timeout=15)
                prefetch = consumed(api, vhost, "mpledger.async")
            assert queues["mpledger.async"]["type"] == "quorum"
            assert prefetch == [1]  # late acks with prefetch 1
        finally:
            sync_app.close()
            async_app.close()
            for worker in workers:
                worker.stop()


def test_a_mandatory_task_with_no_queue_is_an_error_to_the_publisher(lab):
    with recommended_vhost(lab) as urls:
        _, async_app = rec.recommended_apps("PUBLISHER", urls["sync"], urls["async"], "mpledger")
        try:
            with Management.for_broker(lab.async_) as api:
                api.delete_queue("mpledger.async", f"{lab.space}.recommended")
            with pytest.raises(Exception) as info:
                async_app.send_task(
                    "mpledger.async.record_entry",
                    kwargs={"entry_id": "x", "account": "x", "amount_cents": 1},
                    mandatory=True,
                    declare=[],
                )
            assert "NO_ROUTE" in str(info.value) or "312" in str(info.value), info.value
        finally:
            async_app.close()
