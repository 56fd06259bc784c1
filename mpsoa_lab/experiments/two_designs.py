"""Notebook 14: the 2014 configuration and the recommended design, through the same scenarios.

Each design runs in a vhost of its own on the lab's two nodes (:func:`two_designs`), seen
through a view of the lab (:meth:`~mpsoa_lab.running.lab.Lab.in_vhost`): the 2014 queues are
classic and the recommended ones quorum queues of the same names, which cannot share a vhost.
Every scenario takes a :class:`Design` and drives it with that design's own callers (its apps)
and daemons (its worker settings and options):

* :func:`sync_latency`: sync calls one after the other, each timed by its caller;
* :func:`burst`: async tasks published as fast as the design publishes, drained by one worker;
* :func:`worker_killed`: :func:`~mpsoa_lab.experiments.fault_scenarios.kill_mid_task`;
* :func:`broker_killed`: :func:`~mpsoa_lab.experiments.fault_scenarios.crash_while_publishing`
  (the async node killed with ``kill -9`` under a publisher, then started again);
* :func:`pickle_payload`: :func:`~mpsoa_lab.experiments.pickle_payload.one_worker`;
* :func:`malformed`: :func:`~mpsoa_lab.experiments.bad_messages.send_bad_messages`;

and, on a cluster, notebook 10's :func:`~mpsoa_lab.experiments.clusters.node_loss`
(:func:`node_lost`). :class:`SideBySide` collects one row per measure and prints the table.

The 2014 side is the 2014 settings as Celery 5 runs them (:data:`SETTINGS_2014`): what Celery 5
removed (the ``amqp`` result backend, ``librabbitmq``, the ``x-ha-policy`` argument's effect)
has the lab's closest working stand-in, as in notebooks 03 and 04.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..design import recommended as rec
from ..design.apps import base_config, build_apps
from ..design.rpc_backend import declare_reply_exchange
from ..plumbing.management import Management
from ..plumbing.util import wait_until
from ..running.lab import Lab
from ..running.workers import start_worker
from .bad_messages import CELERY_CONSUMER, keep_dead_letters, send_bad_messages
from .fault_scenarios import crash_while_publishing, kill_mid_task
from .pickle_payload import one_worker

__all__ = [
    "SETTINGS_2014",
    "DESIGNS",
    "Design",
    "two_designs",
    "sync_latency",
    "Burst",
    "burst",
    "worker_killed",
    "broker_killed",
    "pickle_payload",
    "malformed",
    "gone",
    "node_lost",
    "SideBySide",
    "median_ms",
]

SERVICE = "mpledger"
#: The 2014 settings Celery 5 still runs, on top of the lab's app (:func:`base_config`: the
#: design's exchanges, queues and router, ``rpc://`` for the removed ``amqp`` backend). Left
#: out: ``BROKER_POOL_LIMIT = 0``, which holds for every app of a process once one app uses it
#: (the benchmark's finding), so it would slow the recommended callers in this kernel too.
SETTINGS_2014: dict[str, Any] = {
    "accept_content": ["pickle", "json"],  # CELERY_ACCEPT_CONTENT
    "task_serializer": "pickle",  # CELERY_TASK_SERIALIZER
    "result_serializer": "pickle",  # CELERY_RESULT_SERIALIZER
    "broker_heartbeat": 10,  # BROKER_HEARTBEAT
    "broker_heartbeat_checkrate": 2.0,  # BROKER_HEARTBEAT_CHECKRATE
    "worker_consumer": CELERY_CONSUMER,  # Celery's own consumer, as the post ran it
}
#: Celery's defaults, as the post ran its daemons (early acks, prefetch 4), one process each.
OPTIONS_2014: dict[str, Any] = {"pool": "prefork", "concurrency": 1, "prefetch_multiplier": 4}


def _config_2014(kind: str) -> dict[str, Any]:
    return {**base_config(kind), **SETTINGS_2014}


def _as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


@dataclass(frozen=True)
class Design:
    """One design, in its vhost: how its daemons and callers are made, and how it publishes."""

    name: str
    lab: Lab  # a view of the lab in the design's vhost
    worker_config: Callable[[str], dict[str, Any]]  # Celery settings of a daemon of a kind
    worker_options: Callable[[str], dict[str, Any]]  # start_worker options of that daemon
    config: Callable[[str], dict[str, Any]]  # the callers' settings
    publish: Mapping[str, Any] = field(default_factory=dict)  # send_task options
    call: Mapping[str, Any] = field(default_factory=dict)  # a sync call's send_task options

    def apps(self) -> tuple[Any, Any]:
        """``(sync_app, async_app)``: this design's callers, on its vhost."""
        return build_apps("PUBLISHER", self.lab.sync.url, self.lab.async_.url, SERVICE, self.config)

    def start_worker(self, kind: str, **extra: Any) -> Any:
        """One of this design's daemons of ``kind`` for ``mpledger``, ready."""
        options = {**self.worker_options(kind), **extra}
        return start_worker(self.lab, SERVICE, kind, config=self.worker_config(kind), **options)


