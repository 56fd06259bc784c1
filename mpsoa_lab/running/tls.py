"""A broker that speaks TLS only, for one space, on the lab's life cycle (notebook 13).

:func:`tls_broker` makes a certificate authority of the lab's own, a server certificate for
127.0.0.1, and client certificates, in a folder under the space's home; starts a
:class:`~mpsoa_lab.plumbing.tls_node.TLSNode` with them, on the lab's epmd, owned by this
process (the reaper stops it if the process dies); and on exit stops the node and deletes the
folder, keys included.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..plumbing.keys import Identity, key_folder, make_ca, make_identity
from ..plumbing.tls_node import TLSNode, client_ssl
from .lab import Lab

__all__ = ["TLSBroker", "tls_broker"]


@dataclass
class TLSBroker:
    node: TLSNode
    ca: Identity
    client: Identity  # a client certificate signed by the lab's authority
    folder: Path

    @property
    def url(self) -> str:
        """``amqps://`` to the node, as the lab's own user (loopback only)."""
        return self.node.url

    @property
    def plain_url(self) -> str:
        """The same node's port, as plain AMQP (which it does not speak)."""
        return self.node.url.replace("amqps://", "amqp://", 1)

    def ssl(
        self, identity: Identity | None = None, *, ca: Identity | None = None
    ) -> dict[str, Any]:
        """kombu's ``ssl`` option: verify the node against the lab's authority (or ``ca``) and
        present ``identity``'s certificate (the lab's client by default; pass ``False`` for none)."""
        who = self.client if identity is None else identity
        authority = (ca or self.ca).cert
        if who is False:
            return client_ssl(authority)
        return client_ssl(authority, who.cert, who.key)

    def issue(self, name: str, *, days: float = 1.0, other_ca: bool = False) -> Identity:
        """Another client certificate: signed by the lab's authority, or by one of its own
        (``other_ca``); ``days`` < 0 makes one that has expired."""
        issuer = make_ca(self.folder, f"{name}-ca") if other_ca else self.ca
        return make_identity(self.folder, name, issuer=issuer, days=days)


@contextlib.contextmanager
def tls_broker(lab: Lab, *, start_timeout: float | None = None) -> Iterator[TLSBroker]:
    """A TLS-only node of this space's own, with fresh keys; stopped and deleted on exit."""
    with key_folder(Path(lab.space_home), "tls") as folder:
        ca = make_ca(folder)
        make_identity(folder, "server", issuer=ca, hosts=("127.0.0.1", "localhost"))
        make_identity(folder, "probe", issuer=ca)
        client = make_identity(folder, "client", issuer=ca)
        node = TLSNode(
            f"{lab.space}-tls",
            Path(lab.space_home) / "tls-node",
            tls_dir=folder,
            **lab.beside("tls"),
        )
        with lab.own_node(node, start_timeout):
            yield TLSBroker(node, ca, client, folder)
