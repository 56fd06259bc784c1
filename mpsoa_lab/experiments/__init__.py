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
    # notebook 07: the fault drivers and their reports
    "counted": "fault_scenarios",
    "format_tallies": "fault_scenarios",
    "KillRun": "fault_scenarios",
    "kill_mid_task": "fault_scenarios",
    "kill_after_effect": "fault_scenarios",
    "sync_call": "fault_scenarios",
    "sync_calls_through_outage": "fault_scenarios",
    "publish_unbound": "fault_scenarios",
    "CrashRun": "fault_scenarios",
    "crash_while_publishing": "fault_scenarios",
    "FreezeRun": "fault_scenarios",
    "freeze_and_watch": "fault_scenarios",
    "OnePage": "fault_scenarios",
    "plot_fault_costs": "fault_scenarios",
    "record_cost": "tracing_cost",
    "measure_overhead": "tracing_cost",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
