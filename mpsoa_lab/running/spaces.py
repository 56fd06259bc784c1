"""Spaces: what each process using the lab has to itself.

A *space* is one vhost on each of the lab's shared nodes and one folder for its services'
storage: notebooks open side by side never see each other's messages or rows. That is enough
for a notebook that only publishes, consumes and counts. A notebook that restarts, stops, kills
or floods its brokers would break every other notebook on the same nodes (their connections
refused, their publishers blocked by a memory alarm), so it asks for **nodes of its own**
(``mpsoa_lab.up(own_nodes=True)``): two more RabbitMQ nodes on the lab's epmd, used by that
space only, owned by its process and stopped by the reaper as soon as that process is gone.

The state file keeps, per space, its owner, and for a space with nodes of its own the nodes'
component keys and their brokers' URLs (``state["spaces"][name]["nodes"|"brokers"]``): every
process of that space (its notebook kernel, the workers it starts, an edge) resolves the same
brokers from it (:func:`space_brokers`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from ..plumbing.component import component_from_dict
from ..plumbing.node import RabbitMQNode
from ..plumbing.processes import ManagedProcess, process_started
from ..plumbing.settings import DEFAULT_SPACE, ROLES, Settings
from ..plumbing.state import space_brokers, space_nodes

__all__ = ["open_space", "open_own_nodes", "close_spaces", "space_brokers", "space_nodes"]


def open_space(settings: Settings, state: dict[str, Any]) -> None:
    """Create this process's space on the lab's nodes (its vhost on each, its folder)."""
    if settings.external or settings.space == DEFAULT_SPACE:
        return
    spaces = state.setdefault("spaces", {})
    if settings.space in spaces and (settings.home / "spaces" / settings.space).exists():
        return
    from ..plumbing.management import Management

    for broker in state["brokers"].values():
        with Management(broker["management_url"]) as api:
            api.create_vhost(settings.space)
    (settings.home / "spaces" / settings.space).mkdir(parents=True, exist_ok=True)
    spaces[settings.space] = {"owner": os.getpid(), "create_time": process_started(os.getpid())}


def open_own_nodes(settings: Settings, state: dict[str, Any]) -> bool:
    """Give this process's space two nodes of its own (one per role), started on the lab's epmd
    with its cookie, owned by this process; start again any of them that is down. True if the
    state changed. A space that already has its nodes running keeps them."""
    from ..plumbing.management import Management

    if settings.external or settings.space == DEFAULT_SPACE:
        return False
    space = state["spaces"][settings.space]
    nodes = {
        role: RabbitMQNode.from_dict(state["components"][key])
        for role, key in space.get("nodes", {}).items()
        if key in state.get("components", {})
    }
    if set(nodes) != set(ROLES):
        base = RabbitMQNode.from_dict(state["components"][state["nodes"]["sync"]])
        slug = "".join(c if c.isalnum() else "-" for c in settings.space)
        nodes = {
            role: RabbitMQNode(
                f"{settings.space}-{role}",
                settings.home / "spaces" / settings.space / "nodes" / role,
                epmd_port=base.epmd_port,
                erlang_home=base.erlang_home,
                nodename=f"mpsoa-{state['id']}-{slug}-{role}@localhost",
                server=settings.rabbitmq_server,
                owner=os.getpid(),
                mark=str(settings.home),
            )
            for role in ROLES
        }
    down = {role: node for role, node in nodes.items() if not node.is_running()}
    if not down and space.get("brokers"):
        return False
    try:
        for node in down.values():
            node.start(wait=False)
            state["components"][node.key] = node.to_dict()  # recorded before it is ready
        for node in down.values():
            node.wait_ready(settings.start_timeout)
            state["components"][node.key] = node.to_dict()  # its ports may have moved
        for node in nodes.values():
            with Management(node.management_url) as api:
                api.create_vhost(settings.space)
    except BaseException:
        for node in down.values():
            node.kill(keep_ports=False)
            state["components"].pop(node.key, None)
        raise
    space["nodes"] = {role: node.key for role, node in nodes.items()}
    space["brokers"] = {
        role: {"url": node.url, "management_url": node.management_url}
        for role, node in nodes.items()
    }
    return True


def close_spaces(home: Path, state: dict[str, Any], live: set[int]) -> bool:
    """Delete the spaces whose owner is gone (their vhosts, the broker users named after them,
    and their storage); True if any was.

    A space's own nodes are components owned by the same process: the reaper has stopped them
    already (:func:`mpsoa_lab.running.reaper`), and only their entries go here."""
    from ..plumbing.management import Management

    gone = [
        name
        for name, space in state.get("spaces", {}).items()
        if space["owner"] not in live
        and not ManagedProcess("space", space["owner"], space["create_time"]).is_running()
    ]
    closed = []
    for name in gone:
        try:  # a node that is down (a fault scenario) keeps the space until it is back
            for broker in state["brokers"].values():
                with Management(broker["management_url"], timeout=2.0) as api:
                    api.delete_vhost(name)
                    # users a notebook made for its space (notebook 13: "<vhost>.<role>"), left
                    # behind if its kernel died before deleting them
                    for user in api.users():
                        if user["name"].startswith(f"{name}."):
                            api.delete_user(user["name"])
        except Exception:  # noqa: BLE001 - tried again at the reaper's next look
            continue
        for key in state["spaces"][name].get("nodes", {}).values():
            data = state.get("components", {}).pop(key, None)
            if data is not None and component_from_dict(data).is_running():
                component_from_dict(data).kill(keep_ports=False)
        shutil.rmtree(home / "spaces" / name, ignore_errors=True)
        del state["spaces"][name]
        closed.append(name)
    return bool(closed)
