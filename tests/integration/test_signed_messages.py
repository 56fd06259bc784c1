"""Celery's signed messages on a real broker (mpsoa_lab.experiments.signed_messages): what a
signing worker refuses, what it runs that its signer never sent, and what a signing caller does
with results. If a refusal ever loosens, or a gap closes, this goes red (and notebook 12's prose
with it)."""

from __future__ import annotations

import pytest

from mpsoa_lab.experiments import signed_messages

#: Outcomes and sizes, no timings: make test runs it beside others.
pytestmark = pytest.mark.beside_others


@pytest.fixture(scope="module")
def signed(lab):
    before = set(lab.space_home.glob("signing-*"))
    run = signed_messages.run(lab, calls=10)
    # the keys did not outlive the run
    assert set(lab.space_home.glob("signing-*")) == before == set()
    return run


def test_forged_bodies_are_refused(signed):
    cases = signed.cases
    assert cases["signed"].runs == 1 and cases["signed"].effect.endswith("balance 100 cents")
    for key in ("unsigned", "body changed", "stranger's key"):
        assert cases[key].runs == 0, key
        assert cases[key].effect.endswith("balance 100 cents"), key  # nothing paid
    assert "untrusted content" in cases["unsigned"].log
    assert "Unknown certificate" in cases["stranger's key"].log
    assert "Unable to deserialize" in cases["body changed"].log


def test_what_the_signature_does_not_cover_runs(signed):
    cases = signed.cases
    assert cases["task header"].runs == 1 and "balance 0 cents" in cases["task header"].effect
    assert cases["replay"].runs == 2 and cases["replay"].effect.endswith("balance 200 cents")
    assert cases["reply_to"].runs == 1 and "200 cents, read with no key" in cases["reply_to"].effect
    assert {"task", "id", "eta", "expires"} <= set(signed.unsigned_headers)
    assert {"reply_to", "correlation_id"} <= set(signed.unsigned_properties)


def test_a_signing_caller_and_its_results(signed):
    results = signed.results
    assert results["forged JSON"].answer == "raised ContentDisallowed"
    assert results["signed for another call"].answer == "raised TimeoutError"
    assert results["request swapped"].answer == "returned 200"


def test_signing_costs_bytes_and_codec_time(signed):
    # CPU time, not wall time: the machine's load beside this test changes neither
    cost = signed.cost
    assert len(cost.json_ms) == len(cost.signed_ms) == cost.calls == 10
    assert cost.signed_bytes > 4 * cost.json_bytes
    assert cost.codec_signed_ms > 10 * cost.codec_json_ms


def test_this_process_keeps_json_as_its_default(signed):
    from kombu.serialization import registry

    # setup_security() would have made auth the default; the caller registered the codec only
    assert registry.type_to_name[registry._default_content_type] == "json"
