"""Claiming rows of a work table (the outbox, the inbox) under a lease.

Both tables have ``id``, ``status``, ``attempts``, ``next_attempt_at``, ``locked_until`` and
``claim_token``. A worker claims a batch in one short transaction: ``WITH due AS (SELECT id ...
LIMIT n FOR UPDATE SKIP LOCKED) UPDATE ... SET claim_token = :mine, locked_until = now + lease,
attempts = attempts + 1 WHERE id IN (SELECT id FROM due)``. On PostgreSQL ``SKIP LOCKED`` lets
several workers claim disjoint batches without waiting on each other; on SQLite the write lock
serialises claims. A claimed row is invisible to
other workers until its lease runs out, and only the holder of the token can finish it.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import BindParameter, ColumnElement, Table, bindparam, or_, select, update

from storage.prepared import Prepared
from storage.sqlerrors import translated

if TYPE_CHECKING:
    from storage.database import Database

PENDING = "pending"
# The ``last_error`` of a row handed back by ``release_claims_of``: its attempt ended with no
# verdict, perhaps because the row itself killed the worker.
HOLDER_DIED = "the worker process holding it exited before finishing it"

# How long a row may keep finding the service it needs (Slack) unavailable, counted from the
# first time it did, before it is given up on. An outage or a rate limit is no fault of the
# message, and Slack's incidents last minutes to hours, so counting each failed try as an attempt
# dead-lettered every notification due during an outage of a few minutes (eight tries
# within 2-4 minutes). A day outlasts any such
# incident, one noticed only the next morning included, yet still ends, in ``dead`` where
# ``shepherd doctor`` and the metrics show it, a row Slack keeps answering 5xx or 429 to for a
# reason of its own.
OUTAGE_LIMIT = timedelta(days=1)


class Unavailable(Exception):  # noqa: N818 - named like storage.errors.DatabaseUnavailable
    """Raised by a sender or handler when the service it needs (Slack) is down, rate limiting or
    unreachable, through no fault of the row: the try is not counted as an attempt. The row waits
    (``outage_wait``, and at least ``retry_after`` when the service said how long), and is given
    up on only once it has found the service unavailable for ``OUTAGE_LIMIT``.

    ``holds_round``: the rows claimed with it wait too (they need the same service and would only
    fail the same way); False when only this row must wait (``slack_messages.PostInProgress``).
    """

    holds_round = True

    def __init__(self, message: str, retry_after: timedelta | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def outage_over(since: datetime, now: datetime, limit: timedelta, error: BaseException) -> str | None:
    """Why a row that has found the service unavailable since ``since`` is given up on now (the
    ``last_error`` of its ``dead`` row), or None while it may keep waiting, ``limit`` in all."""
    if now - since < limit:
        return None
    return f"Slack unavailable since {since.isoformat(timespec='seconds')}: {describe(error)}"


def describe(error: BaseException) -> str:
    """``error`` as a row's ``last_error`` says it: its type, then its message if it has one."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def outage_wait(
    since: datetime,
    now: datetime,
    base: timedelta,
    cap: timedelta,
    rng: random.Random,
    retry_after: timedelta | None = None,
) -> timedelta:
    """The wait before trying again a row that has found the service unavailable since ``since``.

    As long again as it has waited so far (so the waits roughly double, and no counter is
    needed), kept between ``base`` and ``cap``, half of it jittered so that rows do not all come
    back at once; never shorter than ``retry_after``, what the service asked for.
    """
    full = min(cap, max(base, now - since))
    wait: timedelta = full / 2 + full / 2 * rng.random()
    return max(wait, retry_after) if retry_after is not None else wait


def due(table: Table, now: datetime | BindParameter[datetime]) -> tuple[ColumnElement[bool], ...]:
    """Rows waiting for work: pending, due, and not claimed by anyone whose lease still runs."""
    return (
        table.c.status == PENDING,
        table.c.next_attempt_at <= now,
        or_(table.c.locked_until.is_(None), table.c.locked_until <= now),
    )


