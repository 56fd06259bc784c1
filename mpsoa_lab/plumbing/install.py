"""Where the RabbitMQ server and Erlang's epmd are on this machine, and what to do if they are not."""

from __future__ import annotations

import glob
import os
import shutil
import sys
from pathlib import Path

from .errors import RabbitMQNotInstalled

__all__ = ["find_rabbitmq_server", "find_epmd", "install_hint"]

_SEARCH_DIRS = (
    "/usr/lib/rabbitmq/bin",
    "/usr/local/sbin",
    "/usr/sbin",
    "/opt/homebrew/sbin",
    "/usr/local/opt/rabbitmq/sbin",
    "/opt/homebrew/opt/rabbitmq/sbin",
)


def install_hint() -> str:
    """What to run to get a RabbitMQ server, on this OS, and the route that needs none."""
    if sys.platform == "darwin":
        how = "brew install rabbitmq"
    elif shutil.which("apt-get"):
        how = "sudo apt-get update && sudo apt-get install -y rabbitmq-server"
    elif shutil.which("dnf"):
        how = "sudo dnf install -y rabbitmq-server"
    else:
        how = "install RabbitMQ from your OS packages (https://www.rabbitmq.com/download.html)"
    return (
        f"Install it with:  {how}\n"
        "or point the lab at brokers it does not start, e.g. the ones in docker-compose.yml:\n"
        "  docker compose up -d\n"
        "  export MPSOA_SYNC_BROKER_URL=amqp://mpsoa:mpsoa@localhost:5673//\n"
        "  export MPSOA_ASYNC_BROKER_URL=amqp://mpsoa:mpsoa@localhost:5674//\n"
        "  export MPSOA_SYNC_MANAGEMENT_URL=http://mpsoa:mpsoa@localhost:15673/\n"
        "  export MPSOA_ASYNC_MANAGEMENT_URL=http://mpsoa:mpsoa@localhost:15674/\n"
        "or set MPSOA_RABBITMQ_SERVER to the path of an installed rabbitmq-server script."
    )


def _is_root_wrapper(path: str) -> bool:
    """Debian's /usr/sbin/rabbitmq-server switches to the rabbitmq user; we want the real one."""
    try:
        return "rabbitmq-script-wrapper" in Path(path).read_text(errors="replace")[
            :4000
        ] or "su rabbitmq" in Path(path).read_text(errors="replace")
    except OSError:
        return False


def find_rabbitmq_server(explicit: str | None = None) -> str:
    """The ``rabbitmq-server`` script to run nodes with, or :class:`RabbitMQNotInstalled`."""
    if explicit:
        if os.access(explicit, os.X_OK):
            return explicit
        raise RabbitMQNotInstalled(
            f"MPSOA_RABBITMQ_SERVER={explicit!r} is not an executable file.\n" + install_hint()
        )
    search = os.pathsep.join([*_SEARCH_DIRS, os.environ.get("PATH", "")])
    found = shutil.which("rabbitmq-server", path=search)
    if found and _is_root_wrapper(found):
        real = "/usr/lib/rabbitmq/bin/rabbitmq-server"
        found = real if os.access(real, os.X_OK) else None
    if not found:
        raise RabbitMQNotInstalled(
            "rabbitmq-server is not installed on this machine (looked in PATH and "
            f"{', '.join(_SEARCH_DIRS)}).\n" + install_hint()
        )
    return found


def find_epmd(server: str | None = None) -> str:
    """The Erlang port mapper daemon that comes with the Erlang RabbitMQ runs on."""
    found = shutil.which("epmd")
    if not found:
        patterns = [
            "/usr/lib/erlang/erts-*/bin/epmd",
            "/usr/local/lib/erlang/erts-*/bin/epmd",
            "/opt/homebrew/lib/erlang/erts-*/bin/epmd",
            "/opt/homebrew/opt/erlang/lib/erlang/erts-*/bin/epmd",
        ]
        hits = sorted(h for p in patterns for h in glob.glob(p))
        found = hits[-1] if hits else None
    if not found:
        raise RabbitMQNotInstalled(
            "epmd (part of Erlang, which RabbitMQ needs) was not found.\n" + install_hint()
        )
    return found
