"""A broker that speaks TLS only (mpsoa_lab.running.tls, plumbing.tls_node), on a real node:
the lab's clients with a certificate from its authority get in, Celery's producer and worker
included; no certificate, another authority's, an expired one and plain AMQP are refused; the
node and its keys are gone afterwards. If a TLS setting ever loosens, this goes red."""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil
import pytest

from mpsoa_lab.design.apps import celery_apps_factory
from mpsoa_lab.experiments import tls_cost
from mpsoa_lab.running.tls import tls_broker
from mpsoa_lab.running.workers import start_worker

#: Outcomes, no timings: make test runs it beside others.
pytestmark = pytest.mark.beside_others


def test_only_a_client_with_the_lab_s_certificate_gets_in(lab):
    with tls_broker(lab) as broker:
        folder, base_dir = broker.folder, broker.node.base_dir
        said = tls_cost.who_gets_in(broker)
        assert said.pop("the lab's client certificate") == "connected"
        assert said.pop("plain AMQP to the TLS port") == tls_cost.CLOSED
        assert set(said.values()) == {tls_cost.REFUSED}, said  # no, other CA's, expired
        assert broker.node.is_running()  # refusing them cost the node nothing
        assert [c.key for c in lab.components("rabbitmq_tls")] == [broker.node.key]
    assert not folder.exists() and not base_dir.exists()  # keys and node data gone
    assert not lab.components("rabbitmq_tls")
    assert not broker.node.is_running()


def test_celery_calls_and_serves_over_tls(lab):
    with tls_broker(lab) as broker:
        settings = {"broker_use_ssl": broker.ssl()}
        worker = start_worker(
            lab, "mpwallet", "sync", config=settings, broker_urls=(broker.url, broker.url),
            wait=False,
        )  # fmt: skip
        sync_app, async_app = celery_apps_factory("PUBLISHER", broker.url, broker.url, "mpwallet")
        sync_app.conf.update(settings)
        try:
            deadline = time.monotonic() + 60
            answer = None
            while answer is None and time.monotonic() < deadline:
                try:
                    answer = sync_app.send_task("mpwallet.sync.echo", kwargs={"user_id": 7}).get(
                        timeout=2
                    )
                except Exception:  # noqa: BLE001 - the worker is still starting
                    assert worker.is_running(), worker.log_tail()
            assert answer == 7
        finally:
            worker.stop()
            sync_app.close()
            async_app.close()


# A kernel that started a TLS node for its space, then dies holding it.
HOLDER = """
import sys, time
import mpsoa_lab
from mpsoa_lab.running.tls import tls_broker
lab = mpsoa_lab.up(space=sys.argv[1])
held = tls_broker(lab)  # kept: its exit would stop the node
broker = held.__enter__()
print(broker.node.process.pid, broker.folder, flush=True)
time.sleep(600)
"""


def test_a_tls_node_and_its_keys_go_with_a_killed_kernel(lab, holder):
    pid, folder = holder(HOLDER, f"tls-{os.getpid()}").split()
    node, folder = psutil.Process(int(pid)), Path(folder)
    assert folder.exists() and node.is_running()
    holder.kill()
    deadline = time.monotonic() + 90
    while (node.is_running() or folder.exists()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not node.is_running(), "the reaper left the TLS node running"
    assert not folder.exists(), "the keys outlived the kernel"
