"""``Prepared``: a hot statement run on the driver's cursor (a SELECT, or an INSERT or UPDATE with
or without RETURNING); ``together``: independent reads sent in one round trip.

SQLAlchemy's execution path costs far more than the statements Shepherd runs on every request:
in process, the read of an initiative and its open review took 93 µs through
``Connection.execute`` against 12 µs on the sqlite3 cursor, and storage took 62% of a
``/shepherd status`` reply (sampled with py-spy). A questionnaire page also writes: its answer
version, the outbox's merge check and the audit entry with its counter took 21% of a page's time
in process through ``Connection.execute`` (cProfile); here a page went from 0.55 to 0.43 ms.
The statements stay SQLAlchemy Core, compiled once per dialect by SQLAlchemy; only their
execution is the driver's. Values go through the columns' own SQLAlchemy types
(``bind_processor`` and ``result_processor``), so a row reads back exactly as through
``Connection.execute``: SQLite's text datetimes and JSON, PostgreSQL's native ones.

The statement runs in the transaction SQLAlchemy began on the connection. A driver error leaves
as SQLAlchemy would raise it: wrapped in the matching ``DBAPIError`` (which ``storage.sqlerrors``
translates), with a lost connection invalidated so that the pool replaces it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.selectable import Select


@dataclass(frozen=True)
class _Plan:
    sql: str
    names: tuple[str, ...]  # bound parameters, in the order a positional paramstyle takes them
    positional: bool
    fixed: tuple[tuple[str, Any], ...]  # parameters whose value the statement carries (a LIMIT, a status)
    encoders: tuple[tuple[str, Callable[[Any], Any]], ...]  # (parameter, encoder) where its type has one
    keys: tuple[str, ...]  # result columns, as ``Result.mappings()`` names them
    decoders: tuple[tuple[int, Callable[[Any], Any]], ...]  # (column index, decoder) where needed


class Prepared:
    def __init__(self, statement: Select[Any] | UpdateBase) -> None:
        self.statement = statement
        self._plans: dict[str, _Plan] = {}

    def all(self, connection: Connection, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every row, as a dict keyed like ``Result.mappings()`` (none for a statement without
        RETURNING)."""
        return self.all_many(connection, [params or {}])[0]

    def all_many(
        self, connection: Connection, params: Sequence[Mapping[str, Any]]
    ) -> list[list[dict[str, Any]]]:
        """``all`` of each parameter set in turn, in the caller's transaction: each statement
        sees what the ones before it wrote. On PostgreSQL they go to the server together
        (psycopg's pipelined ``executemany``), one round trip instead of one each: the
        questionnaire pages of a batch record their answers in one."""
        plan = self.plan(connection.dialect)
        arguments = [_arguments(plan, given) for given in params]
        results: list[list[Any]] = []
        with _driver_errors(connection, plan.sql, arguments[0] if len(arguments) == 1 else arguments):
            cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                if len(arguments) > 1 and connection.dialect.name == "postgresql" and plan.keys:
                    cursor.executemany(plan.sql, arguments, returning=True)
                    while True:
                        results.append(cursor.fetchall())
                        if not cursor.nextset():
                            break
                else:
                    for one in arguments:
                        cursor.execute(plan.sql, one)
                        results.append(cursor.fetchall() if plan.keys else [])
            finally:
                cursor.close()
        return [_decoded(plan, rows) for rows in results]

    def plan(self, dialect: Dialect) -> _Plan:
        plan = self._plans.get(dialect.name)
        if plan is None:
            plan = self._plans[dialect.name] = _plan(self.statement, dialect)
        return plan


def together(
    connection: Connection, calls: Sequence[tuple[Prepared, Mapping[str, Any]]]
) -> list[list[dict[str, Any]]]:
    """``Prepared.all`` of each (statement, parameters) in ``calls``, in that order, for reads
    that do not depend on one another. On PostgreSQL they go to the server in one round trip
    (psycopg's pipeline mode) instead of one each. A round trip costs far more than the reads a
    reply makes: measured with psycopg alone on a 2-core machine, about 95 µs of CPU (60 of them
    in the kernel) and 200 µs of waiting for ``SELECT 1``. Elsewhere, one after another."""
    dialect = connection.dialect
    if dialect.name != "postgresql" or len(calls) < 2 or not dialect.loaded_dbapi.Pipeline.is_supported():
        return [prepared.all(connection, params) for prepared, params in calls]  # one after another
    plans = [(prepared.plan(dialect), params) for prepared, params in calls]
    arguments = [_arguments(plan, params) for plan, params in plans]
    driver = connection.connection.driver_connection
    with _driver_errors(connection, "; ".join(plan.sql for plan, _ in plans), arguments):
        cursors = []
        try:
            with driver.pipeline():  # type: ignore[union-attr]
                for (plan, _), args in zip(plans, arguments, strict=True):
                    cursor = driver.cursor()  # type: ignore[union-attr]
                    cursors.append(cursor)
                    cursor.execute(plan.sql, args)
            rows = [cursor.fetchall() for cursor in cursors]
        finally:
            for cursor in cursors:
                cursor.close()
    return [_decoded(plan, found) for (plan, _), found in zip(plans, rows, strict=True)]


@contextmanager
def _driver_errors(connection: Connection, sql: str, arguments: Any) -> Iterator[None]:
    """A driver error raised as SQLAlchemy would raise it: the matching ``DBAPIError``, with a
    lost connection invalidated so that the pool replaces it."""
    dialect = connection.dialect
    try:
        yield
    except dialect.loaded_dbapi.Error as error:
        lost = dialect.is_disconnect(error, connection.connection.driver_connection, None)
        if lost:
            connection.invalidate(error)
        raise DBAPIError.instance(
            sql, arguments, error, dialect.loaded_dbapi.Error, connection_invalidated=lost, dialect=dialect
        ) from error


def _arguments(plan: _Plan, params: Mapping[str, Any]) -> Any:
    """``params`` encoded by their columns' types, in the driver's paramstyle."""
    given = dict(plan.fixed)
    given.update(params)
    for name, encode in plan.encoders:
        if given.get(name) is not None:
            given[name] = encode(given[name])
    if plan.positional:
        return tuple(given[name] for name in plan.names)
    return {name: given[name] for name in plan.names}


def _decoded(plan: _Plan, rows: Sequence[Any]) -> list[dict[str, Any]]:
    keys, decoders = plan.keys, plan.decoders
    found = []
    for row in rows:
        values = list(row)
        for index, decode in decoders:
            if values[index] is not None:
                values[index] = decode(values[index])
        found.append(dict(zip(keys, values, strict=True)))
    return found


def _plan(statement: Select[Any] | UpdateBase, dialect: Dialect) -> _Plan:
    compiled = statement.compile(dialect=dialect)
    fixed = tuple((name, bind.value) for name, bind in compiled.binds.items() if not bind.required)
    encoders = []
    for name, bind in compiled.binds.items():
        encode = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if encode is not None:
            encoders.append((name, encode))
    decoders = []
    columns = statement.exported_columns  # a SELECT's columns, or what RETURNING gives back
    for index, column in enumerate(columns):
        decode = column.type.dialect_impl(dialect).result_processor(dialect, None)
        if decode is not None:
            decoders.append((index, decode))
    positional = bool(compiled.positional)
    return _Plan(
        sql=compiled.string,
        names=tuple(compiled.positiontup or ()) if positional else tuple(compiled.binds),
        positional=positional,
        fixed=fixed,
        encoders=tuple(encoders),
        keys=tuple(cast(list[str], columns.keys())),  # a statement's columns all have names
        decoders=tuple(decoders),
    )
