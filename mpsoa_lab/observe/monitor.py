"""Queue depth over time, read from the broker itself, in a background thread.

A :class:`QueueMonitor` samples each watched queue every ``interval`` seconds (0.25 s by
default) from two sources, and keeps one plain dict per queue and tick::

    with QueueMonitor(lab.async_, ["mpledger.async"]) as mon:
        ...publish, let the workers drain...
    series = mon.series("mpledger.async")   # {"t": [...], "ready": [...], "ready_now": [...], ...}
    plot_depth({"2 workers": series})

``ready``, ``unacked``, ``consumers``
    ``messages_ready``, ``messages_unacknowledged`` and ``consumers`` from the management HTTP
    API (``GET /api/queues/<vhost>/<queue>``): what the management UI shows. These are *not*
    counted when asked: the management agent copies the queue's counters into its statistics
    tables periodically, and the API returns the last copy. The lab's nodes set
    ``collect_statistics_interval = 1000``, but the agent's collection interval is the
    smallest interval of its sample retention policies (RabbitMQ's internals documentation),
    5 s by default; measured on the lab's RabbitMQ 3.10 nodes: the API's counts change every
    5 s and lag the queue by up to 5 s (with ``management.sample_retention_policies.*.minute = 1``
    they change every second). :meth:`QueueMonitor.refresh_interval` measures it from the
    samples; read nothing finer than that from these columns.
``ready_now``, ``consumers_now``
    the message and consumer counts a passive ``queue.declare`` returns (AMQP, on a
    connection the monitor holds): asked of the queue process itself at that moment, exact,
    but only for ready messages; the queue does not report unacknowledged ones over AMQP.

The thread is a daemon, stops within one tick on :meth:`QueueMonitor.stop` (which the
``with`` block calls also when its body raises) and by itself after ``limit`` seconds, and an
error never ends it: failed reads are kept in :attr:`QueueMonitor.errors` (a broker being
restarted is something later notebooks watch).
"""

from __future__ import annotations

import itertools
import statistics
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from ..plumbing.management import Management

__all__ = ["QueueMonitor", "plot_depth"]