class Claim:
    """Claims up to ``limit`` due rows of ``table``, oldest first, returning their ``columns``.

    The statement is built once and run on the driver (``storage.prepared``): built and executed
    through SQLAlchemy on every round, the claim took a sixth of the worker's time per recorded
    decision on SQLite, where a round is 20 clicks. ``where`` narrows which due rows may be
    claimed; the values it binds by name are given to each call.
    """

    def __init__(
        self, table: Table, columns: Sequence[str], limit: int, where: Sequence[ColumnElement[bool]] = ()
    ) -> None:
        now = bindparam("claim_now", type_=table.c.next_attempt_at.type)
        # A CTE: PostgreSQL never inlines one that locks rows, so it runs once. Written as
        # ``IN (subquery)``, the planner could re-run the LIMITed subquery for the join and claim
        # more than ``limit`` rows (seen: 3 rows claimed for a limit of 2).
        oldest = (
            select(table.c.id)
            .where(*due(table, now), *where)
            .order_by(table.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .cte(f"due_{table.name}")
        )
        self._statement = Prepared(
            update(table)
            .where(table.c.id.in_(select(oldest.c.id)), *due(table, now), *where)
            .values(
                claim_token=bindparam("claim_token"),
                locked_until=bindparam("claim_until", type_=table.c.locked_until.type),
                attempts=table.c.attempts + 1,
            )
            .returning(*(table.c[name] for name in columns))
        )

    def __call__(
        self,
        database: Database,
        now: datetime,
        lease: timedelta,
        claimant: str = "",
        params: Mapping[str, Any] | None = None,
    ) -> tuple[list[dict[str, Any]], str]:
        """Claim; returns the rows and the claim token.

        ``claimant`` names the process claiming (at most 30 characters); its claims can then be
        handed back at once if it dies (``release_claims_of``). ``params``: the values of the
        parameters ``where`` binds.
        """
        if len(claimant) > 30 or ":" in claimant:
            raise ValueError(f"a claimant is at most 30 characters without ':', not {claimant!r}")
        token = f"{claimant}:{uuid.uuid4().hex}" if claimant else uuid.uuid4().hex
        values = {"claim_now": now, "claim_token": token, "claim_until": now + lease, **(params or {})}
        with database.session() as session, translated():
            rows = self._statement.all(session.connection(), values)
            session.commit()
        return sorted(rows, key=lambda row: row["id"]), token


def claim_due(
    database: Database,
    table: Table,
    now: datetime,
    limit: int,
    lease: timedelta,
    columns: Sequence[str],
    claimant: str = "",
    where: Sequence[ColumnElement[bool]] = (),
) -> tuple[list[dict[str, Any]], str]:
    """``Claim`` once; for a caller that claims rarely, since the statement is built each time."""
    return Claim(table, columns, limit, where)(database, now, lease, claimant)


def release_claims_of(database: Database, table: Table, claimant: str) -> int:
    """Hand back the pending rows still claimed by ``claimant``, a process known to be dead;
    returns how many.

    Otherwise they stay hidden until their leases run out (2 minutes): seen when the inbox
    worker was killed mid-round, its 25 clicks were recorded two minutes late. The attempt stays
    counted and the row is marked ``HOLDER_DIED``, so that a worker can try it on its own (it
    may be what killed the last one) and give up on it after its attempts.
    Only for a claimant that has exited: a live one would lose rows it is working on.
    """
    if not claimant:
        raise ValueError("release_claims_of needs the claimant whose claims to hand back")
    with database.session() as session, translated():
        result = session.execute(
            update(table)
            .where(table.c.status == PENDING, table.c.claim_token.startswith(f"{claimant}:", autoescape=True))
            .values(locked_until=None, claim_token=None, last_error=HOLDER_DIED)
        )
        session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]


def hand_back(
    database: Database,
    table: Table,
    row_ids: Sequence[int],
    token: str,
    *,
    due: datetime | None = None,
    reason: str | None = None,
    outage_over: bool = False,
) -> int:
    """Release rows this claim still holds without counting the attempt they never had (a
    stopping worker, a round put off, messages held behind a failed one), optionally due later
    and with a reason; returns how many it held. ``outage_over``: what they wait for now is not
    the service (an installation), so a later outage is timed from its own start."""
    values: dict[str, Any] = {"attempts": table.c.attempts - 1}
    if outage_over:
        values["unavailable_since"] = None
    if due is not None:
        values["next_attempt_at"] = due
    if reason is not None:
        values["last_error"] = reason[:2000]
    return finish_many(database, table, row_ids, token, values)


def finish(database: Database, table: Table, row_id: int, token: str, values: Mapping[str, Any]) -> bool:
    """Write ``values`` to a claimed row (and release it) if this claim still holds it."""
    return finish_many(database, table, [row_id], token, values) == 1


def finish_many(
    database: Database, table: Table, row_ids: Sequence[int], token: str, values: Mapping[str, Any]
) -> int:
    """Write ``values`` to the rows of ``row_ids`` that the claim ``token`` still holds, in one
    transaction; returns how many it held (rows taken over by another claim are left alone)."""
    if not row_ids:
        return 0
    released = {"locked_until": None, "claim_token": None, **values}
    with database.session() as session, translated():
        result = session.execute(
            update(table)
            .where(table.c.id.in_(list(row_ids)), table.c.claim_token == token)
            .values(**released)
        )
        session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]
