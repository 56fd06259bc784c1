"""What the 2014 apps do on a real broker: :func:`observe_legacy_on_broker` runs them in
scratch virtual hosts and returns what the broker shows (queues and their arguments, messages,
exchanges, heartbeats, the pool) as data, for :mod:`mpsoa_lab.legacy.audit` to judge each 2014
setting by. Every vhost it creates is deleted, with all it holds, before it returns.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from kombu import Queue

from ..plumbing.errors import LabError
from ..plumbing.management import EntityNotFound, Management
from ..plumbing.settings import management_url_for
from ..running.lab import check_broker
from . import design2014 as legacy

__all__ = ["observe_legacy_on_broker", "GET_TIMEOUT"]

#: Seconds any ``.get()`` or message read waits.
GET_TIMEOUT = 1.5
_PICKLE = "application/x-python-serialize"
_HA_CONTROL = "mpsoa-audit.ha-control"


# -- a scratch virtual host, read through the management HTTP API ---------------------------


def _queue(api: Management, vhost: str, name: str) -> dict[str, Any] | None:
    try:
        return api.queue(name, vhost)
    except EntityNotFound:
        return None


def _take(api: Management, vhost: str, name: str) -> list[dict[str, Any]]:
    """Remove and return the messages in queue ``name``, waiting up to GET_TIMEOUT for one."""
    deadline = time.monotonic() + GET_TIMEOUT
    while True:
        got = api.get_messages(name, count=10, ackmode="ack_requeue_false", vhost=vhost)
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


@contextmanager
def _scratch_vhost(amqp_url: str, api: Management) -> Iterator[tuple[str, str]]:
    """A new vhost for the API's user: yields ``(amqp_url_in_it, vhost)``, then deletes it."""
    parts = urlsplit(amqp_url)
    user = unquote(parts.username or "guest")
    if user != api.user:
        raise LabError(
            f"The audit creates a scratch vhost and grants it to the management API's user "
            f"{api.user!r}, but the AMQP URL logs in as {user!r}. Use the same user in both URLs."
        )
    vhost = f"mpsoa-audit-{secrets.token_hex(4)}"
    api.create_vhost(vhost)
    try:
        yield parts._replace(path="/" + quote(vhost, safe="")).geturl(), vhost
    finally:
        api.delete_vhost(vhost)


def _scheme(url: str) -> str:
    return url.split("://", 1)[0] + "://"


def _schemeless(url: str) -> str:
    """The 2014 factory takes ``user:pass@host:port/vhost`` and adds the scheme itself."""
    return url.split("://", 1)[1] if "://" in url else url


def _sentence(text: str) -> str:
    return " ".join(str(text).split()).rstrip(".")


# -- probes on the broker ----------------------------------------------------------------------