class QueueMonitor:
    """Sample the depth of ``queues`` on one broker every ``interval`` seconds.

    ``broker`` is a :class:`~mpsoa_lab.running.lab.Broker` (``lab.async_``): its management API
    gives ``ready``/``unacked``/``consumers`` and its AMQP URL ``ready_now``/``consumers_now``
    (``exact=False`` skips the latter). A :class:`Management` or a management URL works too,
    without the exact counts. Each sample: ``t`` (epoch seconds), ``queue`` and those fields,
    ``None`` where a source had nothing (no statistics yet, or the read failed).
    """

    def __init__(
        self,
        broker: Any,
        queues: Iterable[str],
        interval: float = 0.25,
        *,
        vhost: str | None = None,
        exact: bool = True,
        limit: float = 600.0,
    ):
        if interval <= 0:
            raise ValueError(f"interval must be positive, not {interval!r}")
        self.queues = list(queues)
        if not self.queues:
            raise ValueError("give at least one queue to watch")
        if isinstance(broker, Management):
            self._api, amqp_url = broker, None
        elif isinstance(broker, str):
            self._api, amqp_url = Management(broker, timeout=2.0), None
        else:
            self._api, amqp_url = Management.for_broker(broker, timeout=2.0), broker.url
        self._amqp_url = amqp_url if exact else None
        vhost = self._api.vhost if vhost is None else vhost  # a lab broker's: its space's
        if vhost != self._api.vhost and self._amqp_url:
            raise ValueError("exact counts use the broker URL's vhost; pass exact=False")
        self.interval = interval
        self.vhost = vhost
        self.limit = limit
        self.samples: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self.started: float | None = None
        self.stopped: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._conn: Any = None
        self._channel: Any = None

    # -- life cycle ----------------------------------------------------------------------------
    def start(self) -> QueueMonitor:
        """Start sampling in the background; the first sample is taken at once."""
        if self._thread is not None:
            raise RuntimeError("this monitor was already started; make a new one")
        self.started = time.time()
        self._thread = threading.Thread(target=self._run, name="queue-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and wait for it (idempotent)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if self.stopped is None:
            self.stopped = time.time()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> QueueMonitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        end = time.monotonic() + self.limit
        next_at = time.monotonic()
        try:
            while not self._stop.wait(max(0.0, next_at - time.monotonic())):
                if time.monotonic() > end:  # a forgotten monitor does not poll forever
                    break
                for queue in self.queues:
                    self._sample(queue)
                next_at += self.interval
                if next_at < time.monotonic():  # a slow answer: skip missed ticks, no burst
                    next_at = time.monotonic() + self.interval
        finally:
            self._close_amqp()
            self._api.close()

    # -- one sample ----------------------------------------------------------------------------
    def _error(self, queue: str, source: str, exc: BaseException) -> None:
        with self._lock:
            self.errors.append(
                {
                    "t": time.time(),
                    "queue": queue,
                    "source": source,
                    "error": f"{type(exc).__name__}: {exc}",
                }
            )

    def _declare(self, queue: str) -> tuple[int | None, int | None]:
        if not self._amqp_url:
            return None, None
        try:
            if self._channel is None:
                from kombu import Connection

                self._conn = Connection(self._amqp_url, connect_timeout=2)
                self._channel = self._conn.channel()
            ok = self._channel.queue_declare(queue=queue, passive=True)
            return ok.message_count, ok.consumer_count
        except Exception as exc:  # noqa: BLE001 - a missing queue closes the channel: reopen
            self._error(queue, "queue.declare", exc)
            self._close_amqp()
            return None, None

    def _close_amqp(self) -> None:
        conn, self._conn, self._channel = self._conn, None, None
        if conn is not None:
            try:
                conn.release()
            except Exception:  # noqa: BLE001 - already broken
                pass

    def _sample(self, queue: str) -> None:
        ready_now, consumers_now = self._declare(queue)
        t = time.time()
        try:
            info = self._api.queue(queue, vhost=self.vhost)
        except Exception as exc:  # noqa: BLE001 - keep watching; the caller reads .errors
            self._error(queue, "management API", exc)
            info = {}
        sample = {
            "t": t,
            "queue": queue,
            "ready": info.get("messages_ready"),
            "unacked": info.get("messages_unacknowledged"),
            "consumers": info.get("consumers"),
            "ready_now": ready_now,
            "consumers_now": consumers_now,
        }
        with self._lock:
            self.samples.append(sample)

    # -- reading the samples -------------------------------------------------------------------
    def _rows(self, queue: str | None) -> list[dict[str, Any]]:
        queue = queue or self.queues[0]
        with self._lock:
            return [s for s in self.samples if s["queue"] == queue]

    def series(
        self,
        queue: str | None = None,
        t0: float | None = None,
        *,
        since: float | None = None,
        until: float | None = None,
    ) -> dict[str, list]:
        """One queue's samples as columns, ``t`` in seconds after ``t0`` (default: the
        monitor's start); ``total`` is ``ready + unacked`` (management API). ``since`` and
        ``until`` (epoch seconds) keep a time window, e.g. one burst of a longer watch."""
        t0 = self.started if t0 is None else t0
        rows = [
            s
            for s in self._rows(queue)
            if (since is None or s["t"] >= since) and (until is None or s["t"] <= until)
        ]
        total = [None if s["ready"] is None else s["ready"] + (s["unacked"] or 0) for s in rows]
        columns = {"t": [s["t"] - (t0 or 0.0) for s in rows], "total": total}
        for key in ("ready", "unacked", "consumers", "ready_now", "consumers_now"):
            columns[key] = [s[key] for s in rows]
        return columns

    def peak(self, queue: str | None = None, field: str = "ready_now") -> int:
        """The largest value of ``field`` seen (``ready_now``, ``ready``, ``unacked``, ``total``)."""
        values = [v for v in self.series(queue)[field] if v is not None]
        return max(values) if values else 0

    def last(self, queue: str | None = None) -> dict[str, Any] | None:
        """The latest sample of ``queue``."""
        rows = self._rows(queue)
        return rows[-1] if rows else None

    def refresh_interval(self, queue: str | None = None) -> float | None:
        """Median seconds between two changes of the management API's counts, as sampled
        (None before two changes were seen): the resolution of ``ready``/``unacked``."""
        queues = [queue] if queue else self.queues
        gaps = []
        for q in queues:
            rows = [s for s in self._rows(q) if s["ready"] is not None]
            changes = [
                b["t"]
                for a, b in itertools.pairwise(rows)
                if (a["ready"], a["unacked"]) != (b["ready"], b["unacked"])
            ]
            gaps += [b - a for a, b in itertools.pairwise(changes)]
        return statistics.median(gaps) if gaps else None

    def wait_for(self, predicate: Any, queue: str | None = None, timeout: float = 10.0) -> dict:
        """Block until a new sample of ``queue`` satisfies ``predicate(sample)``; return it."""
        queue = queue or self.queues[0]
        deadline = time.monotonic() + timeout
        with self._lock:
            seen = len(self.samples)
        while time.monotonic() < deadline:
            with self._lock:
                rows = [s for s in self.samples[seen:] if s["queue"] == queue]
                seen = len(self.samples)
            for sample in rows:
                if predicate(sample):
                    return sample
            if not self.running:
                raise RuntimeError("the monitor is not running")
            time.sleep(self.interval / 2)
        raise TimeoutError(
            f"no sample of {queue} matched within {timeout:.1f} s (last: {self.last(queue)})"
        )


def plot_depth(
    runs: Mapping[str, Mapping[str, list]],
    ax: Any = None,
    *,
    api: bool = True,
    exact: bool = True,
    title: str | None = None,
) -> Any:
    """Queue depth over time, one color per run (``{label: monitor.series(...)}``).

    Solid lines: ``ready_now`` (passive ``queue.declare``, exact at each sample). Dashed
    steps: ``ready + unacked`` from the management API, drawn as steps because the API's
    values only change at each statistics collection.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for series, color in zip(runs.values(), colors):
        t = series["t"]
        if exact and any(v is not None for v in series["ready_now"]):
            pts = [(x, y) for x, y in zip(t, series["ready_now"]) if y is not None]
            ax.plot(*zip(*pts), color=color, linewidth=1.8, marker=".", markersize=3)
        if api:
            pts = [(x, y) for x, y in zip(t, series["total"]) if y is not None]
            if pts:
                ax.step(
                    *zip(*pts), where="post", color=color, linewidth=1.2, linestyle="--", alpha=0.6
                )
    run_legend = ax.legend(
        handles=[
            Line2D([], [], color=c, linewidth=2, label=label) for label, c in zip(runs, colors)
        ],
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=9,
        frameon=False,
    )
    ax.add_artist(run_legend)
    styles = []
    if exact:
        styles.append(
            Line2D(
                [], [], color="black", linewidth=1.8, label="ready, exact\n(passive queue.declare)"
            )
        )
    if api:
        styles.append(
            Line2D(
                [],
                [],
                color="black",
                linewidth=1.2,
                linestyle="--",
                alpha=0.6,
                label="ready + unacked\n(management API)",
            )
        )
    ax.legend(
        handles=styles,
        loc="lower left",
        bbox_to_anchor=(1.01, 0.0),
        fontsize=8,
        frameon=False,
        title="source",
        title_fontsize=8,
        alignment="left",
    )
    ax.set_ylabel("messages in the queue")
    ax.set_xlabel("seconds")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)
    return ax
