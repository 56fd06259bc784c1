"""mpsoa-lab: Celery over RabbitMQ as the middleware of a service-oriented system, measured.

The package does the plumbing for the notebooks: it starts and stops RabbitMQ nodes
(:mod:`~mpsoa_lab.plumbing.node`, :mod:`~mpsoa_lab.running.lab`), holds the design's topology,
router and app factory (:mod:`~mpsoa_lab.design.topology`, :mod:`~mpsoa_lab.design.routing`,
:mod:`~mpsoa_lab.design.apps`), the 2014 originals (:mod:`~mpsoa_lab.legacy.design2014`) and the
services (:mod:`mpsoa_lab.design.services`). Its layers, bottom to top: ``plumbing``,
``observe``, ``design``, ``running``, ``legacy``, then ``experiments`` and ``bench``; a module
imports only from its own layer and those below (the contract is in ``pyproject.toml``).
"""

from __future__ import annotations

from .design.apps import celery_apps_factory
from .design.naming import KINDS, SERVICES, parse_task_name
from .plumbing.errors import (
    BrokerNotConfigured,
    BrokerUnreachable,
    ClusterSizeError,
    ComponentStartError,
    LabError,
    LabInUse,
    MalformedTaskName,
    ManagementAPIUnavailable,
    NeedsLabNode,
    NodeNameInUse,
    NodeStartError,
    PortsExhausted,
    RabbitMQNotInstalled,
    RoutingError,
    SettingsError,
    UnknownService,
    UnsupportedRabbitMQ,
)
from .plumbing.versions import versions
from .running.lab import Broker, Lab, up

__version__ = "0.1.0"


def flower(lab: Lab, *, quiet: bool = False) -> dict:
    """Flower on each of ``lab``'s two brokers, their addresses printed; stopped with the lab
    (or :func:`mpsoa_lab.running.flower.stop_flower`). Workers started with ``watchable=True``
    send task events only inside :func:`mpsoa_lab.running.flower.watching`."""
    from .running.flower import flowers

    return flowers(lab, quiet=quiet)


__all__ = [
    "celery_apps_factory",
    "up",
    "flower",
    "Lab",
    "Broker",
    "versions",
    "parse_task_name",
    "SERVICES",
    "KINDS",
    "LabError",
    "RabbitMQNotInstalled",
    "BrokerUnreachable",
    "BrokerNotConfigured",
    "NodeStartError",
    "ManagementAPIUnavailable",
    "RoutingError",
    "MalformedTaskName",
    "UnknownService",
    "LabInUse",
    "NeedsLabNode",
    "UnsupportedRabbitMQ",
    "ComponentStartError",
    "SettingsError",
    "PortsExhausted",
    "ClusterSizeError",
    "NodeNameInUse",
]

from .running.notebook import register as _register_magics  # noqa: E402

_register_magics()  # %%needs_lab_nodes, in IPython only