def observe_legacy_on_broker(
    sync_url: str,
    async_url: str | None = None,
    management_url: str | None = None,
    *,
    async_management_url: str | None = None,
) -> dict[str, Any]:
    """Run the 2014 apps on real brokers, in scratch virtual hosts, and collect what they show.

    The apps come from :func:`mpsoa_lab.legacy.design2014.legacy_celery_apps_factory`; queues,
    bindings, exchanges and messages are read back through the management HTTP API. ``async_url``
    defaults to the sync broker; management URLs default to port 15672 of the AMQP hosts. The
    scratch virtual hosts (named in ``vhosts``) are deleted, with all they hold, before this
    returns.
    """
    sync_api = Management(management_url or management_url_for(sync_url), role="sync")
    async_api = None
    if async_url is not None:
        async_api = Management(async_management_url or management_url_for(async_url), role="async")
    obs: dict[str, Any] = {}
    with ExitStack() as stack:
        for api in (sync_api, async_api):
            if api is not None:
                stack.callback(api.close)
        s_url, s_vhost = stack.enter_context(_scratch_vhost(sync_url, sync_api))
        a_url, a_vhost, a_api = s_url, s_vhost, sync_api
        if async_api is not None:
            a_url, a_vhost = stack.enter_context(_scratch_vhost(async_url, async_api))
            a_api = async_api
        obs["vhosts"] = sorted({s_vhost, a_vhost})
        for url in {s_url, a_url}:
            check_broker(url, timeout=5)

        sync_app, async_app = legacy.legacy_celery_apps_factory(
            "SUBSCRIBER", _schemeless(s_url), _schemeless(a_url), "mplogin"
        )
        stack.callback(sync_app.close)
        stack.callback(async_app.close)
        obs["subscriber_url"] = sync_app.conf.broker_url

        # The queues Celery 5 builds from the 2014 dict, declared as a worker declares them,
        # and a control queue that asks for mirroring the pre-RabbitMQ-3.0 way, by argument
        # (durable: RabbitMQ 4.3 refuses a queue that is neither durable nor exclusive, and an
        # exclusive one would be gone before it is read; the scratch vhost goes afterwards).
        with sync_app.connection_for_write() as conn:
            for queue in sync_app.amqp.queues.values():
                queue(conn.default_channel).declare()
            Queue(_HA_CONTROL, durable=True, queue_arguments={"x-ha-policy": "all"})(
                conn.default_channel
            ).declare()
        obs["queues"] = {name: _queue(sync_api, s_vhost, name) for name in sync_app.amqp.queues}
        obs["ha_control"] = _queue(sync_api, s_vhost, _HA_CONTROL)
        obs["bindings"] = {
            (b["source"], b["destination"], b["routing_key"])
            for b in sync_api.bindings(s_vhost)
            if b["source"]
        }
        obs["exchanges"] = {e["name"]: e["type"] for e in sync_api.exchanges(s_vhost)}

        # The design's sync call, as the edge server makes it, and one async call.
        result = sync_app.send_task("mplogin.sync.register", kwargs={"user_obj": {"name": "ann"}})
        try:
            obs["get"] = ("returned", repr(result.get(timeout=GET_TIMEOUT)))
        except Exception as exc:  # noqa: BLE001 - what it raises is the observation
            obs["get"] = (type(exc).__name__, _sentence(exc))
        async_app.send_task("mplogin.async.send_welcome_mail", kwargs={"user_id": 1})
        obs["sync_message"] = _message_facts(_take(sync_api, s_vhost, "mplogin.sync"))
        obs["async_message"] = _message_facts(_take(a_api, a_vhost, "mplogin.async"))

        @async_app.task(name="mplogin.async.audit_probe")
        def _probe_task() -> None:  # never run: only its ignore_result is read
            return None

        obs["ignore_result"] = (async_app.conf.task_ignore_result, _probe_task.ignore_result)

        # Heartbeats: a publisher's connection, and one opened the way a worker opens it.
        with sync_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1)
            obs["heartbeat_publisher"] = conn.connection.heartbeat
        with sync_app.connection_for_read(heartbeat=sync_app.conf.broker_heartbeat) as conn:
            conn.ensure_connection(max_retries=1)
            obs["heartbeat_worker"] = conn.connection.heartbeat

        # The connection pool: two acquisitions in a row.
        pool = sync_app.pool
        first = pool.acquire()
        first.ensure_connection(max_retries=1)
        first.release()
        second = pool.acquire()
        second.release()
        obs["pool"] = {
            "limit": pool.limit,
            "reused": first is second,
            "closed_on_release": not first.connected,
        }

        # The PUBLISHER apps: librabbitmq:// URLs.
        pub_sync, pub_async = legacy.legacy_celery_apps_factory(
            "PUBLISHER", _schemeless(s_url), _schemeless(a_url), "mplogin"
        )
        stack.callback(pub_sync.close)
        stack.callback(pub_async.close)
        obs["publisher_url"] = pub_sync.conf.broker_url
        try:
            pub_sync.send_task("mplogin.sync.register", kwargs={"user_obj": {"name": "bob"}})
            obs["publisher"] = None
        except Exception as exc:  # noqa: BLE001 - what it raises is the observation
            obs["publisher"] = (type(exc).__name__, _sentence(exc))
    if obs["sync_message"] is None or obs["async_message"] is None:
        raise LabError(
            f"A task the 2014 apps published did not arrive in its queue within {GET_TIMEOUT} s "
            f"(sync: {obs['sync_message']}, async: {obs['async_message']}), so the audit cannot "
            "judge routing, serializers or delivery modes. Check the broker's logs and alarms."
        )
    return obs


def _message_facts(messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not messages:
        return None
    first = messages[0]
    return {
        "exchange": first["exchange"],
        "routing_key": first["routing_key"],
        "delivery_mode": first["properties"].get("delivery_mode"),
        "content_type": first["properties"].get("content_type"),
    }
