"""Layer 2, observation: per-message tracing, latency figures, queue depth, pictures of runs.

It reads what the broker and Celery report; it imports only from :mod:`mpsoa_lab.plumbing`,
so the design's services can record their messages with it.
"""

from __future__ import annotations

from ..plumbing.exports import lazy_exports

#: The layer's public names and the module of each: ``from mpsoa_lab.observe import X`` imports
#: that module on first use only (a worker that needs one module does not load the others).
_EXPORTS = {
    "progress": "progressbar",
    "CpuMeter": "cpu",
    "cpu_by_process": "cpu",
    "TRACE_ENV": "tracing",
    "HEADER": "tracing",
    "EVENTS": "tracing",
    "trace_dir": "tracing",
    "TraceWriter": "tracing",
    "Tracer": "tracing",
    "TaskTrace": "tracing",
    "connect_worker": "tracing",
    "connect_worker_from_env": "tracing",
    "read_records": "tracing",
    "collect": "tracing",
    "PERCENTILES": "latency",
    "CallerRun": "latency",
    "ecdf": "latency",
    "max_overlap": "latency",
    "percentile": "latency",
    "rate_over_time": "latency",
    "run_callers": "latency",
    "summarize": "latency",
    "SpaceEvents": "events",
    "DECLARED": "events",
    "QueueMonitor": "monitor",
    "plot_depth": "monitor",
    "plot_timeline": "timeline",
    "draw_topology": "diagram",
    "VERDICTS": "verdicts",
    "Verdict": "verdicts",
    "Verdicts": "verdicts",
    "load_verdicts": "verdicts",
    "verdicts_dir": "verdicts",
    "layout": "diagram",
    "record_measured": "measured",
    "recorded_runs": "measured",
    "format_recorded": "measured",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
