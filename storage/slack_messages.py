"""Where Shepherd's Slack messages live, so they can be updated later.

An initiative's card, the review requests sent to each approver, the notes in a thread: each is
remembered as (target, kind) -> (channel, ts). The notifier uses this to ``chat.update`` every
message that carries buttons for a review once it is decided, and to skip a post it already
made when a notification is delivered again (the outbox is at-least-once). A person's App Home
tab is remembered the same way (``home:<user>``), with the page it shows (``page``).

A post is reserved before it is made (``reserve``, then ``fill`` or ``release``): two delivery
workers redrawing the same initiative's card at once, or one whose lease ran out while another
took its messages over, would otherwise both find no card and both post one, leaving an orphan
card whose buttons nobody updates. A reservation is a row without a channel; readers skip it.

A private message (an ephemeral, or its DM fallback) is about nothing but itself: it is reserved
under the outbox message that carries it (``outbox_target``), and kept only as long as that
message is (``storage.retention``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any

from sqlalchemy import Index, Integer, String, UniqueConstraint, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from storage.dialect import insert_ignoring_conflicts
from storage.leasing import Unavailable
from storage.models import Base, UTCDateTime
from storage.tables import table_of

if TYPE_CHECKING:
    from storage.database import Database


KIND_LENGTH = 64
"""The longest ``kind`` a message can be remembered under."""


class SlackMessageRow(Base):
    __tablename__ = "slack_messages"
    __table_args__ = (
        UniqueConstraint("target", "kind", name="uq_slack_messages_target_kind"),
        Index("ix_slack_messages_channel_ts", "channel", "ts"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    target: Mapped[str] = mapped_column(String(KIND_LENGTH), index=True)
    kind: Mapped[str] = mapped_column(String(KIND_LENGTH))
    channel: Mapped[str] = mapped_column(String(32))
    ts: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    page: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """The page a paged view (App Home) last showed, so that publishing it again keeps the
    person where they were; 0 for a message."""


slack_messages = table_of(SlackMessageRow)


RESERVED = ""
"""The channel of a row that reserves (target, kind) for a post being made."""
# Longer than one chat.postMessage can take with slack_sdk's retries (a 30 s timeout, Retry-After
# waits): a reservation this old was left by a worker that died mid-post, and is taken over.
STALE_RESERVATION = timedelta(minutes=5)


OUTBOX_TARGET_PREFIX = "outbox:"


def outbox_target(message_id: int) -> str:
    """The target a message sent for outbox message ``message_id`` alone is remembered under."""
    return f"{OUTBOX_TARGET_PREFIX}{message_id}"


def fitted(key: str) -> str:
    """``key`` as stored: within ``KIND_LENGTH``, a longer one cut and ended with a digest of the
    whole, so that two long keys never meet. A kind can name a stage (``extended:STAGE:DAY``),
    and a stage's id may take 64 characters: PostgreSQL would refuse the row, SQLite keep it."""
    if len(key) <= KIND_LENGTH:
        return key
    digest = hashlib.blake2b(key.encode(), digest_size=6).hexdigest()
    return f"{key[: KIND_LENGTH - len(digest) - 1]}~{digest}"


class Reservation(Enum):
    """What ``MessageRefs.reserve`` found."""

    MINE = "mine"  # post it, then ``fill`` (or ``release`` if it was not posted)
    POSTED = "posted"  # it was posted already: nothing to do
    BUSY = "busy"  # another worker is posting it now: try again in a moment
    ABANDONED = "abandoned"  # reserved long ago and never filled: it may or may not be posted


class PostInProgress(Unavailable):
    """Another delivery is posting the same message right now (``Reservation.BUSY``): try again
    in a moment, when it is remembered and this delivery finds it posted. Waited out as an
    outage is (not counted as an attempt), so that a reservation left by a worker that died
    mid-post is still there to be taken over once stale, however many tries that takes. Slack
    itself is fine, so the messages claimed with it go on (``holds_round``)."""

    holds_round = False

    def __init__(self, message: str) -> None:
        super().__init__(message, retry_after=timedelta(seconds=2))


