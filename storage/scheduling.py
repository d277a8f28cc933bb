"""Time box extensions, periodic operations reviews, fired scheduled events and the scheduler lease.

Exactly one notification per due event, with any number of replicas, rests on two things:

- **``fired_events``**, a table keyed by the event's key (``remind:12:20261202T090000Z``). The scheduler inserts
  the key with ``ON CONFLICT DO NOTHING ... RETURNING`` in the same transaction as the outbox
  message; only the transaction whose insert returned a row queues the message. On PostgreSQL a
  concurrent insert of the same key waits for the first transaction and then finds the row; on
  SQLite the write lock serialises them. This is the guarantee, and it needs nothing else.
- **``scheduler_leases``**, one row per named job holding who runs it until when. A replica
  ticks only while it holds the lease, so the replicas do not all scan the same initiatives and
  queue behind each other's inserts. It is an efficiency measure: should a lease run out in
  the middle of a slow tick and a second replica start, ``fired_events`` still lets one win.

A lease row rather than ``pg_try_advisory_lock``: it works the same on SQLite, it survives
connection pooling (a session advisory lock belongs to whichever pooled connection took it,
and is silently released when the pool recycles it), and it is visible in the database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, func, insert, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.orm import Mapped, Session, mapped_column

from gates.ports import OperationsReview, TimeBoxExtension
from storage.dialect import insert_ignoring_conflicts
from storage.models import Base, UTCDateTime
from storage.repositories import initiative_id
from storage.sqlerrors import guarded, translated
from storage.tables import initiatives, table_of

if TYPE_CHECKING:
    from storage.database import Database


class TimeBoxExtensionRow(Base):
    __tablename__ = "time_box_extensions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    initiative_id: Mapped[int] = mapped_column(ForeignKey("initiatives.id", ondelete="RESTRICT"), index=True)
    stage: Mapped[str] = mapped_column(String(64))
    previous_end: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    new_end: Mapped[datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str] = mapped_column(Text)
    author_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class OperationsReviewRow(Base):
    __tablename__ = "operations_reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    initiative_id: Mapped[int] = mapped_column(ForeignKey("initiatives.id", ondelete="RESTRICT"))
    reviewer_id: Mapped[str] = mapped_column(String(64))
    reviewed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    answers: Mapped[Any] = mapped_column(JSON)
    next_due: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_operations_reviews_initiative_reviewed", "initiative_id", "reviewed_at"),)


class FiredEventRow(Base):
    """A scheduled event that has fired: the first insert of a key wins, for good."""

    __tablename__ = "fired_events"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    fired_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SchedulerLeaseRow(Base):
    __tablename__ = "scheduler_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


extensions = table_of(TimeBoxExtensionRow)
operations_reviews = table_of(OperationsReviewRow)
fired_events = table_of(FiredEventRow)
scheduler_leases = table_of(SchedulerLeaseRow)


class SqlOperationsRecords:
    """``gates.ports.OperationsRecords`` in SQL, inside its unit of work's session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    @guarded
    def add_extension(self, extension: TimeBoxExtension) -> None:
        self._session.execute(
            insert(extensions).values(
                initiative_id=initiative_id(self._session, extension.initiative_ref),
                stage=extension.stage,
                previous_end=extension.previous_end,
                new_end=extension.new_end,
                reason=extension.reason,
                author_id=extension.author_id,
                at=extension.at,
            )
        )

    @guarded
    def extensions(self, ref: str) -> Sequence[TimeBoxExtension]:
        owner = initiative_id(self._session, ref)
        rows = self._session.execute(
            select(extensions).where(extensions.c.initiative_id == owner).order_by(extensions.c.id)
        ).mappings()
        return [
            TimeBoxExtension(
                ref, r["stage"], r["previous_end"], r["new_end"], r["reason"], r["author_id"], r["at"]
            )
            for r in rows
        ]

    @guarded
    def add_review(self, review: OperationsReview) -> None:
        self._session.execute(
            insert(operations_reviews).values(
                initiative_id=initiative_id(self._session, review.initiative_ref),
                reviewer_id=review.reviewer_id,
                reviewed_at=review.reviewed_at,
                answers=dict(review.answers),
                next_due=review.next_due,
            )
        )

    @guarded
    def reviews(self, ref: str) -> Sequence[OperationsReview]:
        owner = initiative_id(self._session, ref)
        rows = self._session.execute(
            select(operations_reviews)
            .where(operations_reviews.c.initiative_id == owner)
            .order_by(operations_reviews.c.reviewed_at, operations_reviews.c.id)
        ).mappings()
        return [_review(ref, row) for row in rows]

    @guarded
    def latest_reviews(self) -> dict[str, OperationsReview]:
        # Reviews are append-only, so the highest id of an initiative is its latest review. One
        # grouped pass finds those ids (as for current answers: not a correlated max per row).
        latest = (
            select(func.max(operations_reviews.c.id).label("id"))
            .group_by(operations_reviews.c.initiative_id)
            .subquery("latest")
        )
        rows = self._session.execute(
            select(operations_reviews, initiatives.c.ref)
            .join(latest, latest.c.id == operations_reviews.c.id)
            .join(initiatives, initiatives.c.id == operations_reviews.c.initiative_id)
        ).mappings()
        return {row["ref"]: _review(row["ref"], row) for row in rows}


