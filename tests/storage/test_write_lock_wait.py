"""A SQLite writer that has to wait for the write lock says so (``while_waiting_for_lock``), so
the HTTP server can let another request run meanwhile; one that does not wait says nothing."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import text

from storage import Database, sqlite_url


class Waits:
    def __init__(self) -> None:
        self.entered = threading.Event()
        self.events: list[str] = []

    @contextmanager
    def __call__(self) -> Iterator[None]:
        self.events.append("wait")
        self.entered.set()
        try:
            yield
        finally:
            self.events.append("got the lock")


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    database = Database(sqlite_url(tmp_path))
    database.upgrade()
    yield database
    database.dispose()


def write(database: Database, done: list[str]) -> None:
    with database.session() as session:
        session.execute(text("insert into role_holders (role, user_id) values ('sponsor', 'U0ONE')"))
        session.commit()
    done.append("written")


def test_an_uncontended_write_does_not_wait(database: Database) -> None:
    waits = Waits()
    database.while_waiting_for_lock = waits
    done: list[str] = []
    write(database, done)
    assert done == ["written"]
    assert waits.events == []


def test_a_write_behind_another_process_waits_inside_the_hook(database: Database, tmp_path: Path) -> None:
    waits = Waits()
    database.while_waiting_for_lock = waits
    other = sqlite3.connect(tmp_path / "shepherd.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    done: list[str] = []
    writer = threading.Thread(target=write, args=(database, done))
    writer.start()
    try:
        assert waits.entered.wait(5), "the writer did not report its wait"
        assert done == []
        waits.events.append("other released")
    finally:
        other.execute("COMMIT")
        other.close()
    writer.join(10)
    assert done == ["written"]
    assert waits.events == ["wait", "other released", "got the lock"]


def test_a_write_queued_behind_a_writer_of_this_process_waits_inside_the_hook(database: Database) -> None:
    waits = Waits()
    database.while_waiting_for_lock = waits
    holding = threading.Event()
    release = threading.Event()

    def first() -> None:
        with database.session() as session:
            session.execute(text("insert into role_holders (role, user_id) values ('sponsor', 'U0FIRST')"))
            holding.set()
            release.wait(10)
            session.commit()

    holder = threading.Thread(target=first)
    holder.start()
    assert holding.wait(5)
    done: list[str] = []
    writer = threading.Thread(target=write, args=(database, done))
    writer.start()
    assert waits.entered.wait(5), "the queued writer did not report its wait"
    assert done == []
    release.set()
    holder.join(10)
    writer.join(10)
    assert done == ["written"]
    assert waits.events == ["wait", "got the lock"]
