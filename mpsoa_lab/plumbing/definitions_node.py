"""A RabbitMQ node that loads definitions at boot (``load_definitions``), as
docker-compose.secured.yml's brokers do.

A node that loads definitions at boot creates neither its default user (``guest``) nor its
default vhost: whoever must manage it has to be in the definitions. So the readiness probe
logs in as a user the caller names (its password is kept in this process only, never in the
lab's state file), not as guest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .node import RabbitMQNode

__all__ = ["DefinitionsNode"]


class DefinitionsNode(RabbitMQNode):
    """A lab node whose users, vhosts and permissions come from ``definitions`` at boot."""

    TYPE = "rabbitmq_definitions"
    FIELDS = (*RabbitMQNode.FIELDS, "definitions", "user")

    def __init__(
        self,
        name: str,
        base_dir: Path,
        *,
        definitions: Path,
        user: str,
        password: str | None = None,
        **node: Any,
    ):
        super().__init__(name, base_dir, **node)
        self.definitions, self.user, self._password = Path(definitions), user, password

    def _restored(self) -> None:
        super()._restored()
        self.definitions, self._password = Path(self.definitions), None

    def write_config(self) -> None:
        super().write_config()
        conf = self.base_dir / "rabbitmq.conf"
        conf.write_text(conf.read_text() + f"load_definitions = {self.definitions}\n")

    def url_as(self, user: str, password: str, vhost: str = "/") -> str:
        return (
            f"amqp://{user}:{password}@{self.address}:{self.amqp_port}/{vhost.replace('/', '%2F')}"
        )

    def probe(self) -> None:
        """Ready: ``user`` opens an AMQP connection to vhost ``/`` and reads the management API."""
        import requests
        from kombu import Connection

        if self._password is None:
            raise RuntimeError(f"node {self.name}: no password for {self.user} in this process")
        with Connection(self.url_as(self.user, self._password), connect_timeout=1) as conn:
            conn.connect()
        with requests.Session() as http:
            http.trust_env = False
            resp = http.get(
                f"http://{self.address}:{self.management_port}/api/overview",
                auth=(self.user, self._password),
                timeout=1,
            )
            resp.raise_for_status()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"<DefinitionsNode {self.nodename} amqp={self.amqp_port} {state}>"
