"""The lines of the "secured" table (mpsoa_lab.experiments.secured) from given results: what
each counts as stopped and let through, and what makes a line fail."""

from __future__ import annotations

from types import SimpleNamespace as NS

from mpsoa_lab.experiments import secured


def test_a_socket_beyond_loopback_fails_the_guest_line():
    ok = secured.guest_on_loopback({"sync": ["127.0.0.1:1", "127.0.0.1:2"]}, True)
    assert (ok.stopped, ok.aimed, ok.stops_all, ok.through) == (2, 2, True, 1)
    wide = secured.guest_on_loopback({"sync": ["127.0.0.1:1"], "async": ["0.0.0.0:2"]}, False)
    assert (wide.stopped, wide.aimed, wide.stops_all, wide.through) == (1, 2, False, 0)
    assert secured.guest_on_loopback({"sync": ["[::1]:5"]}, True).stops_all
    assert not secured.guest_on_loopback({}, True).stops_all  # nothing read is not a pass


def test_the_users_line_counts_controls_and_the_pickle_as_let_through():
    closed = [
        NS(what="consume another's queue", allowed=False),
        NS(what="publish through the default exchange", allowed=True),
        NS(what="consume its own queue (the control)", allowed=True),
    ]
    layer = secured.user_per_party(closed, True, NS(ratio=1.02))
    assert (layer.stopped, layer.aimed, layer.stops_all) == (1, 2, False)
    assert (layer.through, layer.tried) == (2, 2)
    assert "x1.02" in layer.cost


def test_the_tls_line_and_its_cost():
    gets_in = {"the lab's": "connected", "none": "refused", "expired": "refused"}
    medians = {"tls_connect": 8.0, "plain_connect": 2.0, "tls_call": 3.0, "plain_call": 2.0}
    layer = secured.tls_peer_verification(gets_in, NS(median=medians.__getitem__))
    assert (layer.stopped, layer.aimed, layer.through, layer.tried) == (2, 2, 1, 1)
    assert layer.ratio == 1.5 and "x4.0" in layer.cost


def test_json_only_stops_nothing_when_its_worker_ran_the_pickle():
    codec = NS(codec_json_ms=0.02, codec_pickle_ms=0.01)
    ran = {
        "lab (JSON only)": NS(marker=True, good_task_ran=True),
        "2014 (pickle accepted)": NS(marker=True),
    }
    assert not secured.json_only(ran, codec).stops_all
    held = {**ran, "lab (JSON only)": NS(marker=False, good_task_ran=True)}
    layer = secured.json_only(held, codec)
    assert layer.stops_all and layer.ratio == 2.0


def test_the_signing_line_counts_forged_and_captured_messages():
    cases = {k: NS(runs=0) for k in secured.FORGED} | {k: NS(runs=1) for k in secured.CAPTURED}
    results = {"forged JSON": NS(answer="raised ContentDisallowed"),
               "request swapped": NS(answer="returned 200")}  # fmt: skip
    cost = NS(signed_bytes=700, json_bytes=100, codec_signed_ms=0.3, codec_json_ms=0.01,
              signed_median=3.0, json_median=2.0)  # fmt: skip
    layer = secured.signed_messages(NS(cases=cases, results=results, cost=cost))
    assert (layer.stopped, layer.aimed, layer.through, layer.tried) == (4, 4, 4, 4)
    cases["replay"] = NS(runs=0)
    assert secured.signed_messages(NS(cases=cases, results=results, cost=cost)).through == 3


def test_the_table_has_four_lines_per_layer():
    layer = secured.guest_on_loopback({"sync": ["127.0.0.1:1"]}, True)
    assert len(secured.table([layer, layer]).splitlines()) == 8