def _options_2014(kind: str) -> dict[str, Any]:
    # Celery refuses a worker that accepts pickle as root: notebook 12 shows the guard; here the
    # 2014 daemons go past it, as they must to run at all when the lab runs as root.
    return {**OPTIONS_2014, "force_root": _as_root()}


#: The two designs: name -> (worker settings, worker options, callers' settings, publish
#: options, sync call options, queues of a kind).
DESIGNS: dict[str, tuple[Callable[..., Any], ...]] = {
    "2014": (
        lambda kind: dict(SETTINGS_2014),
        _options_2014,
        _config_2014,
        lambda: {},
        lambda: {},
        None,
    ),
    "recommended": (
        rec.worker_config,
        rec.worker_options,
        rec.recommended_config,
        lambda: {"mandatory": True},
        lambda: {"expires": rec.SYNC_TIMEOUT},
        rec.recommended_queues,
    ),
}


@contextlib.contextmanager
def two_designs(lab: Lab) -> Iterator[dict[str, Design]]:
    """Both designs, each in a vhost of its own on each of ``lab``'s nodes, with its queues
    declared (the recommended one also with its reply exchange and dead-letter policy);
    the vhosts are deleted on the way out."""
    lab.needs_nodes("run two designs side by side in vhosts of their own")
    made: list[str] = []
    try:
        designs = {}
        for name, (worker, options, config, publish, call, queues) in DESIGNS.items():
            vhost = f"{lab.space}.{name}"
            for broker in lab.brokers.values():
                with Management.for_broker(broker) as api:
                    api.create_vhost(vhost)
            made.append(vhost)
            view = lab.in_vhost(vhost, queues)
            view.prepare_topology()
            if name == "recommended":
                from kombu import Connection

                with Connection(view.sync.url) as conn:
                    declare_reply_exchange(conn)
                keep_dead_letters(view)
            designs[name] = Design(name, view, worker, options, config, publish(), call())
        yield designs
    finally:
        for vhost in made:
            for broker in lab.brokers.values():
                with contextlib.suppress(Exception), Management.for_broker(broker) as api:
                    api.delete_vhost(vhost)


def _storage() -> Any:
    from ..design.services import mpledger

    return mpledger.service.storage


def sync_latency(design: Design, calls: int = 60, warm: int = 5) -> list[float]:
    """Seconds per sync ``balance`` call, one after the other, from one caller of ``design`` to
    one of its sync daemons (the first ``warm`` calls are not counted)."""
    worker = design.start_worker("sync")
    sync_app, async_app = design.apps()
    times: list[float] = []
    try:
        for i in range(warm + calls):
            t0 = time.perf_counter()
            call = sync_app.send_task(
                f"{SERVICE}.sync.balance", kwargs={"account": "latency"}, **design.call
            )
            call.get(timeout=rec.SYNC_TIMEOUT)
            if i >= warm:
                times.append(time.perf_counter() - t0)
    finally:
        sync_app.close()
        async_app.close()
        worker.stop()
    return times


