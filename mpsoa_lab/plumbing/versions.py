"""The versions that matter to what the lab measures, for a notebook's first cell, and the
RabbitMQ releases the lab runs on.

:data:`SUPPORTED` is the range the lab's own nodes may run: from 3.10 (Debian 12's package, what
the notebooks were written on), through 4.0 (Debian 13's; ``make test-rabbitmq4`` runs the suite
on it), up to but not including 5.0, a release the lab has not been written for. RabbitMQ 4.3
denies by default two things 4.0 still permits (RabbitMQ's list of deprecated features): queues
that are neither durable nor exclusive, and global ``basic.qos``. The lab declares neither
(kombu 5.7 makes Celery's remote-control and reply queues exclusive, the lab's mended
``rpc://`` for clusters an exclusive reply queue, and kombu asks a 4.x server for prefetch per
consumer), and every lab node denies both as 4.3 does
(:data:`mpsoa_lab.plumbing.node.DENIED_AS_IN_4_3`), so that a run on 4.0 holds on 4.3 too.
Releases after 4.0 have not been run here. :func:`check_supported` refuses any other with one
line saying why.
"""

from __future__ import annotations

import platform
import re
import sys

__all__ = [
    "versions",
    "rabbitmq_server_version",
    "SUPPORTED",
    "RUN_HERE",
    "parse_version",
    "supported_note",
    "check_supported",
    "installed_server_version",
]

#: [lowest, first refused): the RabbitMQ releases the lab starts nodes of.
SUPPORTED = ((3, 10), (5, 0))
#: The releases the whole suite was run on (make test; make test-rabbitmq4).
RUN_HERE = ("3.10.8", "4.0.5")


def parse_version(text: str) -> tuple[int, ...]:
    """``"4.0.5"`` (or ``"3.13.7+rc.1"``) as numbers: ``(4, 0, 5)``."""
    return tuple(int(p) for p in text.split("+")[0].split("-")[0].split(".") if p.isdigit())


def supported_note() -> str:
    """One line: which RabbitMQ releases the lab runs on, and which it was run on."""
    (lo_major, lo_minor), (hi_major, hi_minor) = SUPPORTED
    return (
        f"mpsoa-lab runs its own nodes on RabbitMQ {lo_major}.{lo_minor} up to (not including) "
        f"{hi_major}.{hi_minor}; its suite was run on {' and '.join(RUN_HERE)}, with what 4.3 "
        "denies by default denied on every 4.x node"
    )


def check_supported(version: str, where: str = "the installed rabbitmq-server") -> None:
    """Raise :class:`~mpsoa_lab.plumbing.errors.UnsupportedRabbitMQ` unless ``version`` is in
    :data:`SUPPORTED`."""
    from .errors import UnsupportedRabbitMQ

    found = parse_version(version)[:2]
    low, high = SUPPORTED
    if low <= found < high:
        return
    why = (
        "it is older than the lab needs"
        if found < low
        else "the lab has not been written for a release after 4.x"
    )
    raise UnsupportedRabbitMQ(
        f"{where} is RabbitMQ {version}: {why}. {supported_note()}. Install a release in that "
        "range (Debian 12 and 13 package one), set MPSOA_RABBITMQ_SERVER to its rabbitmq-server, "
        "or point the lab at brokers given by URL (README, 'Brokers the lab did not start')."
    )


def rabbitmq_server_version(lab=None) -> str:
    """The version the running broker reports (management API), else the installed one."""
    if lab is not None:
        try:
            from .management import Management

            return Management.for_broker(lab.sync).overview()["rabbitmq_version"]
        except Exception:  # noqa: BLE001 - fall back to the installed server's files
            pass
    try:
        return installed_server_version()
    except Exception:  # noqa: BLE001
        return "not installed"


def installed_server_version() -> str:
    """The version of the ``rabbitmq-server`` the lab would run (``MPSOA_RABBITMQ_SERVER``, else
    the one found), read from its installation's folder: ``lib/rabbitmq_server-X.Y.Z`` beside
    its ``bin`` (Debian's and the generic layout), or inside the folder a wrapper of
    ``tools/rabbitmq4.sh`` runs it in (``exec chroot "<folder>" ...``)."""
    import os
    from pathlib import Path

    from .install import find_rabbitmq_server

    server = Path(find_rabbitmq_server(os.environ.get("MPSOA_RABBITMQ_SERVER"))).resolve()
    places = [server.parent.parent / "lib"]
    chroot = re.search(r'exec chroot "([^"]+)"', server.read_text(errors="replace")[:2000])
    if chroot:
        places.append(Path(chroot.group(1)) / "usr/lib/rabbitmq/lib")
    for place in places:
        found = sorted(place.glob("rabbitmq_server-*"))
        if found:
            return found[-1].name.split("-", 1)[1]
    match = re.search(r"rabbitmq_server-([0-9.]+)", str(server))
    return match.group(1) if match else "installed (version unknown)"


def versions(lab=None) -> dict[str, str]:
    """Python, Celery, kombu, py-amqp and the RabbitMQ server, as a dict to print."""
    import amqp
    import celery
    import kombu

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(terse=True),
        "celery": celery.__version__,
        "kombu": kombu.__version__,
        "amqp": amqp.__version__,
        "rabbitmq": rabbitmq_server_version(lab),
    }
