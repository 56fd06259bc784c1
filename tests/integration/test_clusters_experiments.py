"""Notebook 10's harness on a real three-node cluster: the 2014 argument mirrors nothing; a
node killed under load with quorum queues, every task counted, the node back and nothing left;
a queue's leader stopped cleanly and rejoined; one address (HAProxy in TCP mode) in front of the
cluster; what quorum queues change for Celery.

One cluster serves the module (a start is ~10 s on two cores); loads are a few seconds.
"""

from __future__ import annotations

import pytest

from mpsoa_lab.experiments.clusters import (
    CONFIGS,
    MIRRORING_POLICY,
    TRANSIENT_REPLY_BACKEND,
    MirroringUnavailable,
    cluster_vhost,
    confirm_latency,
    cost,
    ha_setting_2014,
    mirroring_note,
    node_loss,
    quorum_specifics,
    server_version,
)
from mpsoa_lab.experiments.clusters.versions import mirroring_available
from mpsoa_lab.running import haproxies
from mpsoa_lab.running.cluster import start_cluster, stop_cluster


@pytest.fixture(scope="module")
def cluster(lab):
    cluster = start_cluster(lab, "sync", 3)
    yield cluster
    stop_cluster(lab, cluster)


def short_quorum_loss(lab, cluster, **options):
    """A short :func:`node_loss` of quorum queues: 20 tasks a second, the node down 0.5 s."""
    return node_loss(
        lab, cluster, CONFIGS["quorum"], rate=20, before=1.0, down_for=0.5, after=1.0, **options
    )


def _vhosts(cluster) -> set[str]:
    with cluster.management() as api:
        return {v for v in api.vhosts() if v.startswith("nb10-")}


def test_the_2014_argument_mirrors_no_queue(cluster):
    ha = ha_setting_2014(cluster)
    assert len(ha.queues) == 6
    assert all(q["arguments"] == {"x-ha-policy": "all"} for q in ha.queues.values())
    assert ha.mirrored == []  # RabbitMQ >= 3.0 mirrors by policy only
    assert ha.policies == []
    assert server_version(cluster) == ha.version
    note = mirroring_note(ha.version)  # deprecated from 3.9, gone in 4.0
    assert ("removed in 4.0" if ha.version >= (4, 0) else "deprecated") in note or ha.version < (
        3,
        9,
    )
    assert _vhosts(cluster) == set()  # its vhost is gone


def test_the_mirroring_policy_mirrors_every_queue_of_its_vhost(cluster):
    from kombu import Connection, Queue

    from mpsoa_lab.plumbing.util import wait_until

    if not mirroring_available(server_version(cluster)):  # RabbitMQ 4: refused, saying why
        with pytest.raises(MirroringUnavailable, match="removed in 4.0"):
            with cluster_vhost(cluster, "nb10-test-mirrored", CONFIGS["mirrored"]):
                pass
        assert _vhosts(cluster) == set()
        return
    with cluster_vhost(cluster, "nb10-test-mirrored", CONFIGS["mirrored"]) as vhost:
        with Connection(cluster.node_urls(vhost)[0]) as conn:
            Queue("mirrored-probe", durable=True)(conn.default_channel).declare()
        wait_until(lambda: cluster.queue("mirrored-probe", vhost).get("slave_nodes"), timeout=10)
        with cluster.management() as api:
            [policy] = api.policies(vhost)
        assert (policy["name"], policy["definition"]) == ("mirrored-queues", MIRRORING_POLICY)
        assert cluster.queue_replicas("mirrored-probe", vhost) == sorted(cluster.nodenames)
    assert _vhosts(cluster) == set()


def test_quorum_queues_keep_every_task_when_a_leader_dies(lab, cluster):
    run = short_quorum_loss(lab, cluster, rejoin_messages=5, clients_elsewhere=True)
    assert run.killed in run.replicas["mpledger.async"]
    assert run.replicas["mpledger.async"] == sorted(cluster.nodenames)
    assert run.async_.published > 20 and run.async_.lost == 0
    assert run.sync.lost == 0 and len(run.calls) > 0
    assert all(run.recovered.values()) and all(run.alive.values())
    assert run.rejoin is not None
    assert run.rejoin.published_while_down == 5 and run.rejoin.in_queue_after == 15
    assert run.rejoin.holds_copy  # the rejoined member caught up
    assert cluster.running_members() == sorted(cluster.nodenames)
    assert _vhosts(cluster) == set()
    assert not any(w for w in lab.components("worker") if w.is_running())


def test_what_quorum_queues_change_for_celery(lab, cluster):
    found = quorum_specifics(lab, cluster)
    assert "PRECONDITION_FAILED" in found["redeclare"] and "x-queue-type" in found["redeclare"]
    assert found["delayed queues"] == 28 and found["delayed queue types"] == ["quorum"]
    assert found["countdown ran after s"] is not None and found["countdown ran after s"] >= 1.5
    assert found["poison x-delivery-count"] == [0, 1, 2]
    assert found["poison in dead-letter queue"] == 1
    assert _vhosts(cluster) == set()


def test_cost_counts_every_call_and_task_and_reads_each_nodes_memory(lab, cluster):
    run = cost(lab, cluster, "quorum", calls=20, tasks=50)
    assert len(run.call_seconds) == 20 and run.tasks == 50
    assert 0 < run.p50_ms <= run.p99_ms and run.throughput > 0 and run.publish_rate > 0
    assert sorted(run.memory_mib) == sorted(cluster.nodenames)
    assert all(m > 0 for m in run.memory_mib.values())
    assert run.qos["mpledger.async"] == {"consumer prefetch": 4, "global prefetch": 0}
    assert _vhosts(cluster) == set()


def test_one_address_moves_every_client_off_a_killed_node(lab, cluster):
    """Behind a TCP-mode HAProxy whose active server is the leaders' node, with a non-durable
    reply queue: the clients lose their node with the kill and are served again through the
    same address, the workers without retrying the dead node's URL."""
    run = short_quorum_loss(
        lab, cluster, rejoin_messages=0, one_address=True, caller_backend=TRANSIENT_REPLY_BACKEND
    )
    assert run.label == "quorum (one address, transient replies)"
    assert run.killed == run.leaders["mpledger.async"]  # the proxy's active node was killed
    assert run.async_.published > 20 and run.async_.lost == 0 and run.sync.lost == 0
    assert all(run.recovered.values()) and all(run.alive.values())
    assert run.delayed_delivery_retries == {"sync worker": 0, "async worker": 0}
    assert not haproxies(lab) and _vhosts(cluster) == set()


def test_confirm_latency_times_every_publish_to_each_kind_of_queue(cluster):
    seconds = confirm_latency(cluster, messages=20)
    mirrors = mirroring_available(server_version(cluster))  # 3.x still mirrors, 4.0 does not
    assert list(seconds) == ["2014", "mirrored", "quorum"] if mirrors else ["2014", "quorum"]
    assert all(len(s) == 20 and all(x > 0 for x in s) for s in seconds.values())
    assert _vhosts(cluster) == set()
