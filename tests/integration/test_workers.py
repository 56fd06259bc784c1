"""Real ``celery worker`` processes: ready on ping, per-worker settings, warm stop, kill, cleanup."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import pytest

from mpsoa_lab.design.services._service import config_overrides
from mpsoa_lab.plumbing.processes import managed_commands, managed_processes
from mpsoa_lab.running.workers import start_worker, start_workers, stop_all

#: Asserts nothing that another test's load could change: make test runs it beside others.
pytestmark = pytest.mark.beside_others


def worker_pids(lab) -> set[int]:
    return {pid for pid, cmd in managed_commands(lab.home).items() if "worker" in cmd}


def test_a_sync_worker_answers_calls_and_stops_warm(lab):
    from mpsoa_lab.design.services import mpledger

    lab.prepare_topology()
    before = worker_pids(lab)
    worker = start_worker(lab, "mpledger", "sync")
    try:
        assert worker.is_running()
        assert mpledger.sync_app.send_task("mpledger.sync.entry_count").get(timeout=10) >= 0
        assert "ready" in worker.log_tail(50)
    finally:
        worker.stop()
    assert not worker.is_running()
    assert worker_pids(lab) == before  # its pool processes are gone too


def test_per_worker_settings_reach_the_worker(lab):
    plain, late = (
        start_worker(lab, "mpledger", "async"),
        start_worker(
            lab, "mpledger", "async", config={"task_acks_late": True}, prefetch_multiplier=1
        ),
    )
    try:
        replies = plain.app.control.inspect([plain.hostname, late.hostname], timeout=2).conf(
            with_defaults=True
        )
        assert replies[plain.hostname]["task_acks_late"] is False
        assert replies[late.hostname]["task_acks_late"] is True
        # The prefetch the worker really asked the broker for (basic.qos), not a setting:
        stats = plain.app.control.inspect([plain.hostname, late.hostname], timeout=2).stats()
        # Celery's default multiplier, 1 process
        assert stats[plain.hostname]["prefetch_count"] == 4
        assert stats[late.hostname]["prefetch_count"] == 1
    finally:
        stop_all([plain, late])


def test_several_workers_on_one_queue(lab):
    workers = start_workers(lab, "mplogin", "async", 3)
    try:
        replies = workers[0].app.control.ping(timeout=1)
        answered = {host for reply in replies for host in reply}
        assert {w.hostname for w in workers} <= answered
    finally:
        stop_all(workers)
    assert all(not w.is_running() for w in workers)


def test_kill_leaves_no_pool_process(lab):
    worker = start_worker(lab, "mpwallet", "async", concurrency=2)
    children = [p.pid for p in worker.process.process().children(recursive=True)]
    assert len(children) == 2
    worker.kill()
    assert not worker.is_running()
    time.sleep(0.2)
    assert not (set(children) & {p.pid for p in managed_processes(lab.home)})


def test_workers_die_with_the_process_that_started_them(lab):
    """A kernel that starts workers and dies: the reaper stops its workers, not the lab."""
    code = (
        "import mpsoa_lab, time; from mpsoa_lab.running.workers import start_worker; "
        "lab = mpsoa_lab.up(); w = start_worker(lab, 'mplogin', 'sync'); "
        "print(w.process.pid, flush=True); time.sleep(600)"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    try:
        pid = int(owner.stdout.readline())
        assert pid in worker_pids(lab)
    finally:
        owner.kill()
        owner.wait()
    deadline = time.monotonic() + 20
    while pid in worker_pids(lab) and time.monotonic() < deadline:
        time.sleep(0.25)
    assert pid not in worker_pids(lab)
    assert all(node.is_running() for node in lab.nodes.values())  # the lab itself lives on


@pytest.mark.parametrize(
    "raw,message",
    [
        ("{", "not valid JSON"),
        ("[1]", "must be a JSON object"),
        ('{"CELERY_ACKS_LATE": true}', "Celery 5 does not have: CELERY_ACKS_LATE"),
    ],
)
def test_bad_worker_settings_are_refused(monkeypatch, raw, message):
    monkeypatch.setenv("MPSOA_CELERY_CONFIG", raw)
    with pytest.raises(ValueError, match=message):
        config_overrides()


def test_the_design_daemons_two_per_service_each_on_its_broker(lab):
    from mpsoa_lab.running.workers import start_daemons

    daemons = start_daemons(lab)
    try:
        assert sorted(daemons) == sorted(
            (s, k) for s in ("mplogin", "mpwallet", "mpledger") for k in ("sync", "async")
        )
        for (service, kind), worker in daemons.items():
            queues = worker.app.control.inspect([worker.hostname], timeout=2).active_queues()
            assert [q["name"] for q in queues[worker.hostname]] == [f"{service}.{kind}"]
            # The broker the worker itself reports being connected to:
            stats = worker.app.control.inspect([worker.hostname], timeout=2).stats()
            broker = lab.sync if kind == "sync" else lab.async_
            port = int(broker.url.rsplit(":", 1)[1].split("/")[0])
            assert stats[worker.hostname]["broker"]["port"] == port
    finally:
        stop_all(list(daemons.values()))


def test_a_worker_pointed_at_the_other_broker(lab):
    """``broker_urls`` moves one worker: here an async worker onto the sync broker."""
    from kombu import Connection

    from mpsoa_lab.design.apps import celery_apps_factory
    from mpsoa_lab.design.topology import declare, platform_queues

    queues = [q for q in platform_queues(kinds=("async",)) if q.name == "mpledger.async"]
    with Connection(lab.sync.url) as conn:
        declare(conn, queues)
    worker = start_worker(lab, "mpledger", "async", broker_urls=(lab.sync.url, lab.sync.url))
    try:
        with Connection(lab.sync.url) as conn:
            assert (
                conn.default_channel.queue_declare("mpledger.async", passive=True).consumer_count
                == 1
            )
        with Connection(lab.async_.url) as conn:
            assert (
                conn.default_channel.queue_declare("mpledger.async", passive=True).consumer_count
                == 0
            )
        # it runs what is published to the sync broker's mpledger.async
        _, one_broker = celery_apps_factory("PUBLISHER", lab.sync.url, lab.sync.url, "mpledger")
        from mpsoa_lab.design.services import mpledger

        entry_id = f"moved-{os.getpid()}-{time.time_ns()}"
        one_broker.send_task(
            "mpledger.async.record_entry",
            kwargs={"entry_id": entry_id, "account": "moved", "amount_cents": 1},
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not mpledger.service.storage.query(
            "SELECT 1 FROM entries WHERE entry_id = ?", (entry_id,)
        ):
            time.sleep(0.1)
        assert mpledger.service.storage.query(
            "SELECT 1 FROM entries WHERE entry_id = ?", (entry_id,)
        )
    finally:
        worker.stop()
        with Connection(lab.sync.url) as conn:
            conn.default_channel.queue_delete("mpledger.async")


def test_warm_stop_finishes_the_task_in_hand(lab):
    """SIGTERM goes to the worker's main process only: its pool process finishes the task."""
    from mpsoa_lab.design.services import mpledger
    from mpsoa_lab.plumbing.util import ready_messages, wait_until

    lab.prepare_topology()
    worker = start_worker(lab, "mpledger", "async")  # early acks: a killed task would be lost
    batch = f"warm-{uuid.uuid4().hex[:8]}"
    mpledger.async_app.send_task("mpledger.async.reconcile", args=[batch, 1.5])
    wait_until(lambda: ready_messages(lab.async_.url, "mpledger.async") == 0, timeout=10)
    time.sleep(0.3)  # the task is running now
    worker.stop()
    done = mpledger.service.storage.query(
        "SELECT COUNT(*) AS n FROM reconciliations WHERE batch_id = ?", (batch,)
    )[0]["n"]
    assert done == 1  # the task in hand ran to its end
    assert not worker.is_running()
