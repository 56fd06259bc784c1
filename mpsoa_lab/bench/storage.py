"""The service's SQLite storage as the benchmark reads it: execution log and ledger rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

__all__ = ["Storage"]


class Storage:
    """The service's SQLite file, read without taking its write lock (WAL readers don't block)."""

    def __init__(self, path: Path):
        # Autocommit: every read sees the latest commit.
        self.conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        self.conn.row_factory = sqlite3.Row

    def query(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        """All rows of ``sql``."""
        return self.conn.execute(sql, params).fetchall()

    def last_id(self) -> int:
        """The id of the latest row in the execution log (0 when it is empty)."""
        return self.query("SELECT COALESCE(MAX(id), 0) AS m FROM executions")[0]["m"]

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()
