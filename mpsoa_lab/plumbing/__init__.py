"""Layer 1, the plumbing: settings, ports, processes and RabbitMQ nodes, the management API client.

Nothing here knows the design. Every other layer may import from it; it imports from none.
"""
