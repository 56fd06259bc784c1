"""The versions that matter to what the lab measures, for a notebook's first cell."""

from __future__ import annotations

import platform
import re
import sys

__all__ = ["versions", "rabbitmq_server_version"]


def rabbitmq_server_version(lab=None) -> str:
    """The version the running broker reports (management API), else the installed one."""
    if lab is not None:
        try:
            from .management import Management

            return Management.for_broker(lab.sync).overview()["rabbitmq_version"]
        except Exception:  # noqa: BLE001 - fall back to the installed server's files
            pass
    try:
        from pathlib import Path

        from .install import find_rabbitmq_server

        path = Path(find_rabbitmq_server()).resolve()
        match = re.search(r"rabbitmq_server-([0-9.]+)", str(path))
        return match.group(1) if match else "installed (version unknown)"
    except Exception:  # noqa: BLE001
        return "not installed"


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
