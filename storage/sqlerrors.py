"""Turn driver errors into the errors our callers understand.

A lost race shows up differently per backend: PostgreSQL reports a deadlock (40P01), a
serialisation failure (40001) or a lock timeout (55P03); SQLite reports "database is locked"
once the busy timeout is spent. All of them mean "nothing of yours was recorded, try again",
which the domain calls ``ConcurrentUpdate``. A connection that cannot be made is
``DatabaseUnavailable``. Anything else is a bug and is left alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import ParamSpec, TypeVar

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from gates.errors import ConcurrentUpdate
from storage.errors import DatabaseUnavailable

_RACE_SQLSTATES = {"40001", "40P01", "55P03"}
_SQLITE_BUSY = ("database is locked", "database table is locked", "database is busy")

P = ParamSpec("P")
T = TypeVar("T")


def sqlstate(error: DBAPIError) -> str | None:
    """The SQLSTATE of a PostgreSQL error (None for SQLite)."""
    return getattr(error.orig, "sqlstate", None)


def is_unique_violation(error: IntegrityError) -> bool:
    state = sqlstate(error)
    if state is not None:
        return state == "23505"
    return "UNIQUE constraint failed" in str(error.orig)


def translate(error: DBAPIError) -> Exception | None:
    """The error to raise instead of ``error``, or None to let it through unchanged."""
    if isinstance(error, IntegrityError):
        return None
    state = sqlstate(error)
    text = str(error.orig)
    if state in _RACE_SQLSTATES or any(marker in text for marker in _SQLITE_BUSY):
        return ConcurrentUpdate("The database was busy with a change to the same thing")
    if error.connection_invalidated or (
        isinstance(error, OperationalError) and _looks_like_connection(error)
    ):
        first = (
            re.sub(r"\s+", " ", text.strip().splitlines()[0]) if text.strip() else type(error.orig).__name__
        )
        return DatabaseUnavailable(f"Lost the database connection: {first}")
    return None


@contextmanager
def translated() -> Iterator[None]:
    """Run a block, re-raising driver errors as ``ConcurrentUpdate`` / ``DatabaseUnavailable``."""
    try:
        yield
    except DBAPIError as error:
        replacement = translate(error)
        if replacement is None:
            raise
        raise replacement from error


def guarded(function: Callable[P, T]) -> Callable[P, T]:
    """Decorator form of ``translated`` for repository methods."""

    @wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        with translated():
            return function(*args, **kwargs)

    return wrapper


def _looks_like_connection(error: OperationalError) -> bool:
    if sqlstate(error) is not None:
        return str(sqlstate(error)).startswith("08")
    text = str(error.orig).lower()
    return "unable to open" in text or "disk i/o" in text or "connection" in text
