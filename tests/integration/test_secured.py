"""The table of what "secured" takes (mpsoa_lab.experiments.secured), on real nodes: every
socket a lab node listens on is on loopback, so guest/guest cannot come from another machine;
the edge's own rights carry a pickle to a worker that accepts it; calls work as the design's
users. If a lab node ever listens beyond loopback, this goes red."""

from __future__ import annotations

import pytest

from mpsoa_lab.experiments import permissions, pickle_payload, secured
from mpsoa_lab.running.tls import tls_broker

#: Outcomes, no timings: make test runs it beside others.
pytestmark = pytest.mark.beside_others


def test_every_socket_of_every_lab_node_is_on_loopback(lab):
    sockets = secured.listening(lab)
    with tls_broker(lab) as broker:
        sockets["tls"] = secured.sockets_of(broker.node)
    for role, found in sockets.items():
        node = lab.node(role) if role in lab.brokers else broker.node
        ports = {str(p) for p in node.ports.values() if p}
        assert ports <= {s.rsplit(":", 1)[1] for s in found}, (role, found)  # all were read
        assert all(secured.on_loopback(s) for s in found), (role, found)
    layer = secured.guest_on_loopback(sockets, secured.guest_connects(lab))
    assert layer.stops_all and layer.through == 1  # guest from here: yes; from elsewhere: no


def test_the_edge_s_own_rights_carry_a_pickle_to_a_worker_that_accepts_it(lab):
    with permissions.design_user(lab, "edge") as edge:
        workers = pickle_payload.to_worker(lab, publisher=edge.url("async"))
    ours, old = workers["lab (JSON only)"], workers["2014 (pickle accepted)"]
    assert old.marker and old.good_task_ran  # delivered on the edge's rights, and it ran
    assert not ours.marker and ours.good_task_ran and "untrusted content" in ours.log


def test_calls_work_as_the_design_s_users_taking_turns_with_the_lab_s(lab):
    cost = permissions.call_cost(lab, calls=10)
    assert len(cost.lab_ms) == len(cost.design_ms) == 10
    assert cost.ratio > 0
