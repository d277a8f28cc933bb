"""A read-only unit of work (status replies, listings): its reads see one moment on SQLite,
it hands its connection back, and it refuses to commit. On SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from gates.ports import InitiativeFilter
from storage import Database
from storage.database import sqlite_url
from tests.storage.scenarios import register


def _checked_out(database: Database) -> int:
    return int(database.engine.pool.checkedout())  # type: ignore[attr-defined]


def test_reads_return_what_was_committed_and_the_connection_goes_back(database: Database) -> None:
    ref = register(database)
    with database.uow(read_only=True) as uow:
        assert uow.initiatives.get(ref).name == "Invoice matching"
        assert [i.ref for i in uow.initiatives.list(InitiativeFilter())] == [ref]
        assert _checked_out(database) == 1
    assert _checked_out(database) == 0


def test_on_sqlite_its_reads_see_one_moment(tmp_path: Path) -> None:
    # A status reply reads the initiative, then its answers: a page saved in between must not
    # show up in the second read only. (PostgreSQL reads at READ COMMITTED, statement by
    # statement, by design: see test_postgres_connections.)
    database = Database(sqlite_url(tmp_path))
    database.upgrade()
    try:
        _reads_see_one_moment(database)
    finally:
        database.dispose()


def _reads_see_one_moment(database: Database) -> None:
    register(database, name="First")
    with database.uow(read_only=True) as uow:
        before = uow.initiatives.list(InitiativeFilter())
        register(database, name="Second")
        again = uow.initiatives.list(InitiativeFilter())
    with database.uow(read_only=True) as uow:
        after = uow.initiatives.list(InitiativeFilter())
    assert [i.name for i in before] == [i.name for i in again] == ["First"]
    assert sorted(i.name for i in after) == ["First", "Second"]


def test_it_refuses_to_commit_and_still_hands_its_connection_back(database: Database) -> None:
    ref = register(database)
    with pytest.raises(RuntimeError, match="read-only"), database.uow(read_only=True) as uow:
        uow.initiatives.get(ref)
        uow.commit()
    assert _checked_out(database) == 0


def test_an_error_inside_leaves_no_connection_out(database: Database) -> None:
    with pytest.raises(ZeroDivisionError), database.uow(read_only=True) as uow:
        uow.initiatives.list(InitiativeFilter())
        _ = 1 / 0
    assert _checked_out(database) == 0
