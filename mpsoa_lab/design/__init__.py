"""Layer 3, the design itself: task names, topology, router, app factory, result backend, services.

Beside it, the two HTTP faces of the services: the design's edge (:mod:`.edge`, which publishes
tasks) and the REST alternative the 2014 post argues against (:mod:`.rest`, which runs the same
task functions in-process).

It imports from :mod:`mpsoa_lab.plumbing` and :mod:`mpsoa_lab.observe`, never from the running
lab: a service started by ``celery -A mpsoa_lab.design.services.<service>.<kind>_app`` finds the
brokers through the state file (:mod:`mpsoa_lab.plumbing.state`).
"""

from __future__ import annotations

from ..plumbing.exports import lazy_exports

#: The layer's public names and the module of each: ``from mpsoa_lab.design import X`` imports
#: that module on first use only (a worker that needs one module does not load the others).
_EXPORTS = {
    "PLATFORM_PREFIX": "naming",
    "TASK_NAME_PATTERN": "naming",
    "SERVICES": "naming",
    "KINDS": "naming",
    "TaskName": "naming",
    "is_platform_name": "naming",
    "parse_task_name": "naming",
    "queue_name": "naming",
    "service_exchange": "topology",
    "service_queues": "topology",
    "platform_queues": "topology",
    "binding_key": "topology",
    "declare": "topology",
    "route_task": "routing",
    "kind_router": "routing",
    "make_router": "routing",
    "APP_TYPES": "apps",
    "celery_apps_factory": "apps",
    "base_config": "apps",
    "normalize_broker_url": "apps",
    "RPCBackend": "rpc_backend",
    "ResultConsumer": "rpc_backend",
    "DECLARE_RETRY_POLICY": "rpc_backend",
    "BACKEND": "rpc_backend",
    "draw_architecture": "architecture",
    "what_the_edge_must_know": "architecture",
    # the design as the lab recommends it (issue 25, notebook 14)
    "Choice": "recommended",
    "CHOICES": "recommended",
    "recommended_apps": "recommended",
    "recommended_config": "recommended",
    "worker_options": "recommended",
    "choices_table": "recommended",
    # the HTTP edge (issue 12, notebook 08)
    "create_app": "edge",
    "EdgeError": "edge",
    "BodyLimit": "edge",
    "Publisher": "edge",
    "error_status": "edge",
    "ROUTES": "edge",
    # the REST alternative (issue 13, notebook 09)
    "RestConfig": "rest",
    "rest_error": "rest",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
