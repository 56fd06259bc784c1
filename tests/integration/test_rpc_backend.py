"""mpsoa_lab.design.rpc_backend on a real broker: a sync edge that fails fast while the broker is
down and is answered again once it is back (Celery 5.7's rpc:// does neither; notebook 07 shows it)."""

from __future__ import annotations

import threading

import pytest
from celery.exceptions import TimeoutError as CeleryTimeout
from kombu.exceptions import OperationalError

import mpsoa_lab
from mpsoa_lab.design.rpc_backend import BACKEND, DECLARE_RETRY_POLICY, RPCBackend
from mpsoa_lab.experiments.faults import restored, wait_started
from mpsoa_lab.plumbing.util import wait_until

#: Asserts nothing that another test's load could change: make test runs it beside others.
pytestmark = pytest.mark.beside_others


def _edge(lab, backend=BACKEND):
    sync_app, _ = mpsoa_lab.celery_apps_factory(
        "PUBLISHER", lab.sync.url, lab.async_.url, "mpledger"
    )
    sync_app.conf.result_backend = backend
    return sync_app


def test_the_backend_is_named_by_its_setting_and_takes_its_retry_policy(lab):
    default, tuned = _edge(lab), _edge(lab)
    tuned.conf.result_backend_transport_options = {"max_retries": 5}
    try:
        assert isinstance(default.backend, RPCBackend)
        assert default.backend.declare_retry_policy() == DECLARE_RETRY_POLICY
        assert tuned.backend.declare_retry_policy() == {**DECLARE_RETRY_POLICY, "max_retries": 5}
    finally:
        default.close()
        tuned.close()


def test_an_edge_fails_fast_while_the_broker_is_down_and_is_answered_afterwards(lab):
    from mpsoa_lab.design.services import mpledger

    lab.prepare_topology()
    edge = _edge(lab)
    try:
        with restored(lab) as scenario:
            scenario.start_worker("mpledger", "sync", trace=True)
            assert edge.send_task("mpledger.sync.entry_count").get(timeout=5) >= 0
            # The broker stops while a call is in flight: its reply consumer fails to reconnect.
            with mpledger.service.storage.connect():
                call = edge.send_task("mpledger.sync.entry_count")
                wait_started(lab, [call.id])
                stopping = threading.Thread(target=lab.stop_node, args=("sync",))
                stopping.start()
                with pytest.raises(OperationalError):
                    call.get(timeout=5)
            stopping.join()
            # While the broker is down, a call raises instead of waiting for the broker.
            with pytest.raises(OperationalError):
                edge.send_task("mpledger.sync.entry_count")
            lab.start_node("sync")

            def answered() -> bool:
                try:
                    return edge.send_task("mpledger.sync.entry_count").get(timeout=1) >= 0
                except (CeleryTimeout, OperationalError):
                    return False

            # The same edge is answered again once the worker is back (Celery's rpc:// never is).
            wait_until(answered, timeout=60, interval=0.5)
    finally:
        edge.close()
