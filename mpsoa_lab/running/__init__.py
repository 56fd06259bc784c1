"""Layer 4, the running lab: the brokers, the design's topology on them, workers, the reaper.

It declares the design's topology and starts the design's services as Celery workers.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

#: The layer's public names and the module of each: ``from mpsoa_lab.running import X`` imports
#: that module on first use only (a worker that needs one module does not load the others).
_EXPORTS = {
    "Broker": "lab",
    "Lab": "lab",
    "up": "lab",
    "check_broker": "lab",
    "running_lab_urls": "lab",
    "teardown": "lab",
    "close_spaces": "lab",
    "Worker": "workers",
    "start_worker": "workers",
    "start_workers": "workers",
    "start_daemons": "workers",
    "stop_all": "workers",
    "worker_command": "workers",
    "needs_lab_nodes": "notebook",
    "skip_message": "notebook",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
