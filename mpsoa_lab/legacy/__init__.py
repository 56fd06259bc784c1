"""Layer 5, the 2014 code and its audit: the original router and settings, run on a real broker."""

from __future__ import annotations

from ..plumbing.exports import lazy_exports

#: The layer's public names and the module of each: ``from mpsoa_lab.legacy import X`` imports
#: that module on first use only (a worker that needs one module does not load the others).
_EXPORTS = {
    "LEGACY_SERVICES": "design2014",
    "LEGACY_SYNC_PATTERN": "design2014",
    "LEGACY_ASYNC_PATTERN": "design2014",
    "Router": "design2014",
    "CeleryConfig": "design2014",
    "legacy_celery_apps_factory": "design2014",
    "legacy_route": "design2014",
    "modern_route": "design2014",
    "compare_routers": "design2014",
    "ROUTER_CASES": "design2014",
    "STATUSES": "audit",
    "audit_legacy_settings": "audit",
    "observe_legacy_on_broker": "audit",
    "probe_mixed_names": "audit",
    "run_celery_upgrade_settings": "upgrade",
    "legacy_settings_source": "upgrade",
    # notebook 03: its harness (scratch vhosts, message counts, tables, verdicts per setting)
    "POST_SETTINGS": "probes",
    "POST_SET_OUTSIDE_CONFIG": "probes",
    "SETTING_VERDICT": "probes",
    "config_table": "probes",
    "error_class": "probes",
    "exchanges_of": "probes",
    "landing_table": "probes",
    "messages_per_queue": "probes",
    "queue_details": "probes",
    "router_table": "probes",
    "scratch_vhost": "probes",
    "set_by": "probes",
    "setting_verdict": "probes",
    "status_summary": "probes",
    "sync_queues_consumed": "probes",
    "wait_for_messages": "probes",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
