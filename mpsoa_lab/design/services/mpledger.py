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

An entry is an integer of cents from -(2**53 - 1) to 2**53 - 1, not 0, and an account's
balance (the sum of its entries) never goes past 2**53 - 1 either way: an entry that would take
it there raises :class:`~mpsoa_lab.design.values.LimitReached` and is not stored (the bound is
checked against ``account_totals``, a running sum kept in the same transaction as the entry,
so the check costs one row, not a scan of the account). Entry ids and accounts follow
:data:`~mpsoa_lab.design.values.TEXT_RULES`. ``record_entry`` is async: a refused entry is kept
in the service's failed tasks (``service.storage.failed_tasks()``).
"""

from __future__ import annotations

import time

from ..values import InvalidInput, check_entry_cents, check_text, check_total, describe
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
CREATE TABLE IF NOT EXISTS account_totals (
    account TEXT PRIMARY KEY, total_cents INTEGER NOT NULL
);
-- a ledger written before account_totals existed: its sums, once (later entries keep them)
INSERT OR IGNORE INTO account_totals (account, total_cents)
    SELECT account, SUM(amount_cents) FROM entries GROUP BY account;
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
    check_text(entry_id, "entry_id")
    check_text(account, "account")
    check_entry_cents(amount_cents)
    with service.storage.connect() as db:
        if db.execute("SELECT 1 FROM entries WHERE entry_id = ?", (entry_id,)).fetchone():
            return False  # delivered again: stored once, whatever the account's sum is now
        row = db.execute(
            "SELECT total_cents FROM account_totals WHERE account = ?", (account,)
        ).fetchone()
        total = check_total(row[0] if row else 0, amount_cents, f"account {account!r}")
        db.execute(
            "INSERT INTO entries (entry_id, account, amount_cents, at) VALUES (?, ?, ?, ?)",
            (entry_id, account, amount_cents, time.time()),
        )
        db.execute(
            "INSERT INTO account_totals (account, total_cents) VALUES (?, ?) "
            "ON CONFLICT (account) DO UPDATE SET total_cents = excluded.total_cents",
            (account, total),
        )
        return True


@sync_app.task(name="mpledger.sync.balance")
def balance(account: str) -> int:
    check_text(account, "account")
    rows = service.storage.query(
        "SELECT COALESCE(SUM(amount_cents), 0) AS total FROM entries WHERE account = ?", (account,)
    )
    return rows[0]["total"]


@sync_app.task(name="mpledger.sync.entry_count")
def entry_count(account: str | None = None) -> int:
    if account is None:
        return service.storage.query("SELECT COUNT(*) AS n FROM entries")[0]["n"]
    check_text(account, "account")
    sql = "SELECT COUNT(*) AS n FROM entries WHERE account = ?"
    return service.storage.query(sql, (account,))[0]["n"]


@async_app.task(name="mpledger.async.reconcile")
def reconcile(batch_id: str, seconds: float) -> None:
    """A batch job of known length (it sleeps ``seconds``): the long and short tasks of
    the prefetch experiments. Which worker ran it is in the service's execution log."""
    check_text(batch_id, "batch_id")
    if type(seconds) not in (int, float) or not 0 <= seconds <= 60:  # NaN fails the range too
        raise InvalidInput(f"seconds must be a number from 0 to 60, not {describe(seconds)}")
    started = time.time()
    time.sleep(seconds)
    with service.storage.connect() as db:
        db.execute(
            "INSERT INTO reconciliations (batch_id, seconds, started, finished) "
            "VALUES (?, ?, ?, ?)",
            (batch_id, seconds, started, time.time()),
        )
