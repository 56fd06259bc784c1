"""Least privilege on a real broker (mpsoa_lab.experiments.permissions, design.access): what
Celery needs, found by growing a user's permissions from nothing; the design's permissions
cover it; every cross-service attempt is refused. If a permission ever loosens (or Celery
starts needing more), this goes red."""

from __future__ import annotations

import os
import re
import time

import pytest

from mpsoa_lab.design import access
from mpsoa_lab.experiments import permissions
from mpsoa_lab.plumbing.management import Management
from mpsoa_lab.running.workers import start_worker

#: Outcomes, no timings: make test runs it beside others.
pytestmark = pytest.mark.beside_others


def _covered(found, role):
    """Steps the design's permissions do not grant (with Celery's own rpc:// answers)."""
    design = access.permissions_for(role, reply_exchange=False)
    return [
        s for s in found.steps if s.kind != "topic" and not re.search(design[s.permission], s.name)
    ]


def test_an_edge_that_does_not_declare_needs_its_reply_queue_and_one_exchange(lab):
    lab.prepare_topology()
    with start_worker(lab, "mpwallet", "sync"):
        quiet = permissions.discover(lab, "edge", "call", permissions.sync_call(declare=False))
        declaring = permissions.discover(lab, "edge", "call", permissions.sync_call())
    assert quiet.worked and declaring.worked, (quiet.error, declaring.error)
    assert quiet.granted == {
        "configure": [f"^{access.UUID}$"],
        "write": ["^mpwallet$"],
        "read": [f"^{access.UUID}$"],
    }
    # Celery's default publish declares the route's queue: configure (and so delete) on it
    assert "^mpwallet\\.sync$" in declaring.granted["configure"]
    assert "^mpwallet$" in declaring.granted["configure"]
    assert not _covered(quiet, "edge")


def test_a_worker_needs_what_the_design_grants_and_nothing_more(lab):
    lab.prepare_topology()
    found = permissions.discover(lab, "mpwallet", "serve", permissions.serving_worker("mpwallet"))
    assert found.worked, found.error
    refused = {(s.method, s.name.split("@")[0] if "@" in s.name else s.name) for s in found.steps}
    assert ("Basic.consume", "mpwallet.sync") in refused
    assert ("Basic.publish", "amq.default") in refused  # its answers
    assert ("Exchange.declare", "celery.pidbox") in refused  # remote control
    assert not _covered(found, "mpwallet")  # the design grants each


def test_every_cross_service_attempt_is_refused_but_the_default_exchange(lab):
    attempts = {a.what: a for a in permissions.cross_service(lab, reply_exchange=False)}
    allowed = {what for what, a in attempts.items() if a.allowed}
    assert allowed == {
        "publish to queue mpledger.sync through the default exchange",
        "consume mpwallet.sync (its own queue: the control)",
        "publish mpledger.async.record_entry (its own task: the control)",
    }
    hole = attempts["publish to queue mpledger.sync through the default exchange"]
    assert hole.landed == 1  # into another service's queue
    assert all(a.landed in (None, 0) for a in attempts.values() if not a.allowed)
    assert all(a.connection_open for a in attempts.values())  # the broker closes the channel only
    api = Management.for_broker(lab.sync)
    assert not [u for u in api.users() if u["name"].startswith(f"{lab.sync.vhost}.")]


def test_a_reply_exchange_closes_the_default_exchange_and_calls_still_work(lab):
    for reply_exchange in (False, True):
        call = permissions.design_call(lab, reply_exchange=reply_exchange)
        assert call.worked and not call.steps, (reply_exchange, call.steps, call.error)
    attempts = {a.what: a for a in permissions.cross_service(lab, reply_exchange=True)}
    hole = attempts["publish to queue mpledger.sync through the default exchange"]
    assert not hole.allowed and hole.landed == 0
    assert "amq.default" in hole.said
    assert sum(a.allowed for a in attempts.values()) == 2  # the two controls


# A kernel that made a design user for its space, then dies without deleting it.
HOLDER = """
import sys, time
import mpsoa_lab
from mpsoa_lab.experiments import permissions
lab = mpsoa_lab.up(space=sys.argv[1])
held = permissions.design_user(lab, "edge")  # kept: its exit would delete the user
user = held.__enter__()
print(user.name, flush=True)
time.sleep(600)
"""


def test_a_user_left_by_a_killed_kernel_goes_with_its_space(lab, holder):
    space = f"users-{os.getpid()}"
    name = holder(HOLDER, space)
    assert name == f"{space}.edge"
    api = Management.for_broker(lab.sync)
    assert name in {u["name"] for u in api.users()}
    holder.kill()
    deadline = time.monotonic() + 60
    while name in {u["name"] for u in api.users()} and time.monotonic() < deadline:
        time.sleep(0.5)
    assert name not in {u["name"] for u in api.users()}, "the reaper left the user behind"
