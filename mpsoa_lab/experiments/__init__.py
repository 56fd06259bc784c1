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
    "settled_task_ids": "faults",
    "wait_started": "faults",
    "wait_acked": "faults",
    "freeze_main_process": "faults",
    "negotiated_heartbeat": "faults",
    # notebook 07: the fault drivers and their reports
    "NO_REPLY": "fault_scenarios",
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
    # notebook 04 (sync calls)
    "sync_workers": "sync_calls",
    "worker_settings": "sync_calls",
    "consumers": "sync_calls",
    "consume_with": "sync_calls",
    "CpuUse": "sync_calls",
    "measure_cpu": "sync_calls",
    "Block": "sync_calls",
    "take_turns": "sync_calls",
    "setting_logs": "sync_calls",
    "setting_rows": "sync_calls",
    "round_ratios": "sync_calls",
    "format_table": "sync_calls",
    "plot_ecdfs": "sync_calls",
    "thin_edge_error": "sync_calls",
    "alternate": "sync_calls",
    "BROKER_COUNTERS": "sync_calls",
    "counted_by_broker": "sync_calls",
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
    # notebook 06, two brokers measured
    "FloodRun": "two_brokers",
    "AlarmRun": "memory_alarm",
    "run_flood": "two_brokers",
    "run_alarm": "memory_alarm",
    "time_sync_calls": "two_brokers",
    "entry_kwargs": "two_brokers",
    "finish_in_hand": "two_brokers",
    "cpu_seconds": "two_brokers",
    "node_memory": "memory_alarm",
    "phase_calls": "two_brokers",
    "reset_storage": "two_brokers",
    "latency_table": "two_brokers",
    "mem_growth": "two_brokers",
    "broker_rows": "two_brokers",
    "alarm_phases": "memory_alarm",
    "plot_flood": "two_brokers",
    "plot_alarm": "memory_alarm",
    # notebook 09, REST against AMQP
    "WrkRun": "rest_vs_amqp",
    "parse_wrk": "rest_vs_amqp",
    "run_wrk": "rest_vs_amqp",
    "Side": "rest_vs_amqp",
    "compare": "rest_vs_amqp",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
