"""Notebook 10's harness without a broker: gaps in a stream of successes, what each RabbitMQ
version says of mirroring, the queue definitions Celery takes, the run's figures and table."""

from __future__ import annotations

import json

import pytest
from celery import Celery
from celery.utils.quorum_queues import detect_quorum_queues

from mpsoa_lab.experiments.clusters import (
    ASYNC_TASK,
    CONFIGS,
    MIRRORING_POLICY,
    TRANSIENT_REPLY_BACKEND,
    Call,
    CostRun,
    MirroringUnavailable,
    NodeLossRun,
    TransientReplyRPC,
    celery_queues,
    check_mirroring,
    configs_for,
    cost_table,
    longest_gap,
    loss_table,
    mirroring_note,
)
from mpsoa_lab.experiments.faults import tally


def test_longest_gap_is_the_longest_stretch_without_a_success():
    assert longest_gap([1.0, 2.0, 6.0, 6.5], 0.0, 7.0) == 4.0
    assert longest_gap([], 10.0, 13.5) == 3.5  # nothing at all: the whole window
    assert longest_gap([5.0], 0.0, 10.0) == 5.0
    assert longest_gap([-3.0, 20.0], 0.0, 2.0) == 2.0  # only times inside the window count
    assert longest_gap([1.0], 5.0, 5.0) == 0.0


def test_mirroring_is_said_per_server_version():
    assert "deprecated" in mirroring_note((3, 10, 8)) and "4.0" in mirroring_note((3, 10, 8))
    assert check_mirroring((3, 10, 8)) == mirroring_note((3, 10, 8))
    assert "deprecated" not in mirroring_note((3, 8, 9))
    with pytest.raises(MirroringUnavailable, match="removed in 4.0.*quorum"):
        check_mirroring((4, 0, 1))
    with pytest.raises(MirroringUnavailable):
        check_mirroring((4, 1))


def test_the_configurations_a_server_runs():
    assert configs_for((3, 10, 8)) == ["2014", "mirrored", "quorum"]
    assert configs_for((4, 0, 1)) == ["2014", "quorum"]  # mirroring was removed in 4.0
    assert configs_for((4, 1)) == configs_for((4, 0)) and configs_for((3, 13, 7)) == list(CONFIGS)


def test_a_runs_label_says_how_its_clients_were_set_up():
    run = _run("quorum")
    assert run.label == "quorum" and run.summary()["config"] == "quorum"
    run.one_address = run.transient_replies = True
    assert run.label == "quorum (one address, transient replies)"
    run.one_address, run.clients_elsewhere = False, True
    assert run.summary()["config"] == "quorum (clients elsewhere, transient replies)"


def test_the_three_configurations():
    assert CONFIGS["2014"].queue_arguments == {"x-ha-policy": "all"}
    assert CONFIGS["2014"].policy is None
    assert CONFIGS["mirrored"].policy == MIRRORING_POLICY
    assert MIRRORING_POLICY == {"ha-mode": "all", "ha-sync-mode": "automatic"}
    assert CONFIGS["quorum"].queue_arguments == {"x-queue-type": "quorum"}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_celery_takes_the_queues_as_json(name):
    queues = celery_queues(CONFIGS[name], "mpledger")
    assert json.loads(json.dumps(queues)) == queues  # what MPSOA_CELERY_CONFIG carries
    app = Celery(set_as_current=False)
    app.conf.task_queues = queues
    declared = app.amqp.queues["mpledger.async"]
    assert declared.exchange.name == "mpledger" and declared.exchange.type == "topic"
    assert declared.routing_key == "mpledger.async.#" and declared.durable
    assert declared.queue_arguments == dict(CONFIGS[name].queue_arguments)
    # Celery turns on per-consumer prefetch and native delayed delivery for quorum only
    assert detect_quorum_queues(app, "amqp")[0] == (name == "quorum")


def test_celery_queues_of_one_kind_and_extra_names():
    queues = celery_queues(CONFIGS["quorum"], "mpwallet", ("sync",), extra=("mpwallet.rejoin",))
    assert list(queues) == ["mpwallet.sync", "mpwallet.rejoin"]
    assert queues["mpwallet.rejoin"]["binding_key"] == "mpwallet.rejoin"


def test_the_transient_reply_queue_is_exclusive_as_rabbitmq_4_3_requires():
    """RabbitMQ 4.3 refuses a queue that is neither durable nor exclusive by default."""
    app = Celery(set_as_current=False, broker="memory://")
    binding = TransientReplyRPC(app=app).binding
    assert binding.durable is False and binding.exclusive


def test_the_transient_reply_backend_names_the_class_on_the_package():
    from kombu.utils.imports import symbol_by_name

    assert TRANSIENT_REPLY_BACKEND == "mpsoa_lab.experiments.clusters:TransientReplyRPC"
    assert symbol_by_name(TRANSIENT_REPLY_BACKEND) is TransientReplyRPC


def test_the_package_names_shadow_none_of_its_modules():
    """`clusters.cost` is the function, never the module that holds it."""
    import pkgutil

    from mpsoa_lab.experiments import clusters

    modules = {m.name for m in pkgutil.iter_modules(clusters.__path__)}
    assert not modules & set(clusters.__all__)
    assert all(hasattr(clusters, name) for name in clusters.__all__)