class MessageRefs:
    """Remember and find Slack messages by what they are about.

    Targets are strings such as ``initiative:AI-0007`` or ``review:12``; kinds such as ``card``,
    ``request:U123`` (the DM to one approver) or ``thread-request``.
    """

    def __init__(self, database: Database) -> None:
        self._database = database

    def remember(self, target: str, kind: str, channel: str, ts: str, at: datetime) -> bool:
        """Record a message; False if one was already recorded for (target, kind)."""
        target, kind = fitted(target), fitted(kind)
        with self._database.session() as session:
            session.add(SlackMessageRow(target=target, kind=kind, channel=channel, ts=ts, created_at=at))
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                return False
        return True

    def reserve(self, target: str, kind: str, at: datetime, *, take_over: bool = True) -> Reservation:
        """Reserve (target, kind) for a post about to be made, as of ``at`` (the database decides
        between two workers reserving at once). A reservation older than ``STALE_RESERVATION``
        was left by a worker that died mid-post, which may have posted it: with ``take_over``
        it becomes this one's (posted at least once, perhaps twice), without it it is left as it
        is and ``ABANDONED`` is returned (posted at most once, perhaps never)."""
        target, kind = fitted(target), fitted(kind)
        for _ in range(3):  # a reservation released between our two statements: try again
            found = self._reserve_once(target, kind, at, take_over)
            if found is not None:
                return found
        return Reservation.BUSY

    def _reserve_once(self, target: str, kind: str, at: datetime, take_over: bool) -> Reservation | None:
        """``reserve``, or None if the row it found was gone by the time it read it."""
        table = slack_messages
        row = {"target": target, "kind": kind, "channel": RESERVED, "ts": "", "created_at": at}
        stale = at - STALE_RESERVATION
        with self._database.session() as session:
            connection = session.connection()
            inserted = insert_ignoring_conflicts(session, table, row).returning(table.c.id)
            if connection.execute(inserted).first() is not None:
                session.commit()
                return Reservation.MINE
            if take_over:
                taken = connection.execute(
                    update(table)
                    .where(
                        table.c.target == target,
                        table.c.kind == kind,
                        table.c.channel == RESERVED,
                        table.c.created_at < stale,
                    )
                    .values(created_at=at)
                    .returning(table.c.id)
                ).first()
                if taken is not None:
                    session.commit()
                    return Reservation.MINE
            found = connection.execute(
                select(table.c.channel, table.c.created_at).where(
                    table.c.target == target, table.c.kind == kind
                )
            ).first()
            session.commit()
        if found is None:
            return None
        channel, reserved_at = found
        if channel != RESERVED:
            return Reservation.POSTED
        return Reservation.ABANDONED if not take_over and reserved_at < stale else Reservation.BUSY

    def fill(self, target: str, kind: str, channel: str, ts: str, reserved_at: datetime) -> bool:
        """Remember where the reserved post went. False if the reservation was taken over
        meanwhile (this post took longer than ``STALE_RESERVATION``): the other one is kept."""
        table, target, kind = slack_messages, fitted(target), fitted(kind)
        with self._database.session() as session:
            done = session.connection().execute(
                update(table)
                .where(*_reserved_by(table, target, kind, reserved_at))
                .values(channel=channel, ts=ts)
                .returning(table.c.id)
            )
            filled = done.first() is not None
            session.commit()
        return filled

    def release(self, target: str, kind: str, reserved_at: datetime) -> None:
        """Give up the reservation: nothing was posted, so the next delivery may post it."""
        table, target, kind = slack_messages, fitted(target), fitted(kind)
        with self._database.session() as session:
            session.connection().execute(delete(table).where(*_reserved_by(table, target, kind, reserved_at)))
            session.commit()

    def forget(self, target: str, kind: str, channel: str, ts: str) -> bool:
        """Forget the message of ``kind`` about ``target`` if it is still the one at (``channel``,
        ``ts``) (it was deleted in Slack), so that it can be posted again; False if another
        delivery forgot it first (and may be posting it again already)."""
        table, target, kind = slack_messages, fitted(target), fitted(kind)
        with self._database.session() as session:
            gone = session.connection().execute(
                delete(table)
                .where(
                    table.c.target == target,
                    table.c.kind == kind,
                    table.c.channel == channel,
                    table.c.ts == ts,
                )
                .returning(table.c.id)
            )
            forgotten = gone.first() is not None
            session.commit()
        return forgotten

    def find(self, target: str, kind: str) -> tuple[str, str] | None:
        return self.find_kinds(target, (kind,)).get(kind)

    def find_kinds(self, target: str, kinds: Iterable[str]) -> dict[str, tuple[str, str]]:
        """``find`` of each of ``kinds`` remembered for ``target``, by kind (one query)."""
        asked = {fitted(kind): kind for kind in kinds}
        with self._database.session(read_only=True) as session:
            rows = session.execute(
                select(SlackMessageRow.kind, SlackMessageRow.channel, SlackMessageRow.ts).where(
                    SlackMessageRow.target == fitted(target),
                    SlackMessageRow.kind.in_(sorted(asked)),
                    SlackMessageRow.channel != RESERVED,
                )
            ).all()
            return {asked[kind]: (channel, ts) for kind, channel, ts in rows}

    def posted_at(self, target: str, kind: str) -> datetime | None:
        """When the message of ``kind`` about ``target`` was posted (reserved, just before); None
        when none was."""
        with self._database.session(read_only=True) as session:
            return session.scalar(
                select(SlackMessageRow.created_at).where(
                    SlackMessageRow.target == fitted(target),
                    SlackMessageRow.kind == fitted(kind),
                    SlackMessageRow.channel != RESERVED,
                )
            )

    def all_for(self, target: str) -> list[tuple[str, str, str]]:
        """(kind, channel, ts) of every message remembered for ``target``, oldest first."""
        with self._database.session(read_only=True) as session:
            rows = session.scalars(
                select(SlackMessageRow)
                .where(SlackMessageRow.target == target, SlackMessageRow.channel != RESERVED)
                .order_by(SlackMessageRow.id)
            ).all()
            return [(r.kind, r.channel, r.ts) for r in rows]

    def pages(self, targets: Iterable[str], kind: str) -> dict[str, int]:
        """The page remembered for each of ``targets`` that has a view of ``kind`` (one query)."""
        wanted = sorted(set(targets))
        if not wanted:
            return {}
        with self._database.session(read_only=True) as session:
            rows = session.execute(
                select(SlackMessageRow.target, SlackMessageRow.page).where(
                    SlackMessageRow.kind == kind, SlackMessageRow.target.in_(wanted)
                )
            ).all()
            return {target: page for target, page in rows}

    def remember_page(self, target: str, kind: str, channel: str, page: int, at: datetime) -> None:
        """Remember that ``target``'s view of ``kind`` shows ``page``, remembering the view itself
        if it is new. Safe when two deliveries remember the same view at once: the database
        keeps one row, without an error in its log."""
        table, target, kind = slack_messages, fitted(target), fitted(kind)
        row = {"target": target, "kind": kind, "channel": channel, "ts": "", "created_at": at, "page": page}
        with self._database.session() as session:
            connection = session.connection()
            # RETURNING says whether it was written (psycopg gives no row count for this INSERT).
            inserted = insert_ignoring_conflicts(session, table, row).returning(table.c.id)
            if connection.execute(inserted).first() is None:
                connection.execute(
                    update(table).where(table.c.target == target, table.c.kind == kind).values(page=page)
                )
            session.commit()

    def target_at(self, channel: str, ts: str) -> str | None:
        """What the message at (channel, ts) is about: finds the initiative behind a thread."""
        with self._database.session(read_only=True) as session:
            row = session.scalar(
                select(SlackMessageRow).where(SlackMessageRow.channel == channel, SlackMessageRow.ts == ts)
            )
            return row.target if row else None


def _reserved_by(table: Any, target: str, kind: str, reserved_at: datetime) -> tuple[Any, ...]:
    """The conditions that find the reservation made at ``reserved_at`` (none once taken over)."""
    return (
        table.c.target == target,
        table.c.kind == kind,
        table.c.channel == RESERVED,
        table.c.created_at == reserved_at,
    )
