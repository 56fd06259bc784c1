"""Layer 6, experiments: fault scenarios and what tracing costs; the benchmark is
:mod:`mpsoa_lab.bench`, in the same layer.
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
    # notebook 06, two brokers measured
    "FloodRun": "two_brokers",
    "AlarmRun": "two_brokers",
    "run_flood": "two_brokers",
    "run_alarm": "two_brokers",
    "time_sync_calls": "two_brokers",
    "entry_kwargs": "two_brokers",
    "finish_in_hand": "two_brokers",
    "body_bytes": "two_brokers",
    "cpu_seconds": "two_brokers",
    "node_memory": "two_brokers",
    "phase_calls": "two_brokers",
    "reset_storage": "two_brokers",
    "latency_table": "two_brokers",
    "mem_growth": "two_brokers",
    "broker_rows": "two_brokers",
    "alarm_phases": "two_brokers",
    "plot_flood": "two_brokers",
    "plot_alarm": "two_brokers",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
