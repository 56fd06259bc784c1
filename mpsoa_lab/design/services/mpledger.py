"""``mpledger``: an append-only ledger whose writes are idempotent.

=============================  =====  =================================================
Task                           Kind   What it does
=============================  =====  =================================================
``mpledger.async.record_entry`` async records an entry under the caller's ``entry_id``
``mpledger.sync.balance``      sync   sum of an account's entries, in cents
``mpledger.sync.entry_count``  sync   number of entries (of one account, or all)
``mpledger.async.reconcile``   async  a batch job that takes ``seconds`` (long or short work)
=============================  =====  =================================================

``record_entry`` is keyed by the caller's ``entry_id``: delivering the same message twice
stores it once. That is what makes at-least-once delivery (late acks) harmless.
"""

from __future__ import annotations

import time

from ._service import Service

__all__ = [
    "service",
    "sync_app",
    "async_app",
    "record_entry",
    "balance",
    "entry_count",
    "reconcile",
]

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    entry_id TEXT PRIMARY KEY, account TEXT NOT NULL, amount_cents INTEGER NOT NULL, at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS reconciliations (
    id INTEGER PRIMARY KEY AUTOINCREMENT, batch_id TEXT NOT NULL, seconds REAL NOT NULL,
    started REAL NOT NULL, finished REAL NOT NULL
);
"""

service = Service("mpledger", SCHEMA)
sync_app, async_app = service.sync_app, service.async_app


@async_app.task(name="mpledger.async.record_entry")
def record_entry(entry_id: str, account: str, amount_cents: int) -> bool:
    """Store the entry once; return whether this delivery was the first."""
    if not entry_id or not account:
        raise ValueError("entry_id and account are required")
    if not isinstance(amount_cents, int) or isinstance(amount_cents, bool):
        raise ValueError(f"amount_cents must be an integer, not {amount_cents!r}")
    with service.storage.connect() as db:
        cur = db.execute(
            "INSERT OR IGNORE INTO entries (entry_id, account, amount_cents, at) "
            "VALUES (?, ?, ?, ?)",
            (entry_id, account, amount_cents, time.time()),
        )
        return cur.rowcount == 1


@sync_app.task(name="mpledger.sync.balance")
def balance(account: str) -> int:
    rows = service.storage.query(
        "SELECT COALESCE(SUM(amount_cents), 0) AS total FROM entries WHERE account = ?", (account,)
    )
    return rows[0]["total"]


@sync_app.task(name="mpledger.sync.entry_count")
def entry_count(account: str | None = None) -> int:
    if account is None:
        return service.storage.query("SELECT COUNT(*) AS n FROM entries")[0]["n"]
    return service.storage.query("SELECT COUNT(*) AS n FROM entries WHERE account = ?", (account,))[
        0
    ]["n"]


@async_app.task(name="mpledger.async.reconcile")
def reconcile(batch_id: str, seconds: float) -> None:
    """A batch job of known length (it sleeps ``seconds``): the long and short tasks of
    the prefetch experiments. Which worker ran it is in the service's execution log."""
    if not 0 <= seconds <= 60:
        raise ValueError(f"seconds must be between 0 and 60, not {seconds!r}")
    started = time.time()
    time.sleep(seconds)
    with service.storage.connect() as db:
        db.execute(
            "INSERT INTO reconciliations (batch_id, seconds, started, finished) "
            "VALUES (?, ?, ?, ?)",
            (batch_id, seconds, started, time.time()),
        )
