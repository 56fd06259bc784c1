"""The design as the lab recommends it today: every remedy the notebooks found, in one place.

The 2014 post gave one factory, ``celery_apps_factory``, and one ``CeleryConfig``. The lab's own
factory (:mod:`.apps`) already mends what notebook 03 found in them (names, the router, JSON,
``rpc://``). This module adds what the later notebooks measured, each as a :class:`Choice`
with its reason, the notebook that measured it and the verdicts whose remedy it is
(:data:`CHOICES`), and builds it:

* :func:`recommended_apps`: ``(sync_app, async_app)`` for a service, the 2014 factory's shape;
* :func:`recommended_config`: the Celery settings of one kind of app (callers and workers);
* :func:`worker_options`: the ``celery worker`` options of one kind of daemon;
* :func:`queue_arguments` and :func:`recommended_queues`: how the deployment declares the queues
  (quorum queues);
* :data:`BROKER_CONFIG`: what the broker's ``rabbitmq.conf`` sets.

Some remedies are not settings but ways of working (idempotent tasks, a timeout on every
``get()``, one address in front of a cluster); they are choices too, with ``config`` empty, so
the list is complete and :func:`choices_table` shows them all. Notebook 14 runs the key
scenarios of the earlier notebooks against this design and against the 2014 one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from celery import Celery
from kombu import Queue

from .apps import base_config, build_apps
from .naming import KINDS, SERVICES, queue_name
from .rpc_backend import REPLY_EXCHANGE_BACKEND
from .topology import binding_key, service_exchange

__all__ = [
    "Choice",
    "CHOICES",
    "SYNC_TIMEOUT",
    "AS_A_WHOLE",
    "BROKER_CONFIG",
    "recommended_config",
    "recommended_apps",
    "worker_options",
    "worker_config",
    "queue_arguments",
    "recommended_queues",
    "choices_for",
    "choices_table",
    "README_BEGIN",
    "README_END",
    "choices_markdown",
]

#: Seconds a sync caller waits for its answer (``get(timeout=...)``); the request expires after
#: as long (``expires`` on ``send_task``): nobody waits for it then.
SYNC_TIMEOUT = 5.0

#: Verdicts on the 2014 design as a whole (notebook 14): the whole of this design answers them,
#: not one choice.
AS_A_WHOLE = ("celery-as-soa-middleware",)

#: Where a choice takes effect.
WHERE = ("both apps", "sync app", "async app", "workers", "queues", "broker", "edge", "tasks")


@dataclass(frozen=True)
class Choice:
    """One recommended setting or practice, with why, and where it was measured."""

    topic: str
    where: str
    setting: str
    reason: str
    notebooks: tuple[str, ...]
    #: The verdict ids (recorded by those notebooks) whose remedy this is.
    claims: tuple[str, ...] = ()
    #: Celery settings this choice adds, for the kinds of app in ``where``.
    config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.where not in WHERE:
            raise ValueError(f"choice {self.topic!r}: where must be one of {WHERE}")
        if not self.notebooks:
            raise ValueError(f"choice {self.topic!r}: name the notebook that measured it")

    def kinds(self) -> tuple[str, ...]:
        """The kinds of app whose configuration this choice sets."""
        return {"sync app": ("sync",), "async app": ("async",)}.get(self.where, KINDS)


CHOICES: tuple[Choice, ...] = (
    Choice(
        "Celery 5's names",
        "both apps",
        "lowercase settings: timezone, enable_utc, task_ignore_result, "
        "worker_disable_rate_limits, broker_heartbeat_checkrate, ...",
        "the uppercase names are deprecated, one new name among them makes Celery refuse them "
        "all, and three of the post's names (CELERY_BACKEND among them) are ignored",
        ("03",),
        (
            "config2014-timezone",
            "config2014-enable-utc",
            "config2014-disable-rate-limits",
            "config2014-ignore-result",
        ),
    ),
    Choice(
        "transport",
        "both apps",
        "amqp:// (py-amqp) for publishers and workers alike",
        "the 2014 publishers' librabbitmq:// no longer installs: the PUBLISHER app cannot send",
        ("03",),
        ("config2014-publisher-librabbitmq",),
    ),
    Choice(
        "router",
        "both apps",
        "one router per kind of app (kind_router); task_create_missing_queues = False",
        "the 2014 patterns route names no service has and send the other kind's tasks to "
        "queues no daemon reads; this one raises instead",
        ("03",),
        (
            "router-2014-names",
            "router-2014-edge-publishes-to-correct-queue",
            "router-2014-one-config-for-both-apps",
            "config2014-routes",
            "config2014-queues",
        ),
    ),
    Choice(
        "serialization",
        "both apps",
        "task_serializer = result_serializer = 'json', accept_content = ['json']",
        "with pickle whoever can publish chooses what the workers run, secured broker or not",
        ("03", "12", "13"),
        (
            "config2014-pickle-on-a-secured-broker",
            "accept-content-pickle-json",
            "pickle-if-broker-secured",
            "config2014-accept-content",
            "config2014-task-serializer",
            "config2014-result-serializer",
        ),
    ),
    Choice(
        "connection pool",
        "both apps",
        "broker_pool_limit = 10 (Celery's default), never 0",
        "0 opens a connection for every call: about one per call and a slower p50",
        ("03", "04"),
        ("sync-pool-limit-zero", "config2014-broker-pool-limit"),
        {"broker_pool_limit": 10},
    ),
    Choice(
        "scaling",
        "workers",
        "more daemons for more concurrent callers; cores, not daemons, for CPU-bound tasks",
        "more daemons did not shorten one caller's call (the broker round trip) and added "
        "little for four callers on two busy cores",
        ("04",),
        ("sync-more-workers-scale",),
    ),
    Choice(
        "errors",
        "edge",
        "the services' exception classes in a small package the edge imports",
        "a thin edge gets Celery's stand-in class for a service's error, which no except "
        "clause of the edge's matches",
        ("04",),
        ("sync-errors-thin-edge",),
    ),
    Choice(
        "delivery mode",
        "both apps",
        "sync messages transient, async persistent",
        "a sync request is worthless once its caller gave up; an async task must survive a "
        "broker restart",
        ("07",),
    ),
    Choice(
        "heartbeat",
        "both apps",
        "broker_heartbeat = 10 (the 2014 value)",
        "a frozen worker's prefetched messages come back within three intervals; with Celery "
        "5's default the broker agrees 60 s and holds them much longer",
        ("03", "07"),
        ("config2014-broker-heartbeat", "config2014-broker-heartbeat-checkrate"),
        {"broker_heartbeat": 10, "broker_heartbeat_checkrate": 2.0},
    ),
    Choice(
        "sync answers",
        "sync app",
        "result_backend = ReplyExchangeBackend (rpc:// mended, answers through mpsoa.replies)",
        "Celery 5.7's rpc:// blocks a call made while the broker is down and can leave an edge "
        "without replies after an outage; answers through their own exchange let a worker "
        "write there only, not into every queue",
        ("03", "07", "13"),
        ("faults-sync-call-broker-outage", "least-privilege-users", "config2014-backend"),
        {"result_backend": REPLY_EXCHANGE_BACKEND, "result_persistent": False},
    ),
    Choice(
        "sync timeout",
        "sync app",
        f"a timeout on every get() and expires on send_task, both {SYNC_TIMEOUT:g} s",
        "a call nobody waits for any more is dropped by the broker instead of run late",
        ("04", "07"),
        ("sync-get-after-timeout", "faults-sync-call-worker-dies"),
    ),
    Choice(
        "publisher confirms",
        "async app",
        "broker_transport_options = {'confirm_publish': True}, mandatory=True on send_task",
        "without confirms a broker crash lost every task published before it with no error; "
        "with no queue bound only confirms + mandatory tell the publisher",
        ("07",),
        ("faults-crash-no-confirms", "faults-no-queue-bound"),
        {"broker_transport_options": {"confirm_publish": True}},
    ),
    Choice(
        "late acks, prefetch 1",
        "async app",
        "task_acks_late = True, worker_prefetch_multiplier = 1",
        "early acks lose the running task when a worker dies; with prefetch 1 a worker takes a "
        "message only with a free slot, so short tasks do not wait behind a long one",
        ("05", "07", "09"),
        ("faults-worker-kill-early-acks", "async-available-workers", "round-robin-is-enough"),
        {"task_acks_late": True, "worker_prefetch_multiplier": 1},
    ),
    Choice(
        "idempotent tasks",
        "tasks",
        "every task that late acks, a redelivery or a publisher's retry may run again is keyed "
        "by the caller's id (like record_entry's entry_id)",
        "late acks ran a wallet credit twice; the idempotent ledger kept one entry",
        ("07",),
        ("faults-late-acks-duplicates",),
    ),
    Choice(
        "keep what cannot be used",
        "workers",
        "worker_consumer = KeepingConsumer and a dead-letter exchange set by policy",
        "Celery 5.7 dropped most messages it could not use, and some stopped the worker",
        ("12",),
        ("fire-and-forget-is-kept",),
    ),
    Choice(
        "two clusters, two machines",
        "broker",
        "each broker (cluster) on machines or cores of its own",
        "the split kept the async backlog off the sync broker's memory, not off the CPU the "
        "two shared",
        ("06",),
        ("brokers-split-keeps-sync-latency",),
    ),
    Choice(
        "queue type",
        "queues",
        "quorum queues (x-queue-type: quorum) for every queue",
        "HA policy 'all' mirrors nothing today; classic mirrored queues lost confirmed "
        "messages under a split; quorum queues lost none",
        ("03", "10", "11"),
        ("queue-ha-policy-all", "replicate-to-all-nodes-under-split", "config2014-queue-ha-policy"),
    ),
    Choice(
        "partition handling",
        "broker",
        "cluster_partition_handling = pause_minority",
        "the minority stops serving instead of accepting what the majority never sees",
        ("11",),
        ("replicate-to-all-nodes-under-split",),
    ),
    Choice(
        "one address",
        "edge",
        "one AMQP address in front of each cluster (HAProxy in TCP mode) for every client",
        "clients on a node that died were without the sync service for seconds; through one "
        "address they reconnect to a live node",
        ("09", "10"),
        ("two-clusters-survive-a-node", "no-load-balancers"),
    ),
    Choice(
        "the edge waits without threads",
        "edge",
        "one shared reply consumer, awaited by the endpoints (wait='shared')",
        "a blocking get() in an async endpoint serves one call at a time; in the threadpool "
        "concurrency is bounded by threads",
        ("08",),
        ("edge-get-in-async-def", "edge-get-in-threadpool"),
    ),
    Choice(
        "sessions",
        "edge",
        "a signed, expiring session checked on every request",
        "without it anyone can move anyone's money through the edge",
        ("08",),
        ("edge-sessions",),
    ),
    Choice(
        "least privilege",
        "broker",
        "a user per party (design.access); callers publish with declare=[], the deployment "
        "declares the topology",
        "a Celery call that declares needs configure, which is also the right to delete",
        ("12", "13"),
        ("callers-only-publish", "least-privilege-users", "signed-messages"),
    ),
    Choice(
        "TLS",
        "broker",
        "AMQPS only, with peer verification",
        "only the platform's clients reach the broker; costs connection set-up, not calls",
        ("13",),
        ("tls-peer-verification",),
    ),
)

#: The broker's own settings (``rabbitmq.conf``) the recommended design takes.
BROKER_CONFIG: dict[str, str] = {"cluster_partition_handling": "pause_minority"}


def choices_for(kind: str) -> list[Choice]:
    """The choices that set Celery settings on the app of ``kind``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    return [c for c in CHOICES if c.config and kind in c.kinds()]


