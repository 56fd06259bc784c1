"""The lab's exceptions: each one says what is wrong and how to fix it."""

from __future__ import annotations

__all__ = [
    "LabError",
    "RabbitMQNotInstalled",
    "BrokerUnreachable",
    "BrokerNotConfigured",
    "ComponentStartError",
    "NodeStartError",
    "NeedsLabNode",
    "LabInUse",
    "SettingsError",
    "PortsExhausted",
    "ManagementAPIUnavailable",
    "EntityNotFound",
    "RoutingError",
    "MalformedTaskName",
    "UnknownService",
    "HAProxyNotInstalled",
    "HAProxyCommandError",
    "ClusterSizeError",
    "NodeNameInUse",
    "UnsupportedRabbitMQ",
    "EventExchangeMissing",
]


class LabError(RuntimeError):
    """Base class of every error the lab raises on purpose."""


class RabbitMQNotInstalled(LabError):
    """``rabbitmq-server`` (or ``epmd``) cannot be found on this machine."""


class UnsupportedRabbitMQ(LabError):
    """A RabbitMQ server the lab cannot run with: older than it needs, or one that denies what
    the lab relies on (:data:`mpsoa_lab.plumbing.versions.SUPPORTED`)."""


class EventExchangeMissing(LabError):
    """A broker that does not publish its events (rabbitmq_event_exchange off or unreachable),
    asked what it created in one space."""


class BrokerUnreachable(LabError):
    """A broker URL did not accept an AMQP connection in time."""


class BrokerNotConfigured(LabError):
    """No broker URL is known: no lab is running and none is given in the environment."""


class ComponentStartError(LabError):
    """A process the lab started (a node, a worker, an app) exited or was not ready in time."""


class NodeStartError(ComponentStartError):
    """A RabbitMQ node the lab started exited or did not become ready in time."""


class NeedsLabNode(LabError):
    """The operation restarts, stops, kills or reconfigures a broker node, which only a node
    the lab runs allows: with brokers given by URL, the lab has no node to act on."""


class LabInUse(LabError):
    """A lab that other processes hold runs under this home, and this process asked for another
    kind of lab: nothing is stopped; the message says what runs and what to do."""


class SettingsError(LabError, ValueError):
    """A setting in the environment (``MPSOA_*``) has a value the lab cannot use."""


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


class PortsExhausted(LabError):
    """No free TCP port could be reserved in the range asked for."""


class HAProxyNotInstalled(LabError):
    """``haproxy`` (the REST alternative's load balancer) cannot be found on this machine."""


class HAProxyCommandError(LabError):
    """HAProxy's runtime API refused a command (its answer is in the message)."""


class ClusterSizeError(LabError, ValueError):
    """A RabbitMQ cluster of that many nodes cannot be started (or makes no sense) here."""


class NodeNameInUse(LabError):
    """A node name asked for is already registered by a running Erlang node (or given twice)."""
