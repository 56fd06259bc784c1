"""Jupyter kernels whose ports come from the lab's allocator, for the notebooks the lab and its
tests run (nbval, ``make review``).

jupyter_client picks a kernel's five ZMQ ports by binding port 0 and closing the socket at
once; the kernel binds them a moment later. Port 0 is served from Linux's ephemeral range, where
every outgoing connection takes its local port too, and a lab's workers, nodes and clients open
connections all the time: a port picked for a kernel can be taken in between, and the kernel dies
before it replies (``ZMQError: Address already in use`` on its stderr, which nbval sends to
``/dev/null``; nbval then reports every cell of the notebook as an error at set-up). Two kernels
started at the same moment can also be handed the same port. A :class:`LabKernelManager` takes
the five ports from :class:`~mpsoa_lab.plumbing.ports.PortAllocator` instead: below the
ephemeral range, reserved machine-wide, held while the process that manages the kernel runs.
"""

from __future__ import annotations

import os
from typing import Any

from jupyter_client import AsyncKernelManager, KernelManager

from .ports import SERVICE_PORTS, PortAllocator

__all__ = ["LabKernelManager", "AsyncLabKernelManager", "KERNEL_PORTS"]

#: The connection attributes of a kernel manager that hold the kernel's ports.
KERNEL_PORTS = ("shell_port", "iopub_port", "stdin_port", "hb_port", "control_port")


class _LabPorts:
    """Reserves the kernel's ports when the manager is made (before it writes the connection
    file), so jupyter_client keeps them instead of picking its own."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.transport != "tcp":  # type: ignore[attr-defined]
            return
        allocator = PortAllocator()
        ports = allocator.reserve(len(KERNEL_PORTS), low=SERVICE_PORTS[0], high=SERVICE_PORTS[1])
        # The kernel is this process's child: its ports live as long as this process does (a
        # restarted kernel binds the same ones), and are dropped by the next call after it ends.
        allocator.assign(ports, os.getpid())
        for name, port in zip(KERNEL_PORTS, ports):
            setattr(self, name, port)
        self.cache_ports = False  # otherwise the provisioner picks ephemeral ones over these


class LabKernelManager(_LabPorts, KernelManager):
    """A blocking kernel manager (nbval's) on ports from the lab's allocator."""


class AsyncLabKernelManager(_LabPorts, AsyncKernelManager):
    """An asyncio kernel manager (nbclient's ``kernel_manager_class``) on ports from the lab's
    allocator."""
