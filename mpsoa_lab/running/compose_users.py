"""The design's users for docker-compose.yml's brokers, with passwords made fresh each time
(``python -m mpsoa_lab definitions``; notebook 13 works the permissions out).

:func:`write` makes a folder (mode 0700) with three files:

- ``definitions.json``: the users as RabbitMQ definitions (:func:`mpsoa_lab.design.access.definitions`,
  passwords hashed), for vhost ``/``: the design's four (edge, mplogin, mpwallet, mpledger) and
  an administrator, ``mpsoa``, for the lab and the management UI. docker-compose.secured.yml has
  each broker load it at boot (``load_definitions``); a node that loads definitions at boot
  creates no default user and no default vhost, so the file holds vhost ``/`` and the
  administrator too. Mode 0644: the broker in its container reads it as its own user; it holds
  hashes, no password.
- ``compose.env`` (0600): the administrator's password, for ``docker compose --env-file``.
- ``host.env`` (0600): the broker and management URLs as the administrator, for a terminal on
  this machine (``set -a; . .secrets/host.env; set +a``), and each design user's password.

Nothing here prints a password.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..design.access import ROLES, definitions
from ..plumbing.definitions_node import DefinitionsNode
from .lab import Lab

__all__ = [
    "ADMIN",
    "DEFAULT_FOLDER",
    "HOST_PORTS",
    "Written",
    "write",
    "admin_password",
    "booted_with",
]

#: The administrator's name, as in docker-compose.yml (where its password is mpsoa).
ADMIN = "mpsoa"
DEFAULT_FOLDER = Path(".secrets")
#: Ports docker-compose.yml publishes on 127.0.0.1, per broker: (AMQP, management).
HOST_PORTS = {"sync": (5673, 15673), "async": (5674, 15674)}


@dataclass(frozen=True)
class Written:
    folder: Path
    definitions: Path
    compose_env: Path
    host_env: Path
    users: tuple[str, ...]  # every user in the definitions, the administrator last


def _password() -> str:
    return secrets.token_urlsafe(24)  # URL-safe: it goes into broker URLs as it is


def _write(path: Path, text: str, mode: int) -> None:
    path.unlink(missing_ok=True)  # a fresh file takes ``mode``; an old one may be wider
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(path, mode)  # whatever the umask


def write(folder: Path = DEFAULT_FOLDER) -> Written:
    """Write the three files into ``folder`` (made, or made private), each password new."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    passwords = {role: _password() for role in ROLES}
    admin = _password()
    defs = definitions("/", passwords, admin=(ADMIN, admin))
    paths = Written(
        folder,
        folder / "definitions.json",
        folder / "compose.env",
        folder / "host.env",
        tuple(u["name"] for u in defs["users"]),
    )
    _write(paths.definitions, json.dumps(defs, indent=2) + "\n", 0o644)
    _write(paths.compose_env, f"MPSOA_ADMIN_PASSWORD={admin}\n", 0o600)
    lines = [
        "# The lab on docker-compose.yml's brokers as the administrator, and the design's users."
    ]
    for role, (amqp, management) in HOST_PORTS.items():
        upper = role.upper()
        lines.append(f"MPSOA_{upper}_BROKER_URL=amqp://{ADMIN}:{admin}@localhost:{amqp}//")
        lines.append(f"MPSOA_{upper}_MANAGEMENT_URL=http://{ADMIN}:{admin}@localhost:{management}/")
    lines += [f"MPSOA_{role.upper()}_PASSWORD={password}" for role, password in passwords.items()]
    _write(paths.host_env, "\n".join(lines) + "\n", 0o600)
    return paths


def admin_password(written: Written) -> str:
    """The administrator's password, from ``compose.env`` (never printed)."""
    line = written.compose_env.read_text().strip()
    return line.split("=", 1)[1]


@contextlib.contextmanager
def booted_with(lab: Lab, written: Written) -> Iterator[DefinitionsNode]:
    """A node of this space's own that loads ``written``'s definitions at boot, as
    docker-compose.secured.yml's brokers do; owned by this process (the reaper stops it if the
    process dies), stopped and its data deleted on exit."""
    node = DefinitionsNode(
        f"{lab.space}-defs",
        Path(lab.space_home) / "definitions-node",
        definitions=written.definitions.resolve(),
        user=ADMIN,
        password=admin_password(written),
        **lab.beside("defs"),
    )
    with lab.own_node(node):
        yield node
