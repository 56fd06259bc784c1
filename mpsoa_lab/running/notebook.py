"""Notebook helpers: sections that need nodes the lab runs, skipped in one clear line elsewhere.

``import mpsoa_lab`` in IPython registers the cell magic ``%%needs_lab_nodes``. A cell that
restarts, stops, kills or reconfigures a broker node starts with it and a short label of its
section::

    %%needs_lab_nodes (a) broker restart
    lab.restart_node("sync")
    ...

On the lab's own nodes the cell runs as written. With brokers given by URL (the docker compose
route, or a reviewer's own brokers) the lab has no node to act on: the cell is not run, and the
first cell of each section prints one line saying so; every other cell of the notebook runs.

``%%needs_hosts`` does the same for a cell that also needs hosts of their own for a cluster's
nodes (network namespaces: root and ``ip netns``, :mod:`~mpsoa_lab.plumbing.netns`): skipped,
with one line saying why, where the lab cannot make them.
"""

from __future__ import annotations

from typing import Any

from ..plumbing import settings as settings_mod

__all__ = ["needs_lab_nodes", "needs_hosts", "register", "skip_message"]

_announced: set[str] = set()


def skip_message(label: str) -> str:
    return (
        f"Skipped {label}: it restarts, stops, kills or reconfigures a broker node, and the "
        "brokers here are given by URL (MPSOA_SYNC_BROKER_URL, MPSOA_ASYNC_BROKER_URL), not "
        "run by the lab. Unset both to run this section on the lab's own nodes."
    )


def needs_lab_nodes(line: str, cell: str) -> Any:
    """The cell magic: run ``cell`` on the lab's own nodes, skip it (saying so once per
    section) with brokers given by URL."""
    from IPython import get_ipython

    label = line.strip() or "this section"
    if settings_mod.load().external:
        if label not in _announced:
            _announced.add(label)
            print(skip_message(label))
        return None
    result = get_ipython().run_cell(cell)
    result.raise_error()  # a failing cell fails here too, so nbval sees it
    return None


def needs_hosts(line: str, cell: str) -> Any:
    """The cell magic ``%%needs_hosts``: like ``%%needs_lab_nodes``, and skipped too (saying
    why, once per section) where the lab cannot make network namespaces."""
    from ..plumbing.netns import unavailable

    label = line.strip() or "this section"
    reason = None if settings_mod.load().external else unavailable()
    if reason is not None:
        if label not in _announced:
            _announced.add(label)
            print(f"Skipped {label}: it splits a cluster's network, and {reason}.")
        return None
    return needs_lab_nodes(line, cell)


def register(ipython: Any | None = None) -> None:
    """Register ``%%needs_lab_nodes`` and ``%%needs_hosts`` in the running IPython (done by
    ``import mpsoa_lab``)."""
    if ipython is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return
        ipython = get_ipython()
    if ipython is not None:
        ipython.register_magic_function(needs_lab_nodes, magic_kind="cell")
        ipython.register_magic_function(needs_hosts, magic_kind="cell")


def load_ipython_extension(ipython: Any) -> None:
    register(ipython)