def queue_arguments(kind: str) -> dict[str, Any]:
    """The arguments the deployment declares each queue of ``kind`` with: quorum queues, for
    both kinds, as notebooks 10 and 11 measured them (a sync request then goes to disk on a
    majority of nodes although it is transient: its caller is told of a lost node in
    seconds instead of finding its queue gone)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    return {"x-queue-type": "quorum"}


def recommended_queues(kind: str, services: Iterable[str] = SERVICES) -> list[Queue]:
    """The platform's queues of ``kind``, as the recommended deployment declares them."""
    return [
        Queue(
            queue_name(service, kind),
            service_exchange(service),
            routing_key=binding_key(service, kind),
            durable=True,
            queue_arguments=queue_arguments(kind),
        )
        for service in services
    ]


def recommended_config(kind: str, services: tuple[str, ...] = SERVICES) -> dict[str, Any]:
    """The Celery settings of the recommended app of ``kind``: the lab's :func:`base_config`
    plus every :class:`Choice` that sets something for that kind."""
    config = base_config(kind, services)
    config["task_queues"] = [*recommended_queues(kind, services), Queue("celery")]
    for choice in choices_for(kind):
        config.update({k: v for k, v in choice.config.items() if v is not None})
    return config


def recommended_apps(
    app_type: str, sync_broker_url: str, async_broker_url: str, service_name: str
) -> tuple[Celery, Celery]:
    """``(sync_app, async_app)`` for ``service_name`` as the lab recommends them, each on its
    own broker: the 2014 factory's signature."""
    return build_apps(app_type, sync_broker_url, async_broker_url, service_name, recommended_config)


