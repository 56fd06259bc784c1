"""``make bench`` in its quick mode: it runs on the session's lab, writes every figure and
condition, and leaves nothing behind. Whether the targets are met is not tested: CI machines
are shared and noisy, and the benchmark is not a timed test."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
from kombu import Connection

from mpsoa_lab.plumbing.processes import managed_commands


def numbers(value, path="results"):
    """Every number in a JSON document, with where it is."""
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from numbers(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from numbers(item, f"{path}[{i}]")


@pytest.fixture(scope="module")
def quick_run(lab, tmp_path_factory):
    output = tmp_path_factory.mktemp("bench") / "results.json"
    # A process of its own, as `make bench` runs it; it attaches to the session's lab.
    proc = subprocess.run(
        [sys.executable, "-m", "mpsoa_lab.bench", "--quick", "--output", str(output)],
        check=False,
        capture_output=True,
        text=True,
        timeout=180,
        env=os.environ.copy(),
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return json.loads(output.read_text()), proc.stdout


def test_the_headline_ratios_are_positive_finite_numbers(quick_run):
    results, _ = quick_run
    for key in ("sync_p50_ratio", "sync_p99_ratio", "async_publish_ratio"):
        value = results[key]
        assert isinstance(value, float) and math.isfinite(value) and value > 0, key
    assert results["mode"] == "quick"


def test_the_raw_figures_are_there_and_positive(quick_run):
    results, _ = quick_run
    sync, publish, e2e = results["sync"], results["async_publish"], results["end_to_end"]
    for variant in ("raw", "celery_prefork", "celery_solo"):
        assert sync["median"][variant]["p50_ms"] > 0
        assert sync["median"][variant]["p99_ms"] >= sync["median"][variant]["p50_ms"]
    assert sync["results_agree"]  # Celery and the raw responder did the same work
    for variant in (
        "raw",
        "celery_recommended",
        "celery_producer_per_call",
        "celery_stripped",
        "celery_connection_per_message",
    ):
        assert publish["median_msgs_per_s"][variant] > 0
    for config in ("prefork_1", "prefork_2"):
        assert e2e["median_tasks_per_s"][config] > 0
    # Counted, not estimated: every message published reached its queue, every task ran once.
    counts = publish["counts"]
    for variant in publish["variants"]:
        assert counts[f"{variant} counted in queue"] == counts[f"{variant} published"]
    assert e2e["counts"]["published"] == e2e["counts"]["distinct"] == e2e["counts"]["stored"]
    assert e2e["counts"]["lost"] == e2e["counts"]["duplicated"] == 0
    for path, value in numbers(results):
        assert math.isfinite(value), path
    assert publish["breakdown_us_per_message"]["celery_total"] > 0
    assert publish["profile_top"]


def test_every_target_has_a_verdict_but_none_is_required(quick_run):
    results, stdout = quick_run
    assert set(results["targets"]) == {"sync_p50", "async_publish"}
    for target in results["targets"].values():
        assert isinstance(target["met"], bool) and target["result"] in ("pass", "fail")
        assert target["measured"] == results[target["key"]]
    assert results["all_targets_met"] == all(t["met"] for t in results["targets"].values())
    if not results["all_targets_met"]:
        assert results["missed"] and "TARGET MISSED" in stdout
    assert "target:" in stdout and "(a) sync round trip" in stdout


def test_the_conditions_are_written_down(quick_run):
    results, _ = quick_run
    cond = results["conditions"]
    assert {"python", "celery", "kombu", "amqp", "rabbitmq"} <= set(cond["versions"])
    assert cond["machine"]["platform"] and cond["machine"]["cpu_count"] >= 1
    assert cond["counts"]["sync_calls"] > 0 and cond["counts"]["e2e_tasks"] > 0
    assert cond["workers"]["recommended_pool"] == "prefork"
    assert cond["workers"]["concurrency"] >= 1 and cond["workers"]["prefetch_multiplier"] >= 1
    assert cond["delivery_mode"] == {"sync": "transient", "async": "persistent"}
    message = results["async_publish"]["message"]
    assert message["payload_bytes"] > 0 and message["celery"]["body_bytes"] > 0
    assert results["sync"]["message"]["celery"]["headers_bytes"] > 0
    settings = results["recommended_settings"]
    assert settings and all(r["setting"] and r["reason"] for r in settings)


def test_the_benchmark_leaves_nothing_behind(lab, quick_run):
    left = list(managed_commands(lab.home).values())
    assert not [cmd for cmd in left if "bench-" in cmd or "mpsoa_lab.bench" in cmd]
    lab.prepare_topology(purge=False)  # the queue exists in this space, whatever ran before
    with Connection(lab.async_.url) as conn:
        _, messages, _ = conn.default_channel.queue_declare("mpledger.async", passive=True)
    assert messages == 0
    from mpsoa_lab.design.services import mpledger

    rows = mpledger.service.storage.query(
        "SELECT COUNT(*) AS n FROM executions WHERE hostname LIKE 'bench-%'"
    )
    assert rows[0]["n"] == 0


def test_a_quick_run_skips_the_lab_start_and_says_so(quick_run):
    results, stdout = quick_run
    assert "skipped" in results["lab_start"]
    assert "(d) the lab's start against its nodes' own boot: skipped" in stdout


def test_the_lab_start_is_measured_beside_its_nodes_and_leaves_nothing(lab):
    import glob
    import tempfile

    import psutil

    from mpsoa_lab.bench.lab_start import TARGET, lab_start

    before = {c.key for c in lab.components()}
    logged = []
    start = lab_start(lab, 1, logged.append)
    assert start["rounds"] == 1 and len(start["up_s"]) == len(start["nodes_by_hand_s"]) == 1
    assert 0 < start["nodes_median_s"] and 0 < start["up_median_s"]
    assert start["ratio"] == pytest.approx(start["up_s"][0] / start["nodes_by_hand_s"][0], 1e-2)
    assert start["met"] == (start["ratio"] <= TARGET) and logged
    assert {c.key for c in lab.components()} == before  # the nodes by hand were forgotten
    hand = [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if any("mpsoa-hand" in part or "mpsoa-bench-" in part for part in p.info["cmdline"] or [])
    ]
    assert hand == []
    assert glob.glob(f"{tempfile.gettempdir()}/mpsoa-bench-*") == []
