"""Flower, on demand (issue 26, part 2): one per broker, on the component life cycle, its HTTP API
read for a task it saw; events switched on only for the workers it watches, and off again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import psutil
import pytest
import requests

from mpsoa_lab.experiments.watching import flower_tasks
from mpsoa_lab.running.flower import (
    NotWatchable,
    flower_url,
    flowers,
    running_flowers,
    stop_flower,
    wait_idle,
    watching,
)
from mpsoa_lab.running.workers import start_worker

pytestmark = [pytest.mark.integration, pytest.mark.beside_others]


def _gone(pids, timeout=10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in pids):
            return True
        time.sleep(0.2)
    return False


def test_flower_sees_a_watched_workers_task_and_none_of_an_unwatched_one(lab):
    from mpsoa_lab.design.services import mpledger

    lab.prepare_topology()
    started = flowers(lab, quiet=True)
    pids = [f.process.pid for f in started.values()]
    try:
        assert sorted(started) == ["async", "sync"]  # the design has two brokers: both shown
        with requests.Session() as http:
            http.trust_env = False
            for flower in started.values():
                assert http.get(flower_url(flower) + "/healthcheck", timeout=5).text == "OK"
        with start_worker(lab, "mpledger", "sync", watchable=True) as worker:
            unseen = mpledger.sync_app.send_task("mpledger.sync.balance", kwargs={"account": "a"})
            assert unseen.get(timeout=10) == 0
            wait_idle([worker])  # else its task-succeeded may go out once events are on
            with watching([worker]) as replies:
                assert replies[worker.hostname] == {"ok": "task events enabled"}
                seen = mpledger.sync_app.send_task("mpledger.sync.balance", kwargs={"account": "b"})
                assert seen.get(timeout=10) == 0
                wait_idle([worker])  # its task-succeeded sent
                time.sleep(1.5)  # the events, on their way to Flower
                tasks = flower_tasks(started["sync"])
            after = mpledger.sync_app.send_task("mpledger.sync.balance", kwargs={"account": "c"})
            assert after.get(timeout=10) == 0
            time.sleep(1.5)
            assert flower_tasks(started["sync"]).keys() == tasks.keys()  # events off again
        assert tasks[seen.id]["name"] == "mpledger.sync.balance"
        assert tasks[seen.id]["state"] == "SUCCESS"
        assert unseen.id not in tasks and after.id not in tasks
        assert flower_tasks(started["async"]) == {}  # no async task was sent
    finally:
        for flower in started.values():
            stop_flower(lab, flower)
    assert _gone(pids) and not running_flowers(lab)


def test_a_worker_started_without_events_is_refused_with_the_way_to_watch_it(lab):
    with start_worker(lab, "mpledger", "async") as worker:
        with pytest.raises(NotWatchable, match=r"watchable=True"), watching([worker]):
            pass


def test_flower_goes_with_a_holder_killed_9(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MPSOA_")}
    env["MPSOA_LAB_HOME"] = str(tmp_path / "home")
    script = (
        "import json, time, mpsoa_lab\n"
        "lab = mpsoa_lab.up()\n"
        "started = mpsoa_lab.flower(lab, quiet=True)\n"
        "print(json.dumps([f.process.pid for f in started.values()]), flush=True)\n"
        "time.sleep(300)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
                              text=True)  # fmt: skip
    try:
        pids = json.loads(holder.stdout.readline())
        assert len(pids) == 2 and all(psutil.pid_exists(p) for p in pids)
    finally:
        holder.kill()  # kill -9: nothing of its own runs to clean up
        holder.wait()
    assert _gone(pids, timeout=90), "the reaper left Flower running"
