"""Each service's own storage: one SQLite file, plus a log of every task execution.

The execution log is how the lab counts, instead of estimating, what a service processed:
one row per run of a task, with the task id, the worker's hostname and pid, and the start
and end times. A message processed twice shows up as two rows with the same task id.

The failed tasks are kept too (:meth:`Storage.failed_tasks`): an async task has no caller
waiting for its error, so when one fails its name, its arguments (as JSON) and the error are
stored where a person can find and count them, not only logged by the worker.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..values import json_safe

__all__ = ["Storage"]

_LOGS = """
CREATE TABLE IF NOT EXISTS executions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT,
    task_name TEXT NOT NULL,
    hostname TEXT,
    pid INTEGER,
    started REAL NOT NULL,
    finished REAL NOT NULL,
    succeeded INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS failed_tasks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT,
    task_name TEXT NOT NULL,
    arguments TEXT NOT NULL,
    error_type TEXT NOT NULL,
    error TEXT NOT NULL,
    at REAL NOT NULL
);
"""


class Storage:
    """A SQLite database shared by every worker process of one service on this machine."""

    def __init__(self, path: Path, schema: str):
        self.path = Path(path)
        self.schema = schema + _LOGS
        self._ready = False
        # One transaction at a time per process: threads of one worker (a ``threads`` pool of
        # 100) queue here, in order, instead of in SQLite's busy handler, which sleeps up to
        # 100 ms between tries and made 75 threads answer 30 calls a second (notebook 08).
        self._lock = threading.RLock()

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection in one transaction: committed on success, rolled back on error."""
        with self._lock:
            yield from self._transaction()

    def _transaction(self) -> Iterator[sqlite3.Connection]:
        if not self._ready:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            if not self._ready:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(self.schema)
                self._ready = True
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self.connect() as conn:
            return [dict(row) for row in conn.execute(sql, params)]

    def tables(self) -> list[str]:
        rows = self.query(
            "SELECT name FROM sqlite_master WHERE type='table' "
            "AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
        return [row["name"] for row in rows]

    def counts(self) -> dict[str, int]:
        """Rows per table: what the service has stored so far."""
        return {t: self.query(f"SELECT COUNT(*) AS n FROM {t}")[0]["n"] for t in self.tables()}

    def reset(self) -> None:
        """Empty every table and restart the ids at 1 (between two experiments)."""
        with self.connect() as conn:
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
            ).fetchall():
                conn.execute(f"DELETE FROM {name}")
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name='sqlite_sequence'").fetchone():
                conn.execute("DELETE FROM sqlite_sequence")

    def record_execution(
        self,
        task_id: str | None,
        task_name: str,
        hostname: str | None,
        pid: int,
        started: float,
        finished: float,
        succeeded: bool,
    ) -> None:
        with self.connect() as conn:
            conn.execute(
                "INSERT INTO executions (task_id, task_name, hostname, pid, started, finished, "
                "succeeded) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (task_id, task_name, hostname, pid, started, finished, int(succeeded)),
            )

    def executions(self, task_name: str | None = None) -> list[dict[str, Any]]:
        if task_name is None:
            return self.query("SELECT * FROM executions ORDER BY id")
        return self.query("SELECT * FROM executions WHERE task_name = ? ORDER BY id", (task_name,))

    def record_failure(
        self,
        task_id: str | None,
        task_name: str,
        args: Any,
        kwargs: Any,
        exc: BaseException,
    ) -> None:
        """Keep a failed task: its arguments as strict JSON (a NaN or a lone surrogate a
        publisher sent is written as text), the error's type and message."""
        arguments = json.dumps(json_safe({"args": args, "kwargs": kwargs}), allow_nan=False)
        error = json_safe(str(exc))
        with self.connect() as conn:
            conn.execute(
                "INSERT INTO failed_tasks (task_id, task_name, arguments, error_type, error, at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (json_safe(task_id), task_name, arguments, type(exc).__name__, error, time.time()),
            )

    def failed_tasks(self, task_name: str | None = None) -> list[dict[str, Any]]:
        """The failed tasks kept so far, oldest first, each with its ``arguments`` parsed."""
        where, params = ("WHERE task_name = ?", (task_name,)) if task_name else ("", ())
        rows = self.query(f"SELECT * FROM failed_tasks {where} ORDER BY id", params)
        return [{**row, "arguments": json.loads(row["arguments"])} for row in rows]
