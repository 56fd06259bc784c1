"""Layer 1, the plumbing: settings, ports, processes and RabbitMQ nodes, the management API client.

Nothing here knows the design. Every other layer may import from it; it imports from none.
"""

from __future__ import annotations

from .exports import lazy_exports

#: The layer's public names and the module of each: ``from mpsoa_lab.plumbing import X`` imports
#: that module on first use only (a worker that needs one module does not load the others).
_EXPORTS = {
    "LabError": "errors",
    "RabbitMQNotInstalled": "errors",
    "BrokerUnreachable": "errors",
    "BrokerNotConfigured": "errors",
    "ComponentStartError": "errors",
    "NodeStartError": "errors",
    "NeedsLabNode": "errors",
    "SettingsError": "errors",
    "PortsExhausted": "errors",
    "ManagementAPIUnavailable": "errors",
    "EntityNotFound": "errors",
    "RoutingError": "errors",
    "MalformedTaskName": "errors",
    "UnknownService": "errors",
    "HAProxyNotInstalled": "errors",
    "HAProxyCommandError": "errors",
    "Settings": "settings",
    "env_float": "settings",
    "redact_url": "settings",
    "strip_credentials": "settings",
    "management_url_for": "settings",
    "with_vhost": "settings",
    "DEFAULT_SPACE": "settings",
    "use_space": "settings",
    "log_excerpt": "logs",
    "ERROR_LINE": "logs",
    "PortAllocator": "ports",
    "is_eaddrinuse": "ports",
    "DIST_PORTS": "ports",
    "SERVICE_PORTS": "ports",
    "CLI_DIST_PORT_OFFSET": "ports",
    "CLI_DIST_PORT_SPAN": "ports",
    "default_registry": "ports",
    "ManagedProcess": "processes",
    "MANAGED_MARK": "processes",
    "clean_env": "processes",
    "managed_processes": "processes",
    "process_kind": "processes",
    "spawn": "processes",
    "find_rabbitmq_server": "install",
    "find_epmd": "install",
    "install_hint": "install",
    "Component": "component",
    "Program": "component",
    "NotReady": "component",
    "TYPES": "component",
    "component_from_dict": "component",
    "stop_components": "component",
    "http_probe": "component",
    "RabbitMQNode": "node",
    "Epmd": "node",
    "free_port": "node",
    "ensure_cookie": "node",
    "StateFile": "state",
    "running_lab_urls": "state",
    "Management": "management",
    "is_builtin": "management",
    "wait_until": "util",
    "ready_messages": "util",
    "rabbitmq_server_version": "versions",
    "HAProxy": "haproxy",
    "BalancerOptions": "haproxy",
    "Server": "haproxy",
    "BALANCE_ALGORITHMS": "haproxy",
    "find_haproxy": "haproxy",
    "haproxy_config": "haproxy",
    "check_config": "haproxy",
    "HAProxyRuntime": "haproxy_runtime",
    "ServerState": "haproxy_runtime",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
