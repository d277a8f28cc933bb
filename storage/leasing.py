"""Claiming rows of a work table (the outbox, the inbox) under a lease.

Both tables have ``id``, ``status``, ``attempts``, ``next_attempt_at``, ``locked_until`` and
``claim_token``. A worker claims a batch in one short transaction: ``UPDATE ... SET claim_token =
:mine, locked_until = now + lease, attempts = attempts + 1 WHERE id IN (SELECT ... FOR UPDATE
SKIP LOCKED)``. On PostgreSQL ``SKIP LOCKED`` lets several workers claim disjoint batches without
waiting on each other; on SQLite the write lock serialises claims. A claimed row is invisible to
other workers until its lease runs out, and only the holder of the token can finish it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Table, or_, select, update

from storage.sqlerrors import translated

if TYPE_CHECKING:
    from storage.database import Database

PENDING = "pending"


def due(table: Table, now: datetime) -> tuple[ColumnElement[bool], ...]:
    """Rows waiting for work: pending, due, and not claimed by anyone whose lease still runs."""
    return (
        table.c.status == PENDING,
        table.c.next_attempt_at <= now,
        or_(table.c.locked_until.is_(None), table.c.locked_until <= now),
    )


def claim_due(
    database: Database,
    table: Table,
    now: datetime,
    limit: int,
    lease: timedelta,
    columns: Sequence[str],
) -> tuple[list[Mapping[str, Any]], str]:
    """Claim up to ``limit`` due rows, oldest first; returns their ``columns`` and the claim token."""
    token = uuid.uuid4().hex
    oldest = select(table.c.id).where(*due(table, now)).order_by(table.c.id).limit(limit)
    claim = (
        update(table)
        .where(table.c.id.in_(oldest.with_for_update(skip_locked=True).scalar_subquery()), *due(table, now))
        .values(claim_token=token, locked_until=now + lease, attempts=table.c.attempts + 1)
        .returning(*(table.c[name] for name in columns))
    )
    with database.session() as session, translated():
        rows: list[Any] = list(session.execute(claim).mappings())
        session.commit()
    return sorted(rows, key=lambda row: row["id"]), token


def finish(database: Database, table: Table, row_id: int, token: str, values: Mapping[str, Any]) -> bool:
    """Write ``values`` to a claimed row (and release it) if this claim still holds it."""
    released = {"locked_until": None, "claim_token": None, **values}
    with database.session() as session, translated():
        result = session.execute(
            update(table).where(table.c.id == row_id, table.c.claim_token == token).values(**released)
        )
        session.commit()
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]
