"""PostgreSQL connections: reads without a transaction, a pooled connection the server closed, and
no ping for one it did not.

Run against the real server (SHEPHERD_TEST_DATABASE_URL); the server closing a connection is
``pg_terminate_backend``, what a restart or an idle-connection timeout does to it.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, text

from gates.ports import InitiativeFilter
from storage import Database
from tests.storage.conftest import PG_URL

pytestmark = pytest.mark.postgres


def _backend_pid(database: Database) -> int:
    with database.session() as session:
        return int(session.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(pid: int) -> None:
    """End the backend ``pid`` and wait until it is gone: the server only signals it, and a
    restart between two requests is never that close to the next one."""
    admin = create_engine(PG_URL)
    try:
        with admin.begin() as connection:
            assert connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with admin.connect() as connection:
                alive = connection.execute(
                    text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
                ).scalar_one()
            if not alive:
                return
            time.sleep(0.01)
        raise AssertionError(f"backend {pid} still running 5 s after pg_terminate_backend")
    finally:
        admin.dispose()


def _pooled_to_one_connection(postgres_database: Database) -> Database:
    """The same schema through a pool of one connection, so the test knows which one is used."""
    return Database(postgres_database.url, pool_size=1)


def test_a_read_only_unit_of_work_reads_outside_any_transaction(postgres_database: Database) -> None:
    # No BEGIN / ROLLBACK round trips for a status reply: at READ COMMITTED each statement has
    # its own snapshot anyway. The same pooled connection then writes inside a transaction again.
    database = _pooled_to_one_connection(postgres_database)
    try:
        with database.session(read_only=True) as session:
            in_transaction = session.execute(text("SELECT now() <> statement_timestamp()")).scalar_one()
        with database.session() as session:
            in_write_transaction = session.execute(text("SELECT now() <> statement_timestamp()")).scalar_one()
    finally:
        database.dispose()
    assert in_transaction is False
    assert in_write_transaction is True


def test_a_pooled_connection_the_server_closed_is_replaced_before_use(postgres_database: Database) -> None:
    # A read in autocommit still goes through the pool's check (``_ping_when_in_doubt``: the
    # closed socket is readable, so the connection is pinged and replaced): a restart of the
    # server between two requests costs neither of them.
    database = _pooled_to_one_connection(postgres_database)
    try:
        first = _backend_pid(database)
        _terminate(first)
        with database.uow(read_only=True) as uow:
            assert uow.initiatives.list(InitiativeFilter()) == []
        assert _backend_pid(database) != first
    finally:
        database.dispose()


def test_only_a_connection_the_server_closed_costs_a_ping(
    postgres_database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A ping is a round trip before every unit of work; a connection nobody has written to since
    # its last use is known to be alive without one.
    database = _pooled_to_one_connection(postgres_database)
    dialect = database.engine.dialect
    ping, pings = dialect.do_ping, []
    monkeypatch.setattr(dialect, "do_ping", lambda connection: pings.append(connection) or ping(connection))
    try:
        for _ in range(3):
            with database.uow(read_only=True) as uow:
                uow.initiatives.list(InitiativeFilter())
        healthy = len(pings)
        _terminate(_backend_pid(database))
        with database.uow(read_only=True) as uow:
            assert uow.initiatives.list(InitiativeFilter()) == []
    finally:
        database.dispose()
    assert healthy == 0
    assert len(pings) == 1


def test_repeated_reads_stay_prepared_on_the_server(postgres_database: Database) -> None:
    # psycopg prepares a statement on its fifth run and deallocates everything at a ROLLBACK; a
    # read that ended in one (as read transactions did) made the server plan every query again.
    database = _pooled_to_one_connection(postgres_database)
    try:
        for _ in range(8):
            with database.uow(read_only=True) as uow:
                uow.initiatives.list(InitiativeFilter())
        with database.session(read_only=True) as session:
            prepared = session.execute(text("SELECT count(*) FROM pg_prepared_statements")).scalar_one()
    finally:
        database.dispose()
    assert prepared >= 1


def test_tables_left_alone_by_autovacuum_are_named(postgres_database: Database) -> None:
    with postgres_database.engine.connect() as connection:
        server_wide = connection.exec_driver_sql("SHOW autovacuum").scalar() == "on"
    before = postgres_database.tables_without_autovacuum()
    assert before == ([] if server_wide else ["inbox", "outbox", "counters"])
    with postgres_database.engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE inbox SET (autovacuum_enabled = off)")
    assert "inbox" in (postgres_database.tables_without_autovacuum() or [])
    with postgres_database.engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE inbox RESET (autovacuum_enabled)")
    assert postgres_database.tables_without_autovacuum() == before