@dataclass(frozen=True)
class Burst:
    """A burst of async tasks: how long publishing and draining took, and what ran."""

    published: int
    publish_s: float
    drained_s: float  # from the first publish until the last task had run
    processed: int  # distinct tasks run
    duplicated: int  # runs beyond the first
    lost: int  # published, never run

    @property
    def publish_rate(self) -> float:
        return self.published / self.publish_s


def burst(design: Design, tasks: int = 300, timeout: float = 60.0) -> Burst:
    """``tasks`` ``record_entry`` tasks, published back to back by one caller of ``design``
    (one producer for the burst), run by one of its async daemons."""
    storage = _storage()
    storage.reset()
    worker = design.start_worker("async")
    sync_app, async_app = design.apps()
    ids: list[str] = []
    try:
        t0 = time.perf_counter()
        with async_app.producer_or_acquire() as producer:
            for i in range(tasks):
                kwargs = {
                    "entry_id": f"burst-{uuid.uuid4()}",
                    "account": "burst",
                    "amount_cents": i,
                }
                ids.append(
                    async_app.send_task(
                        f"{SERVICE}.async.record_entry",
                        kwargs=kwargs,
                        producer=producer,
                        **design.publish,
                    ).id
                )
        publish_s = time.perf_counter() - t0
        wanted = set(ids)

        def ran() -> list[str]:
            return [e["task_id"] for e in storage.executions() if e["task_id"] in wanted]

        with contextlib.suppress(TimeoutError):
            wait_until(lambda: len(set(ran())) == tasks, timeout=timeout, interval=0.05)
        drained_s = time.perf_counter() - t0
        time.sleep(0.3)  # a duplicate run would show now
        runs = ran()
    finally:
        sync_app.close()
        async_app.close()
        worker.stop()
    return Burst(tasks, publish_s, drained_s, len(set(runs)), len(runs) - len(set(runs)),
                 tasks - len(set(runs)))  # fmt: skip


def worker_killed(design: Design, tasks: int = 3, seconds: float = 2.0) -> Any:
    """A daemon of ``design`` killed (SIGKILL) mid-task: the
    :class:`~mpsoa_lab.experiments.fault_scenarios.KillRun`."""
    options = design.worker_options("async")
    _, async_app = design.apps()
    try:
        return kill_mid_task(
            design.lab,
            async_app,
            design.worker_config("async"),
            tasks=tasks,
            seconds=seconds,
            prefetch_multiplier=options.pop("prefetch_multiplier"),
            worker_options=options,
        )
    finally:
        async_app.close()


def broker_killed(design: Design, crash_after: int = 500) -> Any:
    """The async node killed under a publisher of ``design`` after ``crash_after`` tasks, then
    started again: the :class:`~mpsoa_lab.experiments.fault_scenarios.CrashRun`."""
    _, async_app = design.apps()
    try:
        return crash_while_publishing(
            design.lab, {}, crash_after=crash_after, publisher=async_app, options=design.publish
        )
    finally:
        async_app.close()


def pickle_payload(design: Design, wait: float = 10.0) -> Any:
    """A pickle payload, then a good task, to a daemon of ``design``: the
    :class:`~mpsoa_lab.experiments.pickle_payload.WorkerOutcome`."""
    _storage().reset()
    options = design.worker_options("async")
    options.pop("force_root", None)  # one_worker tries without first, to show the guard
    return one_worker(
        design.lab, design.name, design.worker_config("async"), wait, design.lab.async_.url,
        **options,
    )  # fmt: skip


def malformed(design: Design, wait: float = 10.0) -> Any:
    """The catalogue of messages a worker cannot use, each followed by a good task, to a daemon
    of ``design``: the :class:`~mpsoa_lab.experiments.bad_messages.Run`."""
    _storage().reset()
    return send_bad_messages(
        design.lab,
        design.name,
        config=design.worker_config("async"),
        wait=wait,
        worker_options=design.worker_options("async"),
    )


