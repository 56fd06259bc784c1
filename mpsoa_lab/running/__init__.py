"""Layer 4, the running lab: the brokers, the design's topology on them, workers, the reaper.

It declares the design's topology and starts the design's services as Celery workers.
"""

from __future__ import annotations

from ..plumbing.exports import lazy_exports

#: The layer's public names and the module of each: ``from mpsoa_lab.running import X`` imports
#: that module on first use only (a worker that needs one module does not load the others).
_EXPORTS = {
    "Broker": "lab",
    "Lab": "lab",
    "up": "lab",
    "check_broker": "lab",
    "running_lab_urls": "lab",
    "teardown": "lab",
    "close_spaces": "spaces",
    "Worker": "workers",
    "start_worker": "workers",
    "start_workers": "workers",
    "start_daemons": "workers",
    "stop_all": "workers",
    "worker_command": "workers",
    "needs_lab_nodes": "notebook",
    "skip_message": "notebook",
    # the HTTP edge (issue 12, notebook 08)
    "start_edge": "edge",
    "stop_edge": "edge",
    "edge_url": "edge",
    "edges": "edge",
    # the REST alternative (issue 13, notebook 09)
    "start_rest": "rest",
    "stop_rest": "rest",
    "rest_url": "rest",
    "rest_instances": "rest",
    "rest_service": "rest",
    "start_haproxy": "haproxy",
    "stop_haproxy": "haproxy",
    "haproxies": "haproxy",
    "add_instance": "haproxy",
    "remove_instance": "haproxy",
    "server_of": "haproxy",
    "launch_haproxy": "haproxy",
    # clusters (issue 14, notebook 10)
    "start_cluster": "cluster",
    "stop_cluster": "cluster",
    "clusters": "cluster",
    "start_broker_proxy": "cluster",
    "proxy_url": "cluster",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
