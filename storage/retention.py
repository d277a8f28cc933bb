"""Retention: deleting the bookkeeping rows nobody needs any more, so that an install that runs
for years keeps tables the size of their last few months.

``prune`` deletes, once older than the retention period (``SHEPHERD_RETENTION_DAYS``):

- ``processed_events``: the claims that only stop a repeat arriving soon after the first:
  Slack event ids (``event:``, retried for minutes), feedback vote turns (``feedback:``, a turn
  is numbered by the votes already in the audit log, which only grows, so it is never claimed
  again), periodic-review forms (``opsform:``, a Slack view id, never sent again once its
  modal is closed) and questions answered (``asked:``, a message that mentioned Shepherd,
  which Slack sends again when it is edited, mostly within minutes).
- ``slack_messages`` that only kept a private message from being sent twice (target
  ``outbox:<id>``, ``storage.slack_messages.outbox_target``) whose outbox row is delivered (or
  gone): never sent again. One whose message is dead stays with it, however old: a message
  whose last holder stalled past its lease after sending is dead though sent, and
  ``shepherd outbox retry`` would send it again without this record. Each is made before its outbox row is marked delivered, so it goes
  in the same pass as that row or an earlier one, never after: SQLite may give a new outbox
  message the id of one deleted, which must not find the old one's row and stay unsent.
- ``outbox`` rows ``delivered``. Their ``dedupe_key`` names a one-time domain event (a review's
  request, an approver's decision on it, a retirement, a fired schedule key guarded by
  ``fired_events`` first), which the domain itself refuses to repeat.
- ``inbox`` rows ``applied``: nothing reads them after.
- ``asked_answers``: a vote on an answer older than that is recorded without it and the person
  is told so (``bot.listeners.actions``).
- ``fired_events`` whose review is closed or whose initiative is retired: the scheduler never
  makes those keys again (``gates.schedule.subject_of``).
- ``slack_oauth_states`` expired (slack_sdk refuses an expired state anyway).

Kept, whatever their age:

- other ``processed_events`` (``greeted:<user>`` is the once-per-person greeting; a key of a
  kind not listed above may be permanent too);
- ``outbox`` and ``inbox`` rows pending or dead (dead ones wait for ``shepherd outbox retry``);
- ``fired_events`` of open reviews and of initiatives not retired: a stalled time box or an
  overdue periodic review stays due for as long as nobody acts, and its key fires again once
  forgotten;
- other ``slack_messages``: one row per message posted about an initiative, a review or a person's
  App Home, read long after (a next-gate offer is withdrawn at the next submission or at
  retirement; a mention in an initiative's thread finds the initiative by it; a redelivery
  skips a post already made), so it grows with initiatives and reviews, not with traffic;
- the evidence: initiatives, answers, evidence links, reviews, decisions, the audit log,
  counters, role holders, extensions, operations reviews and Slack installations.

Each batch is a transaction of its own (``batch_size`` rows), so the pass never holds SQLite's
write lock or a PostgreSQL transaction for long, and it pauses between batches to let the
other writers in. The age filters use existing indexes: ``seen_at``, ``posted_at`` and, for the
outbox and the inbox, ``(status, next_attempt_at)``, since a row is only sent or applied once
due (``next_attempt_at`` before ``delivered_at`` / ``done_at``). ``fired_events`` (a few rows per
review and initiative), ``slack_messages`` (a row per message about an initiative or a review,
and private messages' for the retention period only) and expired OAuth states (abandoned
installs) are small enough to walk without one, so no migration is needed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, String, Table, and_, cast, delete, exists, func, literal, or_, select
from sqlalchemy.orm import Session

from gates.lifecycle import ReviewStatus, Status
from gates.schedule import subject_of
from storage.asked_answers import asked_answers
from storage.inbox import APPLIED
from storage.leasing import PENDING
from storage.models import Base
from storage.outbox import DEAD, DELIVERED
from storage.scheduling import fired_events
from storage.slack_messages import OUTBOX_TARGET_PREFIX, slack_messages
from storage.sqlerrors import translated
from storage.tables import inbox, initiatives, outbox, processed_events, reviews

if TYPE_CHECKING:
    from storage.database import Database

DEFAULT_RETENTION = timedelta(days=90)
MIN_RETENTION = timedelta(days=7)
"""Well past Slack's retries (minutes) and the day a notification may wait out an outage."""

FORGETTABLE_CLAIMS = ("event:", "feedback:", "opsform:", "asked:")
"""Kinds of ``processed_events`` keys that only guard against a repeat arriving soon after."""

BATCH_SIZE = 500
# Between two batches, long enough for a writer polling for SQLite's write lock (every 2 ms at
# most, ``storage.database``) to take it.
PAUSE = 0.01

oauth_states = Base.metadata.tables["slack_oauth_states"]


@dataclass(frozen=True)
class _Rule:
    """Rows of ``table`` (by its one-column key ``key``) that may go, as of ``cutoff``."""

    table: Table
    key: str
    doomed: Callable[[datetime], ColumnElement[bool]]