def worker_options(kind: str) -> dict[str, Any]:
    """The ``celery worker`` options of a recommended daemon of ``kind`` (for
    :func:`mpsoa_lab.running.workers.start_worker`): prefork, one process per daemon, scaled
    with daemons; prefetch 1 for async tasks (late acks), Celery's 4 for short sync calls."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    return {"pool": "prefork", "concurrency": 1, "prefetch_multiplier": 1 if kind == "async" else 4}


def worker_config(kind: str, services: tuple[str, ...] = SERVICES) -> dict[str, Any]:
    """What a recommended daemon of ``kind`` takes on top of the lab's app (JSON, for
    ``start_worker(config=...)``, which passes it in ``MPSOA_CELERY_CONFIG``): its queues as the
    recommended deployment declares them (the dict shape Celery accepts) and every choice's
    settings for that kind."""
    queues = {
        queue.name: {
            "exchange": queue.exchange.name,
            "exchange_type": queue.exchange.type,
            "binding_key": queue.routing_key,
            "durable": True,
            "queue_arguments": dict(queue.queue_arguments or {}),
        }
        for queue in recommended_queues(kind, services)
    }
    config: dict[str, Any] = {"task_queues": queues}
    for choice in choices_for(kind):
        config.update(choice.config)
    return config


def choices_table() -> list[dict[str, str]]:
    """One row per choice: what, where, why, and the notebooks that measured it."""
    return [
        {
            "topic": c.topic,
            "where": c.where,
            "setting": c.setting,
            "reason": c.reason,
            "notebooks": ", ".join(c.notebooks),
            "claims": ", ".join(c.claims),
        }
        for c in CHOICES
    ]


README_BEGIN = (
    "<!-- recommended: written by python -m mpsoa_lab claims from "
    "mpsoa_lab.design.recommended.CHOICES; do not edit -->"
)
README_END = "<!-- /recommended -->"


def choices_markdown() -> str:
    """The choices as the README's table: one row each, with the notebooks that measured it."""

    def cell(text: str) -> str:
        return " ".join(text.split()).replace("|", "\\|")

    rows = [
        "| what | where | the setting | why | measured in |",
        "|---|---|---|---|---|",
    ]
    for c in CHOICES:
        measured = ", ".join(c.notebooks)
        rows.append(
            f"| {cell(c.topic)} | {c.where} | {cell(c.setting)} | {cell(c.reason)} | {measured} |"
        )
    return "\n".join(rows)