def _run(config: str = "quorum") -> NodeLossRun:
    calls = [Call(t, t + 0.1, ok=not 3 <= t < 5, task_id=f"s{t}") for t in range(10)]
    sent = [(float(t), f"a{t}") for t in range(10)]
    executions = [
        {"task_id": f"a{t}", "task_name": ASYNC_TASK, "succeeded": True, "finished": t + 0.2}
        for t in range(10)
        if t != 4  # a4 never ran
    ]
    executions += [
        {"task_id": f"s{t}", "task_name": "x", "succeeded": True, "finished": t + 0.1}
        for t in range(10)
        if not 3 <= t < 5
    ]
    executions.append(dict(executions[0]))  # a0 ran twice
    return NodeLossRun(
        config=config,
        version=(3, 10, 8),
        killed="n1",
        clients_elsewhere=False,
        leaders={},
        replicas={},
        calls=calls,
        sent=sent,
        send_errors=[(3.5, "OperationalError: ")],
        executions=executions,
        killed_at=2.5,
        back_at=5.0,
        ended_at=9.5,
        sync=tally([c.task_id for c in calls], executions),
        async_=tally([tid for _, tid in sent], executions),
    )


def test_a_run_counts_failed_calls_and_the_seconds_nothing_succeeded():
    run = _run()
    assert run.calls_failed == 2
    assert run.sync_unavailable_s == pytest.approx(5.1 - 2.5)  # from the kill to 5.1
    assert run.async_stopped_s == pytest.approx(5.2 - 3.2)  # finished 3.2, then 5.2
    summary = run.summary()
    assert (summary["async lost"], summary["async dup"]) == (1, 1)
    assert summary["async send errors"] == 1 and summary["down s"] == 2.5


def test_an_outage_that_lasts_to_the_end_of_the_run_is_cut_off():
    from mpsoa_lab.experiments.clusters import runs_to_end

    assert runs_to_end([1.0, 2.0], 0.0, 9.0)  # nothing after 2.0: still out at 9.0
    assert not runs_to_end([1.0, 2.0, 6.0, 8.9], 0.0, 9.0)  # back at 6.0
    assert runs_to_end([], 0.0, 3.0)  # never served after the start
    assert not runs_to_end([1.0, 8.5], 0.0, 9.0)  # a last gap shorter than a second
    run = _run()
    assert run.cut_off == [] and run.summary()["cut off"] == "-"
    run.calls = [c for c in run.calls if c.sent < 3]  # no sync answer after the kill
    assert run.cut_off == ["sync"] and run.summary()["cut off"] == "sync"


def test_the_single_copy_outcome_is_told_from_the_run():
    from mpsoa_lab.experiments.clusters import single_copy_outcome

    run = _run("2014")
    run.alive = {"sync worker": False, "async worker": True}
    run.worker_errors = {"sync worker": "Unrecoverable error: NotFound(404)", "async worker": ""}
    run.recovered = {"async worker": True, "sync worker (a new caller)": False}
    text = single_copy_outcome(run)
    assert text.startswith("RabbitMQ 3.10.8: sync worker exited") and "NotFound(404)" in text
    assert text.endswith("served again once the node was back: async worker.")
    run.alive = {"sync worker": True, "async worker": True}
    run.worker_errors, run.version = {}, (4, 0, 5)
    run.recovered = {"async worker": True}
    text = single_copy_outcome(run)
    assert text.startswith("RabbitMQ 4.0.5: every worker stayed up")
    assert "2 sync calls failed and 1 async publishes" in text and text.endswith("True.")


def test_loss_table_has_a_row_per_configuration():
    table = loss_table([_run("2014"), _run("quorum")]).splitlines()
    assert len(table) == 3
    assert table[0].split()[:2] == ["config", "sync"]
    assert table[1].split()[0] == "2014" and table[2].split()[0] == "quorum"
    assert loss_table([]) == ""


def test_cost_table_gives_ratios_to_the_2014_configuration():
    base = CostRun("2014", 4, (0.002, 0.002, 0.002, 0.010), 100, 0.5, 1.0, {"n1": 150.0})
    quorum = CostRun("quorum", 4, (0.003, 0.003, 0.003, 0.020), 100, 1.0, 2.0, {"n1": 160.0})
    assert base.p50_ms == pytest.approx(2.0) and base.throughput == 100.0
    assert quorum.publish_rate == 100.0
    lines = cost_table([base, quorum]).splitlines()
    assert lines[1].split()[:2] == ["2014", "2.0"]
    cells = lines[2].split()
    assert cells[0] == "quorum" and cells[5:8] == ["1.50", "2.00", "0.50"]  # p50, p99, tasks/s
    assert cells[-1] == "160"


def test_rejoin_table_shows_what_the_rejoined_node_holds():
    from mpsoa_lab.experiments.clusters import NodeLossRun, Rejoin, rejoin_table

    kept = Rejoin("n-sync1@h", 50, 50, 50, 0, "", 150, 150, "n-sync2@h", ("a",), ("n-sync1@h",),
                  6.0, 4.0, 1.0)  # fmt: skip
    run = NodeLossRun("quorum", (3, 10), "n-sync1@h", False, {}, {}, [], [], [], [], rejoin=kept)
    lines = rejoin_table([run, NodeLossRun("x", (3, 10), "", True, {}, {}, [], [], [], [])])
    assert len(lines.splitlines()) == 2  # a run without a rejoin has no row
    assert lines.splitlines()[1].split() == [
        "quorum",
        "50",
        "50",
        "50",
        "0",
        "150",
        "yes",
        "1.0",  # seconds after its start until it held a full copy
        "node",
        "2",
        "-",  # nothing refused
    ]
