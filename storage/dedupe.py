"""Remembering which Slack deliveries were already handled.

Slack retries events it thinks were not acknowledged, and people double-click. The bot claims
each event id or action key here before acting on it; the unique key makes the database the
judge, so two processes receiving the same retry at the same moment act once between them.

Some keys are claimed for good (``greeted:<user>``, the once-per-person greeting), so keys are
forgotten only by kind, by ``storage.retention``.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache

from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert

from storage.dialect import insert_ignoring_conflicts_for
from storage.sqlerrors import guarded
from storage.tables import processed_events


class SqlDedupe:
    def __init__(self, session: Session) -> None:
        self._session = session

    @guarded
    def first_time(self, key: str, at: datetime) -> bool:
        """True if ``key`` was never claimed before (and claims it in this transaction).

        On PostgreSQL a concurrent claim of the same key waits for the other transaction: if it
        commits this returns False, if it rolls back this one wins.
        """
        if not key:
            raise ValueError("a dedupe key must not be empty")
        connection = self._session.connection()
        statement = _claim(connection.dialect.name)
        return connection.execute(statement, {"key": key[:200], "seen_at": at}).first() is not None


@cache
def _claim(dialect: str) -> Insert:
    # RETURNING, not rowcount: drivers need not report a row count for INSERT.
    return insert_ignoring_conflicts_for(dialect, processed_events).returning(processed_events.c.key)
