"""What the figures were measured under: versions, machine, counts, workers, delivery
(the ``conditions`` section of ``results.json``)."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from .workload import CONCURRENCY, POOLS, PREFETCH_MULTIPLIER, Counts

if TYPE_CHECKING:
    from ..running.lab import Lab

__all__ = ["conditions", "load_average", "machine"]


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded."""
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict[str, Any]:
    """Platform, CPUs, Python, memory, and the load average now (``load_average_at_start``)."""
    import psutil

    return {
        "platform": platform.platform(terse=True),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_implementation() + " " + platform.python_version(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_at_start": load_average(),
    }


def conditions(
    lab: Lab,
    counts: Counts,
    e2e_pools: tuple[str, ...],
    machine: dict[str, Any],
    purged_at_start: dict[str, int],
) -> dict[str, Any]:
    """The ``conditions`` section: everything a reader needs to compare two runs."""
    import mpsoa_lab

    return {
        "versions": mpsoa_lab.versions(lab),
        "machine": machine,
        "brokers": {
            role: ("lab node" if b.node else "external") for role, b in lab.brokers.items()
        },
        "counts": asdict(counts),
        "workers": {
            "pools_sync": list(POOLS),
            "pools_end_to_end": list(e2e_pools),
            "recommended_pool": POOLS[0],
            "concurrency": CONCURRENCY,
            "prefetch_multiplier": PREFETCH_MULTIPLIER,
            "prefetch_count": CONCURRENCY * PREFETCH_MULTIPLIER,
            "options": "--without-mingle --without-gossip --without-heartbeat "
            "--loglevel WARNING, task events off",
            "acks": "early (Celery's default), the raw responder likewise",
        },
        "raw_responder": "one kombu process, prefetch_count "
        f"{CONCURRENCY * PREFETCH_MULTIPLIER}, same function and "
        "execution log as the task",
        "delivery_mode": {"sync": "transient", "async": "persistent"},
        "serializer": "json",
        "publisher_confirms": False,
        "result_backend": "rpc:// (sync app); none, task_ignore_result (async app)",
        "queues_purged_at_start": purged_at_start,
        "ratio_definition": "median over rounds of Celery/raw within a round",
    }
