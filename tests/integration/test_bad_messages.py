"""What one published message can do to a worker, on a real broker: Celery 5.7's defaults, and
the lab's dead-letter exchange and consumer (mpsoa_lab.experiments.bad_messages). If a default
ever weakens or the lab's way stops keeping a message, one of these goes red."""

from __future__ import annotations

import pytest

from mpsoa_lab.experiments import bad_messages

#: Counts and places, no timings: make test runs it beside others.
pytestmark = pytest.mark.beside_others

#: Celery 5.7's worker dies of these ("Unrecoverable error"), and so does the next one.
POISON = {"no task id", "body shape"}
#: Rejected by Celery: dead-lettered once the queue has a dead-letter exchange.
REJECTED = {
    "content type",
    "pickle",
    "no celery headers",
    "bad ETA",
    "unknown task",
    "another service's task",
}


@pytest.fixture(scope="module")
def runs(lab):
    return bad_messages.compare(lab)


def test_celery_s_default_loses_every_bad_message_and_dies_of_two(runs):
    run = runs["celery default"]
    fates = run.fates
    assert set(fates) == {m.key for m in bad_messages.catalogue()}
    for key, fate in fates.items():
        assert not fate.dead_lettered, key  # no dead-letter exchange: nothing is kept
        assert fate.sentinel_ran == (key not in POISON), key
    for key in POISON:  # the worker stopped, the message went back, the next worker died too
        assert not fates[key].worker_alive and fates[key].next_worker_died, key
        assert fates[key].purged >= 1, key
    for key in REJECTED | {"garbage"}:  # dropped with a log line, the worker served on
        assert fates[key].worker_alive and fates[key].left_in_queue == 0, key
        assert fates[key].log, key
    assert fates["wrong arguments"].kept_as_failed  # it ran, failed, and the lab kept it
    assert run.log_counts["worker stopped"] == 2 * len(POISON)


def test_a_dead_letter_policy_shows_which_celery_rejects_and_which_it_acknowledges(runs):
    fates = runs["celery + dead-letter policy"].fates
    for key in REJECTED:
        assert fates[key].dead_lettered and fates[key].death_reason == "rejected", key
    assert not fates["garbage"].dead_lettered  # acknowledged: gone even with the policy
    for key in POISON:  # a dying worker neither acks nor rejects: back in the queue
        assert not fates[key].dead_lettered and fates[key].next_worker_died, key


def test_the_lab_s_worker_keeps_every_one_and_serves_throughout(runs):
    run = runs["lab"]
    for key, fate in run.fates.items():
        assert fate.worker_alive and fate.sentinel_ran and fate.left_in_queue == 0, key
        assert fate.purged == 0 and fate.next_worker_died is None, key
        if key == "wrong arguments":
            assert fate.kept_as_failed and not fate.dead_lettered
        else:
            assert fate.dead_lettered and fate.death_reason == "rejected", key
    assert run.worker_alive and run.log_counts["worker stopped"] == 0


def test_the_policy_is_gone_afterwards_and_the_design_s_queues_are_as_declared(lab, runs):
    from kombu import Connection

    from mpsoa_lab.design.topology import declare, platform_queues
    from mpsoa_lab.plumbing.management import Management

    with Management.for_broker(lab.async_) as api:
        assert bad_messages.DEAD_LETTER_POLICY not in {
            p["name"] for p in api.policies(lab.async_.vhost)
        }
    with Connection(lab.async_.url) as conn:  # redeclared as the design declares them: no
        declare(conn, platform_queues(kinds=("async",)))  # PRECONDITION_FAILED, no argument
