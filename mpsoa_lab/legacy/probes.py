"""The harness of notebook 03: scratch vhosts, message counts and the tables it prints.

Notebook 03 puts the 2014 router and configuration next to the lab's. The cells keep what is
taught (the names sent, the routes compared, the asserts); this module keeps the rest:

* :func:`scratch_vhost`, :func:`messages_per_queue`, :func:`wait_for_messages`,
  :func:`exchanges_of`, :func:`queue_details`: a vhost of the notebook's own on a broker, and
  what the broker holds in it (exact counts from a passive declare);
* :func:`sync_queues_consumed`: the queues the design's sync daemons read (their ``-Q``);
* :func:`router_table`, :func:`landing_table`, :func:`status_summary`, :func:`config_table`:
  the notebook's tables, as text;
* :func:`set_by` and :func:`setting_verdict`: which audit rows are settings the 2014 post set
  (and which the lab adds), and the verdict each one gets from its observed status.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, urlsplit

from kombu import Queue

from ..design.naming import SERVICES
from ..plumbing.management import Management, is_builtin
from ..plumbing.util import ready_messages, wait_until
from ..running.workers import worker_command
from .audit import STATUSES
from .design2014 import CeleryConfig

__all__ = [
    "POST_SETTINGS",
    "POST_SET_OUTSIDE_CONFIG",
    "SETTING_VERDICT",
    "config_table",
    "error_class",
    "exchanges_of",
    "landing_table",
    "messages_per_queue",
    "queue_details",
    "router_table",
    "scratch_vhost",
    "set_by",
    "setting_verdict",
    "status_summary",
    "sync_queues_consumed",
    "wait_for_messages",
]

#: What the post's factory set outside ``CeleryConfig``: the broker URL (with its scheme) and
#: ``CELERY_IGNORE_RESULT`` on the async app.
POST_SET_OUTSIDE_CONFIG = ("BROKER_URL", "CELERY_IGNORE_RESULT")

#: The verdict a 2014 setting gets from the audit's status.
SETTING_VERDICT = {
    "still works": "holds",
    "renamed": "obsolete",
    "changed meaning": "partly",
    "silently ignored": "fails",
    "removed": "fails",
}


# -- a scratch vhost and what the broker holds in it --------------------------------------------


@contextmanager
def scratch_vhost(mgmt: Management, broker_url: str, vhost: str) -> Iterator[str]:
    """A vhost of our own on the broker; yields its AMQP URL, then deletes it with all it holds.

    A vhost left over from a run that stopped half way is deleted first.
    """
    mgmt.delete_vhost(vhost)
    mgmt.create_vhost(vhost)
    try:
        yield urlsplit(broker_url)._replace(path="/" + quote(vhost, safe="")).geturl()
    finally:
        mgmt.delete_vhost(vhost)


def messages_per_queue(mgmt: Management, vhost: str, url: str) -> dict[str, int]:
    """Every queue of the vhost with the messages ready in it (exact: a passive declare each).

    Auto-delete queues are left out: a sync app declares one to receive its results (rpc://),
    and no task goes there.
    """
    names = sorted(
        q["name"] for q in mgmt.queues(vhost) if not q["auto_delete"] and not is_builtin(q["name"])
    )
    return {name: ready_messages(url, name) for name in names}


def wait_for_messages(
    mgmt: Management, vhost: str, url: str, count: int, timeout: float = 5
) -> dict[str, int]:
    """:func:`messages_per_queue`, once the vhost's queues hold ``count`` messages in all."""
    wait_until(lambda: sum(messages_per_queue(mgmt, vhost, url).values()) == count, timeout=timeout)
    return messages_per_queue(mgmt, vhost, url)


def exchanges_of(mgmt: Management, vhost: str) -> dict[str, str]:
    """The vhost's exchanges, name to type, without the broker's built-in ones."""
    return {e["name"]: e["type"] for e in mgmt.exchanges(vhost) if not is_builtin(e["name"])}


def queue_details(
    mgmt: Management, vhost: str, name: str, key: str, timeout: float = 10
) -> dict[str, Any]:
    """A queue as the management API shows it, once it reports ``key`` (its policy, members...).

    The API fills in a queue's details only after the queue has reported its first stats.
    """

    def details() -> dict[str, Any] | None:
        info = mgmt.queue(name, vhost)
        return info if key in info else None

    return wait_until(details, timeout=timeout)


def sync_queues_consumed(services: Iterable[str] = SERVICES) -> set[str]:
    """The queues the design's sync daemons consume: the ``-Q`` of their command lines."""
    commands = (worker_command(service, "sync", "x") for service in services)
    return {cmd[cmd.index("-Q") + 1] for cmd in commands}


# -- tables -------------------------------------------------------------------------------------


def error_class(row: dict[str, Any]) -> str | None:
    """The class of the error the lab's router raised for a row of ``compare_routers``."""
    return row["modern_error"].split(":", 1)[0] if row["modern_error"] else None


def _said(route: dict[str, str] | None) -> str:
    return route["queue"] if route else "None → celery"


def router_table(comparison: Sequence[dict[str, Any]]) -> str:
    """``compare_routers`` rows as a table: the name, each router's queue (or error), agreement."""
    lines = [f"{'task name':<33} {'2014 router':<28} {'lab router':<20} agree"]
    for row in comparison:
        name = row["task"].replace("\n", "\\n")
        now = error_class(row) or _said(row["modern"])
        agree = "yes" if row["agree"] else "NO"
        lines.append(f"{name:<33} {_said(row['legacy']):<28} {now:<20} {agree}")
    return "\n".join(lines)


def landing_table(
    names: Sequence[str],
    landed: dict[str, int],
    consumed: set[str],
    route: Callable[[str], dict[str, str] | None],
) -> str:
    """Where each name went (its route, or Celery's default queue ``celery``), the messages
    in that queue, and whether a sync daemon consumes it."""
    lines = [
        f"  {'task name':<33} {'landed in queue':<21} {'messages there':<15} consumed by a sync daemon"
    ]
    for name in names:
        queue = (route(name) or {"queue": "celery"})["queue"]
        read = "yes" if queue in consumed else "no"
        lines.append(f"  {name:<33} {queue:<21} {landed.get(queue, 0):<15} {read}")
    return "\n".join(lines)


def status_summary(rows: Sequence[dict[str, Any]], width: int = 100) -> str:
    """How many rows have each status, with their settings, wrapped between settings."""
    per_status = Counter(row["status"] for row in rows)
    out = []
    for status in STATUSES:
        line = f"{status:<17} {per_status[status]:>2}  "
        for setting in [r["setting"] for r in rows if r["status"] == status] or ["-"]:
            if len(line) + len(setting) > width:
                out.append(line.rstrip())
                line = " " * 22
            line += setting + ", "
        out.append(line.rstrip(", "))
    out.append(f"{'total':<17} {len(rows):>2}")
    return "\n".join(out)


def _shown(value: Any) -> str:
    if isinstance(value, Queue):  # before callable(): a kombu Queue is callable
        return value.name
    if callable(value):
        return value.__qualname__
    if isinstance(value, (list, tuple)) and all(isinstance(v, Queue) or callable(v) for v in value):
        return ", ".join(_shown(v) for v in value)
    return repr(value)


def config_table(configs: dict[str, dict[str, Any]]) -> str:
    """Two app configurations side by side (``{kind: config}``), then the first one's queues."""
    kinds = list(configs)
    keys = list(dict.fromkeys(key for config in configs.values() for key in config))
    lines = [f"{'setting':<35} " + " ".join(f"{kind + ' app':<52}" for kind in kinds).rstrip()]
    for key in keys:
        values = [_shown(configs[k][key]) if key in configs[k] else "-" for k in kinds]
        lines.append(f"{key:<35} " + " ".join(f"{v:<52}" for v in values).rstrip())
    lines.append("")
    for queue in configs[kinds[0]].get("task_queues", ()):
        where = (
            f"{queue.exchange.type} exchange {queue.exchange.name!r}, binding key {queue.routing_key!r}"
            if queue.exchange.name
            else "default exchange only (routing key = queue name)"
        )
        lines.append(f"queue {queue.name:<14} durable={queue.durable}, {where}")
    return "\n".join(lines)


# -- verdicts -----------------------------------------------------------------------------------

#: Each setting the 2014 post set (audit row name): the verdict id's end, the post's claim in
#: short, and the remedy when the verdict is not ``holds``.
POST_SETTINGS: dict[str, tuple[str, str, str]] = {
    "CELERY_ROUTES": (
        "routes",
        "CELERY_ROUTES = (Router(),) routes every task the apps send",
        "task_routes = (kind_router(kind),): a router function, one per kind of app (§2)",
    ),
    "CELERY_ACCEPT_CONTENT": (
        "accept-content",
        "the apps accept pickle and JSON",
        "accept_content = ['json']: unpickling runs code the publisher chose (§8)",
    ),
    "CELERY_TASK_SERIALIZER": (
        "task-serializer",
        "tasks are serialized with pickle",
        "task_serializer = 'json'",
    ),
    "CELERY_RESULT_SERIALIZER": (
        "result-serializer",
        "results are serialized with pickle",
        "result_serializer = 'json'",
    ),
    "CELERY_TIMEZONE": ("timezone", "the apps run in UTC", "timezone = 'UTC'"),
    "CELERY_ENABLE_UTC": (
        "enable-utc",
        "CELERY_ENABLE_UTC = True turns UTC on",
        "enable_utc = True, Celery 5's name (and its default)",
    ),
    "CELERY_BACKEND": (
        "backend",
        "CELERY_BACKEND = 'amqp' gives the apps a result backend for sync calls",
        "result_backend = 'rpc://' on the sync app (the 'amqp' backend is removed), "
        "task_ignore_result = True on the async app",
    ),
    "CELERY_QUEUE_HA_POLICY": (
        "queue-ha-policy",
        "CELERY_QUEUE_HA_POLICY = 'all' replicates queues to all nodes in the cluster",
        "replicate on the broker: quorum queues (x-queue-type: quorum), not a client setting (§6)",
    ),
    "CELERY_DISABLE_RATE_LIMITS": (
        "disable-rate-limits",
        "rate limits are off",
        "worker_disable_rate_limits = True",
    ),
    "CELERY_QUEUES": (
        "queues",
        "CELERY_QUEUES declares the six queues on the three services' topic exchanges",
        "task_queues as kombu Queues, each app only its own kind's three queues (§8)",
    ),
    "CELERY_QUEUES['<service>.sync']['delivery_mode']": (
        "sync-delivery-mode",
        "'delivery_mode': 1 in the sync queue dicts makes sync messages transient",
        "",
    ),
    "BROKER_HEARTBEAT": (
        "broker-heartbeat",
        "BROKER_HEARTBEAT = 10: a 10 s AMQP heartbeat",
        "broker_heartbeat = 10 (Celery 5's name) on the workers, as the README recommends; "
        "notebook 07 (f) measures it against Celery's default",
    ),
    "BROKER_HEARTBEAT_CHECKRATE": (
        "broker-heartbeat-checkrate",
        "BROKER_HEARTBEAT_CHECKRATE = 2.0: heartbeats checked twice per interval",
        "broker_heartbeat_checkrate, Celery 5's name",
    ),
    "BROKER_POOL_LIMIT": (
        "broker-pool-limit",
        "BROKER_POOL_LIMIT = 0: no connection pool",
        "leave broker_pool_limit at 10: 0 opens a connection for every use (notebook 04)",
    ),
    "CELERY_IGNORE_RESULT": (
        "ignore-result",
        "the async app ignores results",
        "task_ignore_result = True on the async app",
    ),
    "BROKER_URL (SUBSCRIBER: pyamqp://)": (
        "subscriber-pyamqp",
        "subscribers connect with pyamqp://",
        "",
    ),
    "BROKER_URL (PUBLISHER: librabbitmq://)": (
        "publisher-librabbitmq",
        "publishers connect with librabbitmq://, the C client",
        "amqp:// (py-amqp) for every app: librabbitmq no longer installs",
    ),
}


def set_by(setting: str) -> str:
    """``"post"`` for a setting the 2014 post set, ``"lab"`` for a row the lab's audit adds.

    The post set the uppercase attributes of its ``CeleryConfig`` (the queue dict's
    ``delivery_mode`` is part of ``CELERY_QUEUES``) and, in its factory, the names of
    :data:`POST_SET_OUTSIDE_CONFIG`. ``CELERY_RESULT_BACKEND`` is not among them: the audit adds
    it to try the ``'amqp'`` backend that the post's ``CELERY_BACKEND`` asked for under the
    name Celery reads.
    """
    name = setting.split("[", 1)[0].split(" (", 1)[0]
    posted = {key for key in vars(CeleryConfig) if key.isupper()} | set(POST_SET_OUTSIDE_CONFIG)
    return "post" if name in posted else "lab"


def _observation(evidence: str) -> str:
    """What an audit row's evidence observed: its clauses that do not only restate the
    configuration (``app.conf.x is ...``, the old-name table) or explain (``Celery requires
    ...``), up to the end of the first sentence."""
    clauses = evidence.removeprefix("Celery maps it: ").split("; ")
    restating = ("app.conf.", "Not in Celery's old-name table", "Celery requires")
    observed = [c for c in clauses if not c.startswith(restating)] or clauses
    return "; ".join(observed).split(". ", 1)[0].rstrip(".")


def setting_verdict(row: dict[str, Any]) -> dict[str, str]:
    """The verdict on one setting the post set, from its audit row: the keyword arguments of
    ``Verdicts.record`` but ``conditions`` and ``evidence``.

    The verdict follows the observed status (:data:`SETTING_VERDICT`); the number is the
    status with the observation behind it, from the row.
    """
    suffix, claim, remedy = POST_SETTINGS[row["setting"]]
    verdict = SETTING_VERDICT[row["status"]]
    renamed = f" to {row['celery5_name']}" if row["status"] == "renamed" else ""
    return {
        "id": f"config2014-{suffix}",
        "claim": claim,
        "verdict": verdict,
        "number": f"{row['status']}{renamed}: {_observation(row['evidence'])}",
        "remedy": "" if verdict == "holds" else remedy,
    }
