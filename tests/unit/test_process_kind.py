"""process_kind reads a process's command line: a node's short-lived epmd starter is no node."""

from __future__ import annotations

import psutil
import pytest

from mpsoa_lab.plumbing import process_kind

BEAM = "/usr/lib/erlang/erts-13.1.5/bin/beam.smp"
ERL = ["--", "-root", "/usr/lib/erlang", "-progname", "erl", "--", "-home", "/tmp/lab/erlang"]


class FakeProcess:
    def __init__(self, cmdline, name=None, parent=None):
        self._cmdline = cmdline
        self._name = name or cmdline[0].rsplit("/", 1)[-1]
        self._parent = parent

    def cmdline(self):
        return self._cmdline

    def name(self):
        return self._name

    def parent(self):
        return self._parent


worker = FakeProcess(["python", "-m", "celery", "-A", "x.sync_app", "worker", "-Q", "q"])
node_script = FakeProcess(["/bin/sh", "/usr/lib/rabbitmq/bin/rabbitmq-server"], name="sh")


@pytest.mark.parametrize(
    ("proc", "kind"),
    [
        (
            FakeProcess([BEAM, "-W", "w", *ERL, "--", "-s", "rabbit", "boot", "-noinput"]),
            "RabbitMQ node",
        ),
        (
            FakeProcess(
                [BEAM, *ERL, "--", "-sname", "epmd-starter-361545930", "-s", "erlang", "halt"]
            ),
            "epmd starter (RabbitMQ, short-lived)",
        ),
        (FakeProcess([BEAM, "-B", *ERL, "--", "-run", "escript", "start"]), "RabbitMQ CLI"),
        (FakeProcess(["/usr/bin/epmd", "-port", "25752", "-address", "127.0.0.1"]), "epmd"),
        (worker, "celery worker"),
        (FakeProcess(worker.cmdline(), parent=worker), "celery worker (pool child)"),
        (FakeProcess(["python", "-m", "mpsoa_lab.running.reaper", "/tmp/lab", "ab12"]), "reaper"),
        (node_script, "RabbitMQ node (its start script)"),
        (FakeProcess(["erl_child_setup", "20000"]), "RabbitMQ node helper"),
        (FakeProcess(["/bin/sh", "-s", "rabbit_disk_monitor"], name="sh"), "RabbitMQ node helper"),
    ],
)
def test_each_process_of_the_lab_is_named_by_its_command_line(proc, kind):
    assert process_kind(proc) == kind


def test_a_process_that_is_gone_says_so():
    class Gone(FakeProcess):
        def cmdline(self):
            raise psutil.NoSuchProcess(1)

    assert process_kind(Gone(["x"])) == "gone"
