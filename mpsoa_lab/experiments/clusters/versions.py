"""The RabbitMQ version a cluster runs, and what it says of classic queue mirroring.

:func:`server_version` reads the version from the management API; :func:`mirroring_note` says
what mirroring is on it (supported, deprecated since 3.9, removed in 4.0), and
:func:`check_mirroring` refuses it with :class:`MirroringUnavailable` where it is gone.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...plumbing.cluster import Cluster
from ...plumbing.errors import LabError

__all__ = [
    "MirroringUnavailable",
    "server_version",
    "mirroring_note",
    "mirroring_available",
    "check_mirroring",
]


class MirroringUnavailable(LabError):
    """Classic queue mirroring asked for on a RabbitMQ that no longer has it (4.0 and later)."""


def server_version(cluster: Cluster) -> tuple[int, ...]:
    """The RabbitMQ version the cluster's management API reports, as numbers."""
    with cluster.management() as api:
        text = api.overview()["rabbitmq_version"]
    return tuple(int(p) for p in text.split("+")[0].split("-")[0].split(".") if p.isdigit())


def mirroring_note(version: Sequence[int]) -> str:
    """What classic queue mirroring is on RabbitMQ ``version``: supported, deprecated, gone."""
    shown = ".".join(map(str, version))
    if tuple(version) >= (4, 0):
        return (
            f"RabbitMQ {shown} has no classic queue mirroring: it was removed in 4.0 (ha-mode "
            "policies are ignored or refused). Use quorum queues (x-queue-type: quorum)."
        )
    if tuple(version) >= (3, 9):
        return (
            f"RabbitMQ {shown} still mirrors classic queues, but mirroring is deprecated since "
            "3.9 and removed in 4.0: use quorum queues for new work."
        )
    return f"RabbitMQ {shown} mirrors classic queues by policy (ha-mode)."


def mirroring_available(version: Sequence[int]) -> bool:
    """Whether RabbitMQ ``version`` mirrors classic queues (before 4.0)."""
    return tuple(version) < (4, 0)


def check_mirroring(version: Sequence[int]) -> str:
    """:func:`mirroring_note` if ``version`` mirrors classic queues, else
    :class:`MirroringUnavailable` with that note."""
    note = mirroring_note(version)
    if not mirroring_available(version):
        raise MirroringUnavailable(note)
    return note
