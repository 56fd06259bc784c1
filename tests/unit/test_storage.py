"""A service's SQLite storage: counts, the execution log, the failed tasks, and a reset that
really resets."""

from __future__ import annotations

from mpsoa_lab.design.services.storage import Storage

SCHEMA = "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT);"


def test_counts_and_executions(tmp_path):
    storage = Storage(tmp_path / "s.sqlite3", SCHEMA)
    with storage.connect() as db:
        db.execute("INSERT INTO items (name) VALUES ('a')")
    storage.record_execution("t1", "mplogin.sync.register", "w@h", 1, 1.0, 2.0, True)
    storage.record_execution("t1", "mplogin.sync.register", "w@h", 1, 3.0, 4.0, False)
    assert storage.counts() == {"executions": 2, "failed_tasks": 0, "items": 1}
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


def test_a_failed_task_is_kept_with_its_arguments_as_strict_json(tmp_path):
    storage = Storage(tmp_path / "s.sqlite3", SCHEMA)
    hostile = {"entry_id": "\ud800", "account": "a", "amount_cents": float("nan"), "n": 2**5000}
    storage.record_failure("t1", "mpledger.async.record_entry", (), hostile, ValueError("no"))
    storage.record_failure("t2", "mplogin.async.record_login", ["ada"], {}, KeyError("x"))
    kept = storage.failed_tasks()
    assert [row["task_id"] for row in kept] == ["t1", "t2"]
    first = kept[0]
    assert (first["error_type"], first["error"]) == ("ValueError", "no")
    assert first["arguments"]["kwargs"] == {
        "entry_id": "\\ud800",  # escaped: SQLite and UTF-8 cannot hold a lone surrogate
        "account": "a",
        "amount_cents": "nan",  # strict JSON has no NaN
        "n": "an integer of 5001 bits",
    }
    assert [r["task_id"] for r in storage.failed_tasks("mplogin.async.record_login")] == ["t2"]
    assert storage.counts()["failed_tasks"] == 2
    storage.reset()
    assert storage.failed_tasks() == []
