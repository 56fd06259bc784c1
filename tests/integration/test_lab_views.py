"""A view of the lab in another vhost (``Lab.in_vhost``, notebook 14): the same nodes, its own
queues, workers that consume there; and ``two_designs`` leaves no vhost behind."""

from __future__ import annotations

import pytest

from mpsoa_lab.design import recommended as rec
from mpsoa_lab.experiments import two_designs as td
from mpsoa_lab.plumbing import Management, wait_until
from mpsoa_lab.running.workers import start_worker

pytestmark = [pytest.mark.integration, pytest.mark.beside_others]


def _queues(broker, vhost):
    with Management.for_broker(broker) as api:
        return {q["name"]: q for q in api.queues(vhost)}


def test_a_view_declares_its_own_queues_and_its_workers_consume_there(lab):
    vhost = f"{lab.space}.view"
    for broker in lab.brokers.values():
        with Management.for_broker(broker) as api:
            api.create_vhost(vhost)
    try:
        view = lab.in_vhost(vhost, rec.recommended_queues)
        assert view.async_.vhost == vhost and view.async_.url.endswith(f"/{vhost}")
        assert lab.async_.vhost not in (None, vhost)  # the lab itself is unchanged
        view.prepare_topology()
        lab.prepare_topology(purge=False)  # the lab's own: classic, beside the view's
        queues = _queues(view.async_, vhost)
        assert queues["mpledger.async"]["type"] == "quorum"
        assert _queues(lab.async_, lab.async_.vhost)["mpledger.async"]["type"] == "classic"
        worker = start_worker(view, "mpledger", "async", config=rec.worker_config("async"))
        try:
            assert worker.broker_urls[1] == view.async_.url  # pinned to the view's vhost
            with Management.for_broker(view.async_) as api:
                wait_until(
                    lambda: any(
                        c["queue"]["name"] == "mpledger.async" for c in api.consumers(vhost)
                    ),
                    timeout=15,
                )
        finally:
            worker.stop()
    finally:
        for broker in lab.brokers.values():
            with Management.for_broker(broker) as api:
                api.delete_vhost(vhost)


def test_two_designs_make_a_vhost_each_and_delete_them(lab):
    with td.two_designs(lab) as designs:
        assert sorted(designs) == ["2014", "recommended"]
        names = {d.lab.async_.vhost for d in designs.values()}
        assert names == {f"{lab.space}.2014", f"{lab.space}.recommended"}
        with Management.for_broker(lab.async_) as api:
            assert names <= set(api.vhosts())
        assert (
            _queues(designs["2014"].lab.async_, f"{lab.space}.2014")["mpledger.async"]["type"]
            == "classic"
        )
        rec_queues = _queues(designs["recommended"].lab.async_, f"{lab.space}.recommended")
        assert rec_queues["mpledger.async"]["type"] == "quorum"
        assert "mpledger.dead" in rec_queues  # the recommended dead-letter queue
    with Management.for_broker(lab.async_) as api:
        assert not names & set(api.vhosts())
