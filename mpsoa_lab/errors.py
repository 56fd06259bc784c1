"""The lab's exceptions: each one says what is wrong and how to fix it."""
from __future__ import annotations

__all__ = [
    "LabError",
    "RabbitMQNotInstalled",
    "BrokerUnreachable",
    "BrokerNotConfigured",
    "NodeStartError",
    "ManagementAPIUnavailable",
    "EntityNotFound",
    "RoutingError",
    "MalformedTaskName",
    "UnknownService",
]


class LabError(RuntimeError):
    """Base class of every error the lab raises on purpose."""


class RabbitMQNotInstalled(LabError):
    """``rabbitmq-server`` (or ``epmd``) cannot be found on this machine."""


class BrokerUnreachable(LabError):
    """A broker URL did not accept an AMQP connection in time."""


class BrokerNotConfigured(LabError):
    """No broker URL is known: no lab is running and none is given in the environment."""


class NodeStartError(LabError):
    """A RabbitMQ node the lab started exited or did not become ready in time."""


class ManagementAPIUnavailable(LabError):
    """The broker's management HTTP API does not answer."""


class EntityNotFound(LabError, LookupError):
    """The exchange, queue or vhost asked for does not exist on the broker."""


class RoutingError(LabError, ValueError):
    """A platform task name cannot be routed to a service queue."""


class MalformedTaskName(RoutingError):
    """A task name with the platform prefix does not fit ``<service>.<sync|async>.<method>``."""


class UnknownService(RoutingError):
    """A well-formed platform task name names a service the platform does not have."""
