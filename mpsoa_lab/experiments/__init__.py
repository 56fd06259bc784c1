"""Layer 6, experiments: fault scenarios, async tasks drained by workers and what tracing
costs; the benchmark is :mod:`mpsoa_lab.bench`, in the same layer.
"""

from __future__ import annotations

from ..plumbing.exports import lazy_exports

#: The layer's public names and the module of each: ``from mpsoa_lab.experiments import X`` imports
#: that module on first use only (a worker that needs one module does not load the others).
_EXPORTS = {
    "Scenario": "faults",
    "restored": "faults",
    "restart_nodes": "faults",
    "drop_pooled_connections": "faults",
    "Tally": "faults",
    "tally": "faults",
    "queued_task_ids": "faults",
    "wait_started": "faults",
    "freeze_main_process": "faults",
    "negotiated_heartbeat": "faults",
    "record_cost": "tracing_cost",
    "measure_overhead": "tracing_cost",
    # notebook 05 (async tasks, round robin and prefetch)
    "overhead_report": "tracing_cost",
    "consumer_count": "async_drain",
    "body_bytes": "async_drain",
    "executed": "async_drain",
    "executions": "async_drain",
    "wait_processed": "async_drain",
    "worker_qos": "async_drain",
    "WorkerGroup": "async_drain",
    "worker_group": "async_drain",
    "BurstRun": "async_drain",
    "rotation_names": "async_drain",
    "rotation_kept": "async_drain",
    "rotation_prefix": "async_drain",
    "drain_table": "async_drain",
    "MixedRun": "async_drain",
    "mixed_table": "async_drain",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
