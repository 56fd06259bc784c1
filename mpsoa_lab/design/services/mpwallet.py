"""``mpwallet``: one wallet per user, with a balance in cents.

=============================  =====  =================================================
Task                           Kind   What it does
=============================  =====  =================================================
``mpwallet.sync.open_wallet``  sync   opens the user's wallet (again: returns the same)
``mpwallet.sync.get_balance``  sync   the wallet's balance in cents
``mpwallet.sync.deposit``      sync   adds money; returns the new balance
``mpwallet.async.credit``      async  adds money, fire and forget
``mpwallet.sync.echo``         sync   answers at once: no storage, no execution log
=============================  =====  =================================================

``echo`` is the lab's own, not the 2014 design's: a call with no service work at all, so that
what the middleware itself costs per call shows (notebook 09 puts it beside ``get_balance``).

Ids and amounts are integers from 1 to 2**53 - 1 (:mod:`mpsoa_lab.design.values`; anything
else is :class:`~mpsoa_lab.design.values.InvalidInput`), and a balance never goes past 2**53 - 1:
a deposit or credit that would take it there raises
:class:`~mpsoa_lab.design.values.LimitReached` and changes nothing (checked and written in one
transaction).

``deposit`` and ``credit`` are *not* idempotent: run twice, they add twice. The ledger
(:mod:`mpsoa_lab.design.services.mpledger`) shows the idempotent way.
"""

from __future__ import annotations

import time

from celery import Task

from ..values import check_amount, check_id, check_total
from ._service import Service

__all__ = [
    "service",
    "sync_app",
    "async_app",
    "open_wallet",
    "get_balance",
    "deposit",
    "credit",
    "echo",
    "WalletNotFound",
]

SCHEMA = """
CREATE TABLE IF NOT EXISTS wallets (
    user_id INTEGER PRIMARY KEY, balance_cents INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS movements (
    id INTEGER PRIMARY KEY AUTOINCREMENT, user_id INTEGER NOT NULL, amount_cents INTEGER NOT NULL,
    via TEXT NOT NULL, at REAL NOT NULL
);
"""

service = Service("mpwallet", SCHEMA)
sync_app, async_app = service.sync_app, service.async_app


class WalletNotFound(LookupError):
    """The user has no wallet."""


def _add(user_id: int, amount_cents: int, via: str) -> int:
    """Add to a wallet in one transaction: refused, balance unchanged, past the bound."""
    check_id(user_id)
    check_amount(amount_cents)
    with service.storage.connect() as db:
        row = db.execute(
            "SELECT balance_cents FROM wallets WHERE user_id = ?", (user_id,)
        ).fetchone()
        if row is None:
            raise WalletNotFound(
                f"user {user_id} has no wallet; call mpwallet.sync.open_wallet first"
            )
        balance = check_total(row[0], amount_cents, f"the wallet of user {user_id}")
        db.execute("UPDATE wallets SET balance_cents = ? WHERE user_id = ?", (balance, user_id))
        db.execute(
            "INSERT INTO movements (user_id, amount_cents, via, at) VALUES (?, ?, ?, ?)",
            (user_id, amount_cents, via, time.time()),
        )
        return balance


@sync_app.task(name="mpwallet.sync.open_wallet")
def open_wallet(user_id: int) -> dict:
    check_id(user_id)
    with service.storage.connect() as db:
        db.execute(
            "INSERT OR IGNORE INTO wallets (user_id, balance_cents, created) VALUES (?, 0, ?)",
            (user_id, time.time()),
        )
        row = db.execute(
            "SELECT user_id, balance_cents FROM wallets WHERE user_id = ?", (user_id,)
        ).fetchone()
    return dict(row)


@sync_app.task(name="mpwallet.sync.get_balance")
def get_balance(user_id: int) -> int:
    check_id(user_id)
    rows = service.storage.query("SELECT balance_cents FROM wallets WHERE user_id = ?", (user_id,))
    if not rows:
        raise WalletNotFound(f"user {user_id} has no wallet")
    return rows[0]["balance_cents"]


@sync_app.task(name="mpwallet.sync.deposit")
def deposit(user_id: int, amount_cents: int) -> int:
    return _add(user_id, amount_cents, "deposit")


@async_app.task(name="mpwallet.async.credit")
def credit(user_id: int, amount_cents: int) -> None:
    _add(user_id, amount_cents, "credit")


# A plain Celery task, not the service's recording one: nothing is stored, not even the run.
@sync_app.task(name="mpwallet.sync.echo", base=Task)
def echo(user_id: int) -> int:
    return check_id(user_id)
