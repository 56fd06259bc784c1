"""Reading RabbitMQ's refusals and the design's permissions (no broker):
mpsoa_lab.experiments.permissions and mpsoa_lab.design.access."""

from __future__ import annotations

import re

import pytest

from mpsoa_lab.design import access
from mpsoa_lab.experiments.permissions import Refusal, pattern_for, refusals_in

V = "in vhost 'nb13-1' refused for user 'nb13-1.edge'"


@pytest.mark.parametrize(
    "said, refusal",
    [
        (f"Queue.declare: (403) ACCESS_REFUSED - access to queue 'mpwallet.sync' {V}",
         Refusal("Queue.declare", "queue", "mpwallet.sync", "configure")),
        (f"Basic.publish: (403) ACCESS_REFUSED - access to exchange 'mpledger' {V}",
         Refusal("Basic.publish", "exchange", "mpledger", "write")),
        (f"Queue.bind: (403) ACCESS_REFUSED - access to queue 'q' {V}",
         Refusal("Queue.bind", "queue", "q", "write")),
        (f"Queue.bind: (403) ACCESS_REFUSED - access to exchange 'mpwallet' {V}",
         Refusal("Queue.bind", "exchange", "mpwallet", "read")),
        (f"Basic.consume: (403) ACCESS_REFUSED - read access to queue 'x' {V}",
         Refusal("Basic.consume", "queue", "x", "read")),
        (f"Basic.publish: (403) ACCESS_REFUSED - access to topic 'mpwallet.async.credit' in "
         f"exchange 'mpwallet' {V}",
         Refusal("Basic.publish", "topic", "mpwallet: mpwallet.async.credit", "write")),
    ],
)  # fmt: skip
def test_a_refusal_says_what_to_grant(said, refusal):
    assert refusals_in(f"AccessRefused: {said}") == [refusal]


def test_no_refusal_in_other_errors():
    assert refusals_in("TimeoutError: The operation timed out.") == []


@pytest.mark.parametrize(
    "name, matches, misses",
    [
        ("9b4e5c1e-0c6a-3f3b-9d0e-0a1b2c3d4e5f", "0b4e5c1e-0c6a-3f3b-9d0e-0a1b2c3d4e5f", "mpwallet"),
        ("mpwallet-sync-1-2@vm.celery.pidbox", "mpwallet-async-9-9@other.celery.pidbox",
         "mpledger-sync-1-2@vm.celery.pidbox"),
        ("mpwallet.sync", "mpwallet.sync", "mpwalletXsync"),
    ],
)  # fmt: skip
def test_names_celery_makes_up_are_generalised_and_others_are_not(name, matches, misses):
    pattern = pattern_for(name)
    assert re.fullmatch(pattern.strip("^$"), name)
    assert re.search(pattern, matches) and not re.search(pattern, misses)


def test_a_worker_may_use_its_own_service_only():
    perms = access.worker_permissions("mpwallet")
    for name in ("mpwallet.sync", "mpwallet.async"):
        assert re.search(perms["read"], name) and re.search(perms["write"], name)
    assert re.search(perms["configure"], "mpwallet@host.celery.pidbox")  # -n mpwallet@%h
    for name in ("mpledger.sync", "mplogin.async", "mpledger", "mpledger@host.celery.pidbox"):
        assert not any(re.search(perms[p], name) for p in ("configure", "read")), name
    assert not re.search(perms["write"], "mpledger")


def test_the_edge_may_publish_only_its_tasks():
    topics = access.edge_topic_permissions()
    assert set(topics) == {"mplogin", "mpwallet", "mpledger"}
    assert re.search(topics["mpwallet"], "mpwallet.sync.deposit")
    assert not re.search(topics["mpwallet"], "mpwallet.async.credit")
    assert not re.search(topics["mpledger"], "mpledger.async.reconcile")
    assert not re.search(topics["mpwallet"], "mpwallet.sync.deposit.x")
    perms = access.edge_permissions()
    assert not re.search(perms["configure"], "mpwallet.sync")  # nor delete it
    assert not re.search(perms["read"], "mpwallet.sync")


def test_an_unknown_role_or_service_is_named():
    with pytest.raises(ValueError, match="unknown role 'mpbank'.*edge, mplogin"):
        access.permissions_for("mpbank")
    with pytest.raises(ValueError, match="unknown service"):
        access.worker_permissions("mpbank")


def test_answers_go_through_the_reply_exchange_unless_told_otherwise():
    through_exchange = access.worker_permissions("mpwallet")["write"]
    through_default = access.worker_permissions("mpwallet", reply_exchange=False)["write"]
    assert re.search(through_exchange, "mpsoa.replies") and not re.search(
        through_exchange, "amq.default"
    )
    assert re.search(through_default, "amq.default")
    edge = access.edge_permissions()
    assert re.search(edge["read"], "mpsoa.replies")  # binds its reply queues there
    assert not re.search(access.edge_permissions(reply_exchange=False)["read"], "mpsoa.replies")


def test_a_password_is_hashed_as_rabbitmq_hashes_it():
    import base64
    import hashlib

    raw = base64.b64decode(access.password_hash("s3cret", salt=b"\x01\x02\x03\x04"))
    assert raw[:4] == b"\x01\x02\x03\x04"
    assert raw[4:] == hashlib.sha256(b"\x01\x02\x03\x04s3cret").digest()
    assert access.password_hash("s3cret") != access.password_hash("s3cret")  # a salt each time
    with pytest.raises(ValueError, match="4 bytes"):
        access.password_hash("x", salt=b"12")


def test_definitions_hold_each_role_hashed_and_an_admin_only_when_asked():
    defs = access.definitions("space-1", {"edge": "pw-e", "mpwallet": "pw-w"}, prefix="space-1.")
    assert [u["name"] for u in defs["users"]] == ["space-1.edge", "space-1.mpwallet"]
    assert "pw-e" not in str(defs) and all(u["tags"] == "" for u in defs["users"])
    assert {p["user"] for p in defs["permissions"]} == {"space-1.edge", "space-1.mpwallet"}
    assert {t["exchange"] for t in defs["topic_permissions"]} == {"mplogin", "mpwallet", "mpledger"}
    with_admin = access.definitions("/", {"mpledger": "x"}, admin=("mpsoa", "y"))
    admin = with_admin["users"][-1]
    assert admin["name"] == "mpsoa" and admin["tags"] == "administrator"
    assert with_admin["topic_permissions"] == []  # only the edge has topic permissions
    with pytest.raises(ValueError, match="unknown roles"):
        access.definitions("/", {"mpbank": "x"})