class SqlFiredEvents:
    """``gates.ports.FiredEvents``: the unique key makes the database the judge across replicas."""

    def __init__(self, session: Session) -> None:
        self._session = session

    @guarded
    def first_time(self, key: str, kind: str, at: datetime) -> bool:
        if not key:
            raise ValueError("a scheduled event needs a key")
        statement = insert_ignoring_conflicts(
            self._session, fired_events, {"key": key[:200], "kind": kind[:64], "fired_at": at}
        )
        return self._session.execute(statement.returning(fired_events.c.key)).first() is not None

    @guarded
    def fired_at(self, key: str) -> datetime | None:
        return self._session.scalar(select(fired_events.c.fired_at).where(fired_events.c.key == key[:200]))


class SchedulerLease:
    """Who runs a periodic job right now; one holder at a time across replicas."""

    def __init__(self, database: Database, name: str = "scheduler") -> None:
        self._database = database
        self.name = name

    def acquire(self, holder: str, now: datetime, ttl: timedelta, *, renew: bool = True) -> bool:
        """Take or renew the lease until ``now + ttl``; False while another holder's is valid.

        ``renew=False`` takes it only once it has run out, even from its own holder: a job
        that must run once per ``ttl`` across replicas (``bot.scheduler``'s daily pruning).

        On PostgreSQL the UPDATE locks the row, so a concurrent taker waits, then re-reads the
        renewed row and finds it held; on SQLite the write transaction serialises them.
        """
        until = now + ttl
        expired = scheduler_leases.c.expires_at <= now
        with self._database.session() as session, translated():
            taken = session.execute(
                update(scheduler_leases)
                .where(
                    scheduler_leases.c.name == self.name,
                    or_(scheduler_leases.c.holder == holder, expired) if renew else expired,
                )
                .values(holder=holder, expires_at=until)
                .returning(scheduler_leases.c.name)
            ).first()
            if taken is None:
                created = insert_ignoring_conflicts(
                    session, scheduler_leases, {"name": self.name, "holder": holder, "expires_at": until}
                )
                taken = session.execute(created.returning(scheduler_leases.c.name)).first()
            session.commit()
        return taken is not None

    def release(self, holder: str, now: datetime) -> None:
        """Give the lease up (at shutdown) so another replica takes over at its next tick."""
        with self._database.session() as session, translated():
            session.execute(
                update(scheduler_leases)
                .where(scheduler_leases.c.name == self.name, scheduler_leases.c.holder == holder)
                .values(expires_at=now)
            )
            session.commit()

    def holder(self) -> tuple[str, datetime] | None:
        with self._database.session(read_only=True) as session:
            row = session.execute(
                select(scheduler_leases.c.holder, scheduler_leases.c.expires_at).where(
                    scheduler_leases.c.name == self.name
                )
            ).first()
        return (row[0], row[1]) if row else None


def fired_keys(database: Database) -> list[str]:
    """Every fired event key, in order (for tests and operators)."""
    with database.session(read_only=True) as session:
        return list(session.scalars(select(fired_events.c.key).order_by(fired_events.c.key)))


def _review(ref: str, row: RowMapping | Mapping[str, Any]) -> OperationsReview:
    return OperationsReview(
        initiative_ref=ref,
        reviewer_id=row["reviewer_id"],
        reviewed_at=row["reviewed_at"],
        answers=dict(row["answers"] or {}),
        next_due=row["next_due"],
        id=row["id"],
    )
