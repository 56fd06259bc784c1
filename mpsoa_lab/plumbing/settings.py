"""The lab's settings, in one place: safe local defaults, each overridable from the environment.

==============================  ===========================================================
Environment variable            Meaning
==============================  ===========================================================
``MPSOA_SYNC_BROKER_URL``       AMQP URL of a sync broker the lab did not start (use with
                                ``MPSOA_ASYNC_BROKER_URL``); the lab then starts no node.
``MPSOA_ASYNC_BROKER_URL``      AMQP URL of the async broker the lab did not start.
``MPSOA_SYNC_MANAGEMENT_URL``   Management HTTP API of the sync broker (default: same host,
                                port 15672, same credentials).
``MPSOA_ASYNC_MANAGEMENT_URL``  Management HTTP API of the async broker.
``MPSOA_LAB_HOME``              Where the lab keeps its state file, node data and logs
                                (default ``~/.cache/mpsoa-lab``).
``MPSOA_RABBITMQ_SERVER``       Path of the ``rabbitmq-server`` script to use.
``MPSOA_START_TIMEOUT``         Seconds a node may take to accept AMQP (default 90).
``MPSOA_CONNECT_TIMEOUT``       Seconds to wait for a broker given by URL (default 5).
``MPSOA_LAB_GRACE``             Seconds the lab outlives its last user (default 5).
``MPSOA_SPACE``                 The lab space (vhost and service storage) a process uses:
                                ``default`` (vhost ``/``, what a terminal uses), or a name
                                of its own. ``mpsoa_lab.up()`` gives each process that calls
                                it a space of its own; workers inherit their starter's.
==============================  ===========================================================
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .errors import SettingsError

__all__ = [
    "env_float",
    "Settings",
    "load",
    "redact_url",
    "strip_credentials",
    "management_url_for",
    "with_vhost",
    "DEFAULT_SPACE",
    "use_space",
]

#: The broker roles of the design: one cluster for blocking calls, one for fire and forget.
ROLES = ("sync", "async")

#: The space of a process that did not ask for one of its own: vhost ``/``, storage in the home.
DEFAULT_SPACE = "default"

_SPACE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")

#: The space :func:`mpsoa_lab.up` chose for this process (``MPSOA_SPACE`` overrides it).
_process_space: str | None = None


def use_space(name: str | None) -> None:
    """Make ``name`` this process's space (what :func:`mpsoa_lab.up` does for each kernel)."""
    global _process_space
    _process_space = name


def with_vhost(url: str, vhost: str) -> str:
    """``url`` pointed at ``vhost`` (``/`` is written ``//``, as kombu expects)."""
    from urllib.parse import quote

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + (quote(vhost, safe="") if vhost != "/" else "/")))


def env_float(
    env: Mapping[str, str],
    name: str,
    default: float,
    unit: str = "seconds",
    *,
    least: float | None = None,
    positive: bool = False,
) -> float:
    """``env[name]`` as a finite number, ``default`` when unset; a clear SettingsError when it is
    not one, or is below ``least``, or is not above 0 with ``positive``."""
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        problem = "is not a number of " + unit
    elif positive and value <= 0:
        problem = f"must be more than 0 {unit}"
    elif least is not None and value < least:
        problem = f"must be at least {least:g} {unit}"
    else:
        return value
    raise SettingsError(
        f"{name}={raw!r} {problem}; set it to a number such as {default:g}, or unset it for the "
        "default"
    )


def _checked_home(raw: str) -> Path:
    """The lab home: a folder, or a path where one can be made (checked when the lab starts)."""
    home = Path(raw).expanduser().resolve()
    for path in (home, *home.parents):
        if path.exists():
            if not path.is_dir():
                raise SettingsError(
                    f"MPSOA_LAB_HOME={raw!r}: {path} is a file, not a folder; point "
                    "MPSOA_LAB_HOME at a folder (it is made if missing), or unset it for "
                    "~/.cache/mpsoa-lab"
                )
            break
    return home


