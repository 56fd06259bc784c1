"""Kernels on the lab's ports: the kernels nbval and nbclient start for the lab's notebooks bind
ports reserved on the lab's allocator, below the ephemeral range, instead of ports jupyter_client
picked from that range a moment before the kernel binds them."""

from __future__ import annotations

import json
import os

import nbformat
import nbval.kernel
from nbclient import NotebookClient

from mpsoa_lab.plumbing.kernels import KERNEL_PORTS, AsyncLabKernelManager, LabKernelManager
from mpsoa_lab.plumbing.ports import SERVICE_PORTS, PortAllocator


def _in_lab_range(ports) -> bool:
    return all(SERVICE_PORTS[0] <= port < SERVICE_PORTS[1] for port in ports)


def test_a_kernel_binds_five_ports_the_allocator_holds_for_its_manager():
    km = LabKernelManager(kernel_name="python3")
    ports = [getattr(km, name) for name in KERNEL_PORTS]
    assert len(set(ports)) == 5 and _in_lab_range(ports), ports
    held = PortAllocator().reserved()
    assert {held.get(port) for port in ports} == {os.getpid()}
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)  # the kernel bound all five and answers on them
        info = km.get_connection_info()
        assert [info[name] for name in KERNEL_PORTS] == ports
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_nbval_starts_its_kernels_with_the_lab_manager():
    # conftest.py puts it in nbval's module before any notebook is collected
    assert nbval.kernel.KernelManager is LabKernelManager


def test_a_notebook_run_by_nbclient_reads_its_own_ports_in_the_lab_range():
    code = "from ipykernel.connect import get_connection_info\nprint(get_connection_info())"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    NotebookClient(
        nb, timeout=60, kernel_name="python3", kernel_manager_class=AsyncLabKernelManager
    ).execute()
    seen = json.loads(nb.cells[0].outputs[0]["text"])  # the kernel's own connection file
    assert _in_lab_range(seen[name] for name in KERNEL_PORTS), seen