def gone(fate: Any) -> bool:
    """A bad message that left no trace: not run, not kept as failed, not dead-lettered and
    not left in the queue."""
    return not (fate.ran or fate.kept_as_failed or fate.dead_lettered or fate.left_in_queue)


def node_lost(lab: Lab, cluster: Any, rate: float = 50.0) -> dict[str, Any]:
    """Notebook 10's node loss, once per design, on ``cluster``: the 2014 queues, and quorum
    queues behind one address with transient replies and late acks (the recommended queue
    type, address and replies). Returns the :class:`~mpsoa_lab.experiments.clusters.NodeLossRun`
    of each."""
    from . import clusters

    late = {"task_acks_late": True, "worker_prefetch_multiplier": 1}
    return {
        "2014": clusters.node_loss(lab, cluster, "2014", rate=rate, rejoin_messages=0),
        "recommended": clusters.node_loss(
            lab,
            cluster,
            "quorum",
            rate=rate,
            one_address=True,
            caller_backend=clusters.TRANSIENT_REPLY_BACKEND,
            worker_config=late,
            rejoin_messages=0,
        ),
    }


@dataclass
class SideBySide:
    """One row per measure: the scenario, what is counted, and each design's figure."""

    rows: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    #: the rows that count harm (lost, dropped, code run): drawn by :meth:`plot_harm`
    harm: list[tuple[str, str]] = field(default_factory=list)

    def add(
        self, scenario: str, measure: str, figures: Mapping[str, Any], *, harm: bool = False
    ) -> None:
        """One row: ``figures`` by design name."""
        self.rows.append((scenario, measure, dict(figures)))
        if harm:
            self.harm.append((scenario, measure))

    def plot_harm(self, ax: Any) -> None:
        """The harm rows as bars, one pair per row: each design's count."""
        labels = [f"{s}: {m}" for s, m in self.harm]
        names = list(dict.fromkeys(n for *_, figures in self.rows for n in figures))
        height = 0.8 / max(len(names), 1)
        for i, name in enumerate(names):
            values = [float(self.value(s, m, name)) for s, m in self.harm]
            positions = [row + i * height for row in range(len(labels))]
            bars = ax.barh(positions, values, height=height, label=name)
            ax.bar_label(bars, labels=[_fmt(v) for v in values], padding=2, fontsize=8)
        ax.set_yticks([row + height * (len(names) - 1) / 2 for row in range(len(labels))])
        ax.set_yticklabels(labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xscale("symlog", linthresh=1)  # one task lost and a thousand, on one axis
        biggest = max((float(self.value(s, m, n)) for s, m in self.harm for n in names), default=1)
        ax.set_xlim(0, max(biggest, 1.0) * 5)  # room for the largest bar's label
        ax.set_xlabel("counted (messages, calls, runs; symmetric log scale)")
        ax.legend(loc="lower right")

    def value(self, scenario: str, measure: str, design: str) -> Any:
        for s, m, figures in self.rows:
            if (s, m) == (scenario, measure):
                return figures[design]
        raise KeyError(f"no row ({scenario!r}, {measure!r}); rows: {[r[:2] for r in self.rows]}")

    def table(self) -> str:
        names = list(dict.fromkeys(name for *_, figures in self.rows for name in figures))
        width = max((len(s) for s, _, _ in self.rows), default=8) + 2
        mwidth = max((len(m) for _, m, _ in self.rows), default=8) + 2
        lines = [f"{'scenario':<{width}}{'measure':<{mwidth}}" + "".join(f"{n:>14}" for n in names)]
        for scenario, measure, figures in self.rows:
            cells = "".join(f"{_fmt(figures.get(n, '')):>14}" for n in names)
            lines.append(f"{scenario:<{width}}{measure:<{mwidth}}{cells}")
        return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.0f}" if value.is_integer() else f"{value:.2f}"
    return str(value)


def median_ms(seconds: list[float]) -> float:
    """The median of ``seconds``, in milliseconds."""
    return statistics.median(seconds) * 1000
