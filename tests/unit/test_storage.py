"""A service's SQLite storage: counts, the execution log, and a reset that really resets."""

from __future__ import annotations

from mpsoa_lab.design.services.storage import Storage

SCHEMA = "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT);"


def test_counts_and_executions(tmp_path):
    storage = Storage(tmp_path / "s.sqlite3", SCHEMA)
    with storage.connect() as db:
        db.execute("INSERT INTO items (name) VALUES ('a')")
    storage.record_execution("t1", "mplogin.sync.register", "w@h", 1, 1.0, 2.0, True)
    storage.record_execution("t1", "mplogin.sync.register", "w@h", 1, 3.0, 4.0, False)
    assert storage.counts() == {"executions": 2, "items": 1}
    assert [e["succeeded"] for e in storage.executions("mplogin.sync.register")] == [1, 0]


def test_failed_transaction_rolls_back(tmp_path):
    storage = Storage(tmp_path / "s.sqlite3", SCHEMA)
    try:
        with storage.connect() as db:
            db.execute("INSERT INTO items (name) VALUES ('a')")
            raise RuntimeError("task failed half way")
    except RuntimeError:
        pass
    assert storage.counts()["items"] == 0


def test_reset_restarts_ids(tmp_path):
    storage = Storage(tmp_path / "s.sqlite3", SCHEMA)
    for _ in range(2):
        with storage.connect() as db:
            first = db.execute("INSERT INTO items (name) VALUES ('a')").lastrowid
        storage.reset()
        assert first == 1
        assert storage.counts()["items"] == 0
