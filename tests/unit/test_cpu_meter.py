"""CpuMeter counts each process once: a named process's children that are named themselves
are theirs, not its (the nesting that once showed 2.25 cores busy on a 2-core machine)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from mpsoa_lab.observe.cpu import CpuMeter

#: A parent that starts a child burning CPU for at most 20 s, prints the child's pid, and waits.
PARENT = """
import subprocess, sys
burn = "import time\\nt = time.process_time()\\nwhile time.process_time() - t < 20: pass"
child = subprocess.Popen([sys.executable, "-c", burn])
print(child.pid, flush=True)
child.wait()
"""


@pytest.fixture
def parent_and_child():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    try:
        yield parent.pid, child
    finally:
        for pid in (child, parent.pid):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        parent.wait(timeout=10)
        parent.stdout.close()


def test_a_named_child_is_counted_under_its_own_name_only(parent_and_child):
    parent, child = parent_and_child
    both = CpuMeter({"parent": parent, "child": child})
    alone = CpuMeter({"parent": parent})
    both.start(), alone.start()
    time.sleep(1.0)
    both.stop(), alone.stop()
    # the child burns, the parent only waits
    assert both.seconds["child"] > 0.1, both.seconds
    assert both.seconds["parent"] < 0.05, both.seconds  # the child is not the parent's too
    assert alone.seconds["parent"] > 0.1, alone.seconds  # unnamed, the child is the parent's
    assert both.total() <= (os.cpu_count() or 1) * 1.05, both.share()


def test_the_kernel_and_what_it_started_add_up_to_no_more_than_the_machine(parent_and_child):
    """As in notebooks 08 and 09: this process, and processes it started, all named; with many
    more children (as a kernel with a lab has), walking the trees takes a while, and the wall
    time must still cover both readings."""
    parent, child = parent_and_child
    idle = [subprocess.Popen(["sleep", "30"]) for _ in range(60)]
    try:
        _burn_beside(parent, child)
    finally:
        for process in idle:
            process.kill()
            process.wait()


def _burn_beside(parent: int, child: int) -> None:
    meter = CpuMeter({"this process": os.getpid(), "parent": parent, "child": child}).start()
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:  # this process burns too, for 1.5 s of wall time
        pass
    meter.stop()
    assert meter.seconds["this process"] > 0.1, meter.seconds
    assert meter.total() <= (os.cpu_count() or 1) * 1.05, meter.share()


def test_a_process_that_is_gone_counts_nothing_and_none_is_left_out():
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    meter = CpuMeter({"gone": gone.pid, "absent": None}).start()
    assert meter.stop() == {"gone": 0.0}