_RULES = (
    # Before the outbox's rule: see the module's docstring.
    _Rule(
        slack_messages,
        "id",
        lambda cutoff: and_(
            slack_messages.c.target.startswith(OUTBOX_TARGET_PREFIX, autoescape=True),
            slack_messages.c.created_at < cutoff,
            ~exists().where(
                outbox.c.status.in_((DEAD, PENDING)),  # not delivered: the few rows, by ix_outbox_due
                slack_messages.c.target == literal(OUTBOX_TARGET_PREFIX) + cast(outbox.c.id, String),
            ),
        ),
    ),
    _Rule(
        processed_events,
        "key",
        lambda cutoff: and_(
            processed_events.c.seen_at < cutoff,
            or_(*(processed_events.c.key.startswith(kind, autoescape=True) for kind in FORGETTABLE_CLAIMS)),
        ),
    ),
    _Rule(
        outbox,
        "id",
        lambda cutoff: and_(
            outbox.c.status == DELIVERED,
            outbox.c.next_attempt_at < cutoff,  # the index's range; delivered_at decides
            outbox.c.delivered_at < cutoff,
        ),
    ),
    _Rule(
        inbox,
        "id",
        lambda cutoff: and_(
            inbox.c.status == APPLIED, inbox.c.next_attempt_at < cutoff, inbox.c.done_at < cutoff
        ),
    ),
    _Rule(asked_answers, "key", lambda cutoff: asked_answers.c.posted_at < cutoff),
    # slack_sdk writes naive UTC times into a column without a time zone.
    _Rule(
        oauth_states,
        "id",
        lambda cutoff: oauth_states.c.expire_at < cutoff.astimezone(UTC).replace(tzinfo=None),
    ),
)

TABLES = (*(rule.table.name for rule in _RULES), fired_events.name)
"""The tables ``prune`` deletes from, in the order it reports them."""


def prune(
    database: Database,
    now: datetime,
    retention: timedelta = DEFAULT_RETENTION,
    *,
    dry_run: bool = False,
    batch_size: int = BATCH_SIZE,
    pause: float = PAUSE,
) -> dict[str, int]:
    """Delete the rows no longer needed that are older than ``retention`` (see the module).

    Args:
        dry_run: count them, delete nothing.
        batch_size: rows deleted per transaction.
        pause: seconds slept between two batches.

    Returns:
        Rows deleted (or that would be) per table, every table of ``TABLES`` named.

    Raises:
        ValueError: ``retention`` shorter than ``MIN_RETENTION``.
    """
    if retention < MIN_RETENTION:
        raise ValueError(f"the retention period must be at least {MIN_RETENTION.days} days")
    cutoff = now - retention
    counts = {}
    for rule in _RULES:
        where = rule.doomed(cutoff)
        if dry_run:
            counts[rule.table.name] = _count(database, rule.table, where)
        else:
            counts[rule.table.name] = sum(_batches(database, rule, where, batch_size, pause))
    counts[fired_events.name] = sum(_fired_batches(database, cutoff, dry_run, batch_size, pause))
    return counts


def _count(database: Database, table: Table, where: ColumnElement[bool]) -> int:
    with database.session(read_only=True) as session, translated():
        return int(session.scalar(select(func.count()).select_from(table).where(where)) or 0)


def _batches(
    database: Database, rule: _Rule, where: ColumnElement[bool], batch_size: int, pause: float
) -> Iterator[int]:
    """Delete in batches until one comes back short; yields each batch's count."""
    key = rule.table.c[rule.key]
    statement = delete(rule.table).where(key.in_(select(key).where(where).limit(batch_size)))
    while True:
        with database.session() as session, translated():
            deleted = int(session.execute(statement).rowcount)  # type: ignore[attr-defined]
            session.commit()
        yield deleted
        if deleted < batch_size:
            return
        time.sleep(pause)


def _fired_batches(
    database: Database, cutoff: datetime, dry_run: bool, batch_size: int, pause: float
) -> Iterator[int]:
    """Walk the old fired events in key order, a batch at a time, deleting (or counting) those
    whose review is closed or whose initiative is retired; yields each batch's count."""
    after = ""
    while True:
        with database.session(read_only=dry_run) as session, translated():
            keys = list(
                session.scalars(
                    select(fired_events.c.key)
                    .where(fired_events.c.fired_at < cutoff, fired_events.c.key > after)
                    .order_by(fired_events.c.key)
                    .limit(batch_size)
                )
            )
            doomed = _never_due_again(session, keys)
            if doomed and not dry_run:
                session.execute(delete(fired_events).where(fired_events.c.key.in_(doomed)))
                session.commit()
        yield len(doomed)
        if len(keys) < batch_size:
            return
        after = keys[-1]
        time.sleep(pause)


def _never_due_again(session: Session, keys: list[str]) -> list[str]:
    """Those of ``keys`` whose review is closed or whose initiative is retired; a key whose
    subject is unknown, or missing, is kept."""
    subjects = {key: subject_of(key) for key in keys}
    review_ids = {s.review_id for s in subjects.values() if s is not None and s.review_id is not None}
    refs = {s.ref for s in subjects.values() if s is not None and s.ref is not None}
    closed: set[Any] = set()
    if review_ids:
        closed = set(
            session.scalars(
                select(reviews.c.id).where(
                    reviews.c.id.in_(sorted(review_ids)), reviews.c.status != ReviewStatus.OPEN.value
                )
            )
        )
    retired: set[Any] = set()
    if refs:
        retired = set(
            session.scalars(
                select(initiatives.c.ref).where(
                    initiatives.c.ref.in_(sorted(refs)), initiatives.c.status == Status.RETIRED.value
                )
            )
        )
    return [
        key
        for key, subject in subjects.items()
        if subject is not None and (subject.review_id in closed or subject.ref in retired)
    ]
