"""A process the lab started is known by its pid and its start time; the start time must not
move while the process runs, whatever the wall clock does.

psutil's ``create_time()`` adds the boot time to the kernel's start ticks, and recomputes the
boot time from the wall clock (``/proc/stat`` ``btime``) at every call: when the clock is
stepped or slewed across a second, every create time moves by a second. With a margin of half a
second the lab then took every holder for a dead process, and its reaper stopped the lab under
them (a CI run where every test after one point failed with "connection refused").
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil
import pytest

from mpsoa_lab.plumbing.processes import ManagedProcess, process_started, same_start
from mpsoa_lab.plumbing.state import StateFile

linux_only = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc")


def test_a_start_time_is_stable_and_gone_with_the_process():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        started = process_started(child.pid)
        assert started is not None and started == process_started(child.pid)
        assert same_start(started, child.pid)
        assert not same_start(started + 1.0, child.pid)  # another process on a reused pid
    finally:
        child.kill()
        child.wait()
    assert process_started(child.pid) is None and not same_start(started, child.pid)


@linux_only
def test_a_zombie_is_gone():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    try:
        assert process_started(child.pid) is None
    finally:
        child.wait()


@linux_only
def test_a_process_recorded_before_the_clock_stepped_is_still_itself(tmp_path, monkeypatch):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        recorded = ManagedProcess.from_popen("sleeper", child)
        holders = StateFile(tmp_path)
        holders.add_holder(os.getpid())
        before = psutil.Process(child.pid).create_time()
        from psutil import _pslinux

        real = _pslinux.boot_time
        monkeypatch.setattr(_pslinux, "boot_time", lambda: real() + 3.0)
        assert psutil.Process(child.pid).create_time() - before == pytest.approx(
            3.0
        )  # psutil moved
        assert recorded.is_running()  # the lab's identity did not
        assert holders.live_holders() == [os.getpid()]  # nor did its holder
    finally:
        child.kill()
        child.wait()


@linux_only
def test_a_start_time_written_by_an_older_lab_is_still_understood():
    epoch = psutil.Process().create_time()  # what state files held before
    assert same_start(epoch, os.getpid())
    assert not same_start(epoch - 60, os.getpid())
