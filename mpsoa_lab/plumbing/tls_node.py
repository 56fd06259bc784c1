"""A RabbitMQ node that speaks AMQP over TLS only, with peer verification.

Its one AMQP listener is AMQPS on 127.0.0.1 (``listeners.tcp = none``): a client must present a
certificate signed by the lab's authority (``verify_peer``, ``fail_if_no_peer_cert``), and the
node presents its own, with 127.0.0.1 and ``localhost`` among its names. Its management API
stays plain HTTP, on 127.0.0.1 only: it is the lab's way in (the readiness probe, vhosts,
users), never the clients'. The readiness probe itself speaks TLS, with a client certificate of
its own.

The certificates live in ``tls_dir`` (made by :mod:`~mpsoa_lab.plumbing.keys`), as
:data:`FILES` names them; the node reads them when it starts.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from .node import GUEST, RabbitMQNode

__all__ = ["TLSNode", "FILES", "client_ssl"]

#: What the node's ``tls_dir`` holds: the authority's certificate, the node's key and
#: certificate, and the readiness probe's client key and certificate.
FILES = {
    "ca": "ca.pem",
    "cert": "server.pem",
    "key": "server.key",
    "probe_cert": "probe.pem",
    "probe_key": "probe.key",
}


def client_ssl(ca: Path, cert: Path | None = None, key: Path | None = None) -> dict[str, Any]:
    """kombu's ``ssl`` option for a client of a TLS node: verify the node against ``ca``, and
    present ``cert`` (signed by it) if given."""
    options: dict[str, Any] = {"ca_certs": str(ca), "cert_reqs": ssl.CERT_REQUIRED}
    if cert is not None:
        options.update(certfile=str(cert), keyfile=str(key))
    return options


class TLSNode(RabbitMQNode):
    """A lab node with one AMQP listener, AMQPS, that requires a client certificate."""

    TYPE = "rabbitmq_tls"
    FIELDS = (*RabbitMQNode.FIELDS, "tls_dir")

    def __init__(self, name: str, base_dir: Path, *, tls_dir: Path, **node: Any):
        super().__init__(name, base_dir, **node)
        self.tls_dir = Path(tls_dir)

    def _restored(self) -> None:
        super()._restored()
        self.tls_dir = Path(self.tls_dir)

    def file(self, which: str) -> Path:
        return self.tls_dir / FILES[which]

    @property
    def url(self) -> str:
        return f"amqps://{GUEST[0]}:{GUEST[1]}@{self.address}:{self.amqp_port}//"

    def probe_ssl(self) -> dict[str, Any]:
        return client_ssl(self.file("ca"), self.file("probe_cert"), self.file("probe_key"))

    def write_config(self) -> None:
        super().write_config()
        conf = self.base_dir / "rabbitmq.conf"
        lines = [
            line for line in conf.read_text().splitlines() if not line.startswith("listeners.tcp.")
        ]
        lines += [
            "listeners.tcp = none",
            f"listeners.ssl.1 = {self.address}:{self.amqp_port}",
            f"ssl_options.cacertfile = {self.file('ca')}",
            f"ssl_options.certfile = {self.file('cert')}",
            f"ssl_options.keyfile = {self.file('key')}",
            "ssl_options.verify = verify_peer",
            "ssl_options.fail_if_no_peer_cert = true",
        ]
        conf.write_text("\n".join(lines) + "\n")

    def probe(self) -> None:
        """Ready: the node accepts an AMQPS connection with the probe's certificate, and its
        management API answers."""
        import requests
        from kombu import Connection

        with Connection(self.url, ssl=self.probe_ssl(), connect_timeout=2) as conn:
            conn.connect()
        with requests.Session() as http:
            http.trust_env = False
            resp = http.get(
                f"http://{self.address}:{self.management_port}/api/overview", auth=GUEST, timeout=1
            )
            resp.raise_for_status()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"<TLSNode {self.nodename} amqps={self.amqp_port} {state}>"
