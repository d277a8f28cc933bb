"""The few statements whose SQL differs between SQLite and PostgreSQL."""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import JSON, Column, ColumnElement, Table, any_, bindparam, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert


def insert_ignoring_conflicts(session: Session, table: Table, values: dict[str, Any]) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING``: the row is written unless a unique key already is.

    The database decides, so two processes inserting the same key at once write one row, and
    the loser learns it from ``rowcount == 0`` without an error that would abort its transaction.
    """
    name = session.get_bind().dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).values(**values).on_conflict_do_nothing()
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).values(**values).on_conflict_do_nothing()
    raise NotImplementedError(f"Shepherd supports SQLite and PostgreSQL, not {name}")


@cache
def insert_ignoring_conflicts_for(dialect: str, table: Table) -> Insert:
    """``insert_ignoring_conflicts`` without values, built once per dialect and table: execute it
    with the row as parameters (the statement a hot path runs over and over)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing()
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).on_conflict_do_nothing()
    raise NotImplementedError(f"Shepherd supports SQLite and PostgreSQL, not {dialect}")


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def one_of(column: Column[Any], name: str, dialect: str) -> ColumnElement[bool]:
    """``column IN (...)`` with the whole list bound as the one parameter ``name`` (a Python
    list), so that the statement compiles once whatever the list's length and can be a
    ``storage.prepared.Prepared``: a PostgreSQL array, or a JSON array that SQLite reads with
    ``json_each``. An expanding ``IN`` is compiled on every execution instead (3 ms a batch of
    questionnaire pages, measured on PostgreSQL)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY

        return column == any_(bindparam(name, type_=ARRAY(column.type)))
    if dialect == "sqlite":
        listed = func.json_each(bindparam(name, type_=JSON)).table_valued("value")
        return column.in_(select(listed.c.value))
    raise NotImplementedError(f"Shepherd supports SQLite and PostgreSQL, not {dialect}")
