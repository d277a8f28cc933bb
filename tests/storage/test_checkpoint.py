"""SQLite's write-ahead log is checkpointed by a thread of its own, never inside a commit."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

from storage import Database, sqlite_url
from storage.checkpoint import WalCheckpointer

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_commits_leave_the_log_to_the_checkpoint_thread_which_copies_it_back(tmp_path: Path) -> None:
    database = Database(sqlite_url(tmp_path))
    try:
        database.upgrade()
        with database.engine.connect() as connection:
            assert connection.execute(text("PRAGMA wal_autocheckpoint")).scalar() == 0
        for n in range(300):  # past the 256 writes that wake the thread before its second is up
            assert database.claim(f"event:{n}", NOW)
        checkpointer = database._checkpointer
        assert checkpointer is not None
        deadline = time.monotonic() + 10
        while checkpointer.checkpoints == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert checkpointer.checkpoints >= 1
        assert not database.claim("event:7", NOW)  # what was written is still there
        thread = checkpointer._thread
    finally:
        database.dispose()
    assert thread is not None and not thread.is_alive()  # dispose stops it


def test_the_thread_ends_when_idle_or_stopped_and_a_write_starts_it_again(tmp_path: Path) -> None:
    database_file = tmp_path / "shepherd.db"
    migrated = Database(sqlite_url(tmp_path))
    migrated.upgrade()
    migrated.dispose()
    checkpointer = WalCheckpointer(str(database_file), interval=0.05, idle=0.2)
    try:
        checkpointer.wrote()
        first = checkpointer._thread
        assert first is not None
        first.join(timeout=5)
        assert not first.is_alive() and checkpointer._thread is None
        assert checkpointer.checkpoints == 1
        checkpointer.wrote()
        second = checkpointer._thread
        assert second is not None and second is not first
        checkpointer.stop()  # as Database.dispose does; SQLAlchemy reopens connections after it
        assert not second.is_alive()
        checkpointer.wrote()
        assert checkpointer._thread is not None and checkpointer._thread.is_alive()
    finally:
        checkpointer.stop()


def test_a_database_that_never_writes_starts_no_thread(tmp_path: Path) -> None:
    database = Database(sqlite_url(tmp_path))
    try:
        with database.uow(read_only=True) as uow:
            uow.session.connection().execute(text("SELECT 1"))
        assert database._checkpointer is not None and database._checkpointer._thread is None
    finally:
        database.dispose()