def _checked_space(raw: str) -> str:
    """A space name: its vhost on each node and a folder under the home."""
    if not _SPACE_NAME.fullmatch(raw):
        raise SettingsError(
            f"MPSOA_SPACE={raw!r} is not a space name: use letters, digits, '_', '-' and '.' "
            "(at most 100, not starting with '.' or '-'), e.g. 'default' or 'nb-1'"
        )
    return raw


def redact_url(url: str) -> str:
    """Return ``url`` with its password replaced by ``***``, for error messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def strip_credentials(url: str) -> str:
    """Return ``url`` without user and password: what to type in a browser."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=host))


def management_url_for(amqp_url: str, port: int = 15672) -> str:
    """The management API URL that goes with an AMQP URL: same host and credentials."""
    parts = urlsplit(amqp_url)
    user = parts.username or "guest"
    password = parts.password or "guest"
    return f"http://{user}:{password}@{parts.hostname or 'localhost'}:{port}/"


@dataclass(frozen=True)
class Settings:
    """Everything the lab reads from its environment, resolved once."""

    home: Path
    sync_broker_url: str | None = None
    async_broker_url: str | None = None
    sync_management_url: str | None = None
    async_management_url: str | None = None
    rabbitmq_server: str | None = None
    start_timeout: float = 90.0
    connect_timeout: float = 5.0
    grace: float = 5.0
    space: str = DEFAULT_SPACE
    env: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def external(self) -> bool:
        """True when brokers are given by URL and the lab must not start its own."""
        return bool(self.sync_broker_url or self.async_broker_url)

    @property
    def space_home(self) -> Path:
        """Where this space keeps its files: the lab home itself for the default space."""
        if self.space == DEFAULT_SPACE:
            return self.home
        return self.home / "spaces" / self.space

    @property
    def vhost(self) -> str:
        """The vhost of this space on the lab's nodes."""
        return "/" if self.space == DEFAULT_SPACE else self.space

    @property
    def data_dir(self) -> Path:
        """Where the services keep their SQLite storage."""
        return self.space_home / "data"

    def broker_url(self, role: str) -> str | None:
        return {"sync": self.sync_broker_url, "async": self.async_broker_url}[role]

    def management_url(self, role: str) -> str | None:
        explicit = {"sync": self.sync_management_url, "async": self.async_management_url}[role]
        if explicit:
            return explicit
        url = self.broker_url(role)
        return management_url_for(url) if url else None


def load(env: dict[str, str] | None = None) -> Settings:
    """Read the settings from ``env`` (default: ``os.environ``)."""
    from_process = env is None
    env = dict(os.environ if env is None else env)
    sync_url = env.get("MPSOA_SYNC_BROKER_URL") or None
    async_url = env.get("MPSOA_ASYNC_BROKER_URL") or None
    if bool(sync_url) != bool(async_url):
        given, missing = (
            ("MPSOA_SYNC_BROKER_URL", "MPSOA_ASYNC_BROKER_URL")
            if sync_url
            else ("MPSOA_ASYNC_BROKER_URL", "MPSOA_SYNC_BROKER_URL")
        )
        raise SettingsError(
            f"{given} is set but {missing} is not: the design has two brokers. Set both "
            f"(they may be the same URL), or neither to let the lab start its own nodes."
        )
    home = env.get("MPSOA_LAB_HOME") or os.path.join(
        env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "mpsoa-lab"
    )
    return Settings(
        home=_checked_home(home),
        sync_broker_url=sync_url,
        async_broker_url=async_url,
        sync_management_url=env.get("MPSOA_SYNC_MANAGEMENT_URL") or None,
        async_management_url=env.get("MPSOA_ASYNC_MANAGEMENT_URL") or None,
        rabbitmq_server=env.get("MPSOA_RABBITMQ_SERVER") or None,
        start_timeout=env_float(env, "MPSOA_START_TIMEOUT", 90.0, positive=True),
        connect_timeout=env_float(env, "MPSOA_CONNECT_TIMEOUT", 5.0, positive=True),
        grace=env_float(env, "MPSOA_LAB_GRACE", 5.0, least=0),
        space=_checked_space(
            env.get("MPSOA_SPACE") or (_process_space if from_process else None) or DEFAULT_SPACE
        ),
        env=env,
    )
