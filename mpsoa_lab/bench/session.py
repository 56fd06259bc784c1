"""One benchmark run's shared state and plumbing: its publisher apps, broker connections,
workers and raw responder, set up on entry and all stopped and cleaned up on exit.

The three parts (:mod:`.sync_roundtrip`, :mod:`.publish`, :mod:`.end_to_end`) are functions of
a :class:`BenchSession`. Every worker and the responder of a run is named after its
:attr:`~BenchSession.prefix`, and so are the rows they write in the service's storage: clean-up
removes those rows and nothing else.
"""

from __future__ import annotations

import contextlib
import secrets
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .raw import RawSyncClient, start_responder, wait_responder_ready
from .rounds import wait_for
from .storage import Storage
from .workload import ASYNC_QUEUE, E2E_POOLS, POOLS, SYNC_QUEUE, WORKER_OPTIONS, Counts

if TYPE_CHECKING:
    from celery import Celery

    from ..running.lab import Lab

__all__ = ["BenchSession"]


class BenchSession:
    """One benchmark run: its apps, processes, storage and figures. Use as a context manager."""

    def __init__(
        self,
        lab: Lab,
        counts: Counts,
        log: Callable[[str], None],
        e2e_pools: tuple[str, ...] = E2E_POOLS,
    ):
        self.lab, self.counts, self.log, self.e2e_pools = lab, counts, log, tuple(e2e_pools)
        self.run_id = secrets.token_hex(3)
        self.prefix = f"bench-{self.run_id}-"
        self.workers: dict[str, Any] = {}
        self.responder = None
        self.responder_name = f"{self.prefix}raw-responder"
        self.stack = contextlib.ExitStack()

    # -- set-up and clean-up ----------------------------------------------------------------
    def __enter__(self) -> BenchSession:  # noqa: PYI034 - not subclassed
        from kombu import Connection

        self.lab.prepare_topology(purge=False)  # declare the platform's queues, empty nothing
        self.sync_app, self.async_app = self.publisher_apps()
        self.broker = {
            role: self.stack.enter_context(Connection(b.url))
            for role, b in self.lab.brokers.items()
        }
        self.purged = {
            SYNC_QUEUE: self.purge("sync", SYNC_QUEUE),
            ASYNC_QUEUE: self.purge("async", ASYNC_QUEUE),
        }
        self.stack.callback(self._cleanup)
        try:
            self._start_processes()
        except BaseException:
            self.stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.close()

    def publisher_apps(self) -> tuple[Celery, Celery]:
        """A fresh sync and async publisher app on the lab's brokers, recommended settings."""
        from ..design.apps import celery_apps_factory

        sync_app, async_app = celery_apps_factory(
            "PUBLISHER", self.lab.sync.url, self.lab.async_.url, "mpledger"
        )
        for app in (sync_app, async_app):
            app.conf.update(
                broker_pool_limit=10,
                task_send_sent_event=False,
                task_publish_retry=True,
                result_persistent=False,
            )
        return sync_app, async_app

    def _start_processes(self) -> None:
        """The sync workers of part (a), one per pool, and the raw responder, all at once."""
        from ..running.workers import start_worker

        self.log("starting the sync workers and the raw responder ...")
        started = time.monotonic()
        for pool in POOLS:
            name = f"{self.prefix}sync-{pool}"
            self.workers[name] = start_worker(
                self.lab, "mpledger", "sync", name, wait=False, pool=pool, **WORKER_OPTIONS
            )
        self.responder, self.responder_log = start_responder(self.lab, self.responder_name)
        for worker in self.workers.values():
            worker.wait_ready(60)
        raw = RawSyncClient(self.lab.sync.url)
        self.stack.callback(raw.close)
        self.raw = raw
        wait_responder_ready(self.responder, self.responder_log, self.raw, self.prefix)
        self.log(f"ready in {time.monotonic() - started:.1f} s")

    def _cleanup(self) -> None:
        """Stop the workers (remote shutdown wakes idle solo workers) and the responder;
        remove this run's rows from the service's storage; leave the queues empty."""
        self.stop_workers(list(self.workers))
        if self.responder is not None:
            self.responder.stop(10, keep_ports=False)
            self.lab.forget(self.responder)
        for role, queue in (("sync", SYNC_QUEUE), ("async", ASYNC_QUEUE)):
            with contextlib.suppress(Exception):
                self.purge(role, queue)
        path = self.storage_path()
        if path.exists():
            db = Storage(path)
            try:  # the tables exist once a task ran; nothing to remove otherwise
                # Every worker and the responder of this run is named after its prefix.
                db.conn.execute(
                    "DELETE FROM executions WHERE hostname LIKE ?", (self.prefix + "%",)
                )
                db.conn.execute("DELETE FROM entries WHERE entry_id LIKE ?", (self.prefix + "%",))
            except sqlite3.OperationalError:
                pass
            finally:
                db.close()
        with contextlib.suppress(Exception):  # the rpc:// reply consumer has its own connection
            self.sync_app.backend.result_consumer.stop()
        for app in (self.sync_app, self.async_app):
            with contextlib.suppress(Exception):
                app.close()

    # -- broker and storage ------------------------------------------------------------------
    def storage_path(self) -> Path:
        """The ``mpledger`` service's SQLite file."""
        return self.lab.settings.data_dir / "mpledger.sqlite3"

    def queue_state(self, role: str, queue: str) -> tuple[int, int]:
        """``(messages, consumers)`` as the broker reports them (passive queue.declare)."""
        channel = self.broker[role].default_channel
        _, messages, consumers = channel.queue_declare(queue, passive=True)
        return messages, consumers

    def purge(self, role: str, queue: str) -> int:
        """Empty ``queue`` on the ``role`` broker; return how many messages it held."""
        return self.broker[role].default_channel.queue_purge(queue) or 0

    # -- workers ------------------------------------------------------------------------------
    def consume_only(self, kind: str, queue: str, active: list[str]) -> None:
        """Let only the ``active`` workers of ``kind`` consume ``queue``; check on the broker."""
        mine = [w for n, w in self.workers.items() if w.kind == kind]
        parked = [w.hostname for w in mine if w.name not in active]
        on = [self.workers[n].hostname for n in active]
        control = mine[0].app.control
        if parked:
            control.cancel_consumer(queue, destination=parked, reply=True, timeout=5)
        if on:
            control.add_consumer(queue, destination=on, reply=True, timeout=5)
        # Both commands act soon after they reply: wait for the broker to show the result.
        if not wait_for(lambda: self.queue_state(kind, queue)[1] == len(on), 10):
            raise RuntimeError(
                f"{queue}: expected {len(on)} consumers, the broker shows "
                f"{self.queue_state(kind, queue)[1]}"
            )

    def start_async_workers(self, names: list[str], pool: str) -> None:
        """Start async workers ``names`` of ``pool``; return once the broker shows them all."""
        from ..running.workers import start_worker

        for name in names:
            self.workers[name] = start_worker(
                self.lab, "mpledger", "async", name, wait=False, pool=pool, **WORKER_OPTIONS
            )
        for name in names:
            self.workers[name].wait_ready(60)
        if not wait_for(
            lambda: (
                self.queue_state("async", ASYNC_QUEUE)[1]
                == sum(w.kind == "async" for w in self.workers.values())
            ),
            10,
        ):
            raise RuntimeError(f"{ASYNC_QUEUE}: the broker does not show the workers' consumers")

    def stop_workers(self, names: list[str]) -> None:
        """Warm shutdown; Celery's remote ``shutdown`` first, which wakes an idle solo worker."""
        from ..running.workers import stop_all

        workers = [self.workers.pop(name) for name in names]
        if not workers:
            return
        with contextlib.suppress(Exception):
            workers[0].app.control.shutdown(destination=[w.hostname for w in workers])
        stop_all(workers, timeout=20)
