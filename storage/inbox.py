"""The inbox: requests Slack has already been told "OK" about, kept until a worker applies them.

Why it exists: recording a decision takes 2-3 ms of CPU (the review, the domain rules, the audit
chain, the outbox), and an HTTP process spending that on every click cannot answer 50 clicks at
once within Slack's patience (``benchmarks/bench_slack.py``). The HTTP process therefore only makes
the request durable and answers; a worker, in its own process, applies it.

- **Accepting.** ``InboxWriter.accept`` returns once the request's row is committed, so an
  acknowledged click survives a crash. Requests arriving together share one transaction (group
  commit): a single writer thread takes everything queued while the previous commit was in
  flight, so a burst of 50 clicks costs a handful of commits, not 50.
- **Applying.** ``InboxProcessor`` claims due rows as the outbox worker does (a lease and a claim
  token; ``FOR UPDATE SKIP LOCKED`` on PostgreSQL) and hands each to the handler for its kind,
  with a unit-of-work factory whose commit also marks the row applied. The effect and the mark
  therefore commit together: a request is applied once, even if the worker dies mid-batch.
- **Failures.** A handler deals with refusals itself (it tells the person why). Anything it
  raises is treated as transient (database busy or down): the row is retried with backoff and
  marked ``dead`` with ``last_error`` after ``max_attempts``, which ``shepherd doctor`` and the
  metrics show. Nothing is dropped silently.
- **Outages.** A handler that cannot go on because Slack is unavailable (it must ask Slack who is
  in a user group) raises ``Unavailable``: the try is not counted, and the item (a whole batch,
  when its handler raised it) waits about as long again as it has found Slack unavailable
  (``leasing.outage_wait``, capped at ``max_delay``), so an outage of hours gives up on no click.
  Only after ``outage_limit`` (a day) of that is it marked dead.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from gates.ports import Clock
from storage import leasing
from storage.dialect import one_of
from storage.errors import DatabaseUnavailable
from storage.group_commit import GroupCommit
from storage.leasing import OUTAGE_LIMIT, PENDING, Unavailable, outage_over, outage_wait
from storage.leasing import describe as _describe
from storage.prepared import Prepared
from storage.sqlerrors import translated
from storage.tables import inbox

if TYPE_CHECKING:
    from storage.database import Database
    from storage.uow import SqlUnitOfWork

log = logging.getLogger(__name__)

APPLIED = "applied"
DEAD = "dead"


class LeaseLost(Exception):  # noqa: N818 - it names what happened
    """The processor's claim expired and another processor took the item over."""


@dataclass(frozen=True, slots=True)
class InboxItem:
    """One accepted request. ``received_at`` is when the person acted: use it as the event time."""

    id: int
    kind: str
    payload: Mapping[str, Any]
    attempts: int
    received_at: datetime
    holder_died: bool = False
    """Its previous attempt ended with the death of the worker holding it (``leasing.HOLDER_DIED``)."""
    unavailable_since: datetime | None = None
    """When a try first found Slack unavailable (``Unavailable``), if one has."""


UnitOfWorkFactory = Callable[[], "SqlUnitOfWork"]
Handler = Callable[[InboxItem, UnitOfWorkFactory], None]
BatchHandler = Callable[[Sequence[InboxItem], UnitOfWorkFactory], None]


class InboxWriter:
    """Makes requests durable with group commit (``storage.group_commit``); ``accept`` is safe to
    call from many threads.

    Args:
        database: where the inbox lives.
        clock: the time source for ``received_at``.
        max_batch: the most requests committed together.
        timeout: how long ``accept`` waits for its commit before reporting the database unavailable.
    """

    def __init__(
        self, database: Database, clock: Clock, *, max_batch: int = 256, timeout: float = 10.0
    ) -> None:
        self._database = database
        self._clock = clock
        self.timeout = timeout
        self._writer: GroupCommit[dict[str, Any], None] = GroupCommit(
            self._write, name="shepherd-inbox-writer", max_batch=max_batch
        )

    @property
    def commits(self) -> int:
        """Transactions written; with ``accepted`` it shows how well batching works."""
        return self._writer.commits

    @property
    def accepted(self) -> int:
        return self._writer.written

    def accept(self, kind: str, payload: Mapping[str, Any]) -> None:
        """Store one request; returns once it is committed.

        Raises:
            DatabaseUnavailable: it could not be stored (the caller must not tell Slack "OK").
        """
        self.wait(self.submit(kind, payload))

    def submit(self, kind: str, payload: Mapping[str, Any]) -> Future[None]:
        """Queue one request for the next commit; the future completes when it is durable (or
        fails with ``DatabaseUnavailable``). For callers that wait elsewhere, such as an event
        loop that must not block."""
        now = self._clock.now()
        row = {
            "kind": kind,
            "payload": dict(payload),
            "status": PENDING,
            "attempts": 0,
            "received_at": now,
            "next_attempt_at": now,
        }
        return self._writer.submit(row)

    def wait(self, stored: Future[None]) -> None:
        """Block until ``stored`` (from ``submit``) is committed.

        Raises:
            DatabaseUnavailable: it was not stored, or not within ``timeout``.
        """
        try:
            stored.result(self.timeout)
        except FutureTimeout:
            raise DatabaseUnavailable(
                f"The request could not be stored within {self.timeout:g} s; the database is too slow or down."
            ) from None

    def close(self) -> None:
        """Stop the writer thread once what is queued has been written."""
        self._writer.close(self.timeout)

    def _write(self, rows: Sequence[dict[str, Any]]) -> list[None]:
        try:
            with self._database.session() as session, translated():
                session.execute(insert(inbox), list(rows))
                session.commit()
        except DatabaseUnavailable:
            raise
        except Exception as error:
            raise DatabaseUnavailable(str(error)) from error
        return [None] * len(rows)


_CLAIMED = ("id", "kind", "payload", "attempts", "received_at", "last_error", "unavailable_since")


class InboxProcessor:
    """Applies accepted requests through ``handlers`` (by kind); run one or several.

    Args:
        database: where the inbox lives.
        handlers: for each kind, a function applying one item; it must do its writes through
            the unit of work factory it is given, whose ``commit`` also marks the item applied.
        batch_handlers: for some kinds, a function applying consecutive items of that kind
            together (one transaction instead of one each). If it raises, the items are applied
            one at a time through ``handlers``, so one bad item cannot hold up the others.
        clock: the time source.
        batch_size: items claimed per transaction.
        lease: how long a claim hides items from other processors.
        max_attempts: failures after which an item is marked dead.
        base_delay: the wait after the first failure; doubles with each.
        max_delay: the longest wait while Slack is unavailable (``Unavailable``): how late,
            at most, a click waiting on Slack is recorded once Slack answers again.
        outage_limit: how long an item may keep finding Slack unavailable, from the first time,
            before it is marked dead (``leasing.OUTAGE_LIMIT``).
        on_dead: told of each item marked dead (and why), so the person who was told "OK" can
            hear that it was not recorded after all; its own failures are only logged.
        claimant: names this processor's claims (``leasing.claim_due``), so that they can be
            handed back as soon as its process is known to have died.
        step_aside: seconds to pause after each write transaction (the claim, each applied
            round). SQLite's write lock is not fair: a loop that begins its next transaction as
            soon as it commits takes the lock again before a waiting writer polls, and the
            writers waiting here are acks storing clicks. Measured at 50 connections of
            Approve on SQLite: 3 ms took p99 ack from 94-110 to 65-74 ms, decisions/s unchanged.
    """

    def __init__(
        self,
        database: Database,
        handlers: Mapping[str, Handler],
        clock: Clock,
        *,
        batch_handlers: Mapping[str, BatchHandler] | None = None,
        batch_size: int = 50,
        lease: timedelta = timedelta(minutes=2),
        max_attempts: int = 5,
        base_delay: timedelta = timedelta(seconds=1),
        max_delay: timedelta = timedelta(minutes=5),
        outage_limit: timedelta = OUTAGE_LIMIT,
        rng: random.Random | None = None,
        on_dead: Callable[[InboxItem, str], None] | None = None,
        step_aside: float = 0.0,
        claimant: str = "",
    ) -> None:
        self._database = database
        self.claimant = claimant
        self.step_aside = step_aside
        self._on_dead = on_dead
        self._handlers = dict(handlers)
        self._batch_handlers = dict(batch_handlers or {})
        self._clock = clock
        self.batch_size = batch_size
        self.lease = lease
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.outage_limit = outage_limit
        self._rng = rng or random.Random()
        self._claims: dict[int, leasing.Claim] = {}  # by batch size

    def run_once(self, limit: int | None = None) -> int:
        """Claim up to ``limit`` due items and apply them in arrival order; returns how many were applied."""
        claimed, token = self._claim(limit or self.batch_size)
        if claimed and self.step_aside:
            _pause(self.step_aside)
        claimed = self._without_doomed(self._one_suspect_alone(claimed, token), token)
        applied = 0
        for kind, run in itertools.groupby(claimed, key=lambda item: item.kind):
            items = list(run)
            batch_handler = self._batch_handlers.get(kind)
            batch = (
                self._apply_batch(batch_handler, items, token)
                if batch_handler is not None and len(items) > 1
                else None
            )
            if batch is None:
                applied += sum(self._apply(item, token) for item in items)
            else:
                applied += batch
        return applied

    def drain(self, rounds: int = 100) -> int:
        """Apply until nothing is due (tests, and ``shepherd worker --once``)."""
        total = 0
        for _ in range(rounds):
            applied = self.run_once()
            total += applied
            if not applied and not self._due():
                break
        return total

    def run_forever(self, stop_event: threading.Event, poll_interval: float = 0.05) -> None:
        """Apply until ``stop_event`` is set; sleeps ``poll_interval`` when nothing is due."""
        while not stop_event.is_set():
            try:
                busy = self.run_once() > 0
            except Exception:
                log.exception("inbox round failed; retrying after a pause")
                busy = False
            if not busy:
                stop_event.wait(poll_interval)
            elif self.step_aside:
                _pause(self.step_aside)

    # -- internals --------------------------------------------------------------------------

    def _one_suspect_alone(self, claimed: list[InboxItem], token: str) -> list[InboxItem]:
        """When a worker died holding some of these, apply the first such item by itself and
        hand the rest back uncounted: if that item is what kills workers, it takes nothing else
        down with it, and only its own attempts run out."""
        suspect = next((item for item in claimed if item.holder_died), None)
        if suspect is None:
            return claimed
        others = [item.id for item in claimed if item is not suspect]
        leasing.hand_back(self._database, inbox, others, token)
        return [suspect]

    def _without_doomed(self, claimed: list[InboxItem], token: str) -> list[InboxItem]:
        """Items whose every attempt ended without a verdict (their worker died or stalled past
        the lease each time) are dead, not retried forever."""
        kept = []
        for item in claimed:
            if item.attempts > self.max_attempts:
                reason = f"{item.attempts - 1} attempts ended without a result (the worker died or stalled)"
                self._finish(item, token, status=DEAD, error=reason)
            else:
                kept.append(item)
        return kept

    def _apply_batch(self, handler: BatchHandler, items: list[InboxItem], token: str) -> int | None:
        """How many of ``items`` ``handler`` applied together, or None if they are to be applied
        one at a time."""
        marker = _MarkApplied([item.id for item in items], token, self._clock)
        try:
            handler(items, lambda: self._database.uow(hook=marker))
        except Unavailable as error:
            if marker.applied:
                return len(items)
            # One at a time, each would only wait on Slack the same way.
            self._wait_out(items, token, error)
            return 0
        except Exception as error:
            if marker.applied:
                # It committed (marking the items) before failing: applying them again one at a
                # time would apply them twice.
                log.warning(
                    "a batch of %d %s item(s) failed after it was recorded: %s",
                    len(items),
                    items[0].kind,
                    error,
                )
                return len(items)
            log.info(
                "a batch of %d %s item(s) failed (%s); applying them one at a time",
                len(items),
                items[0].kind,
                error,
            )
            return None
        if not marker.applied:
            with self._database.session() as session, translated():
                _mark_applied(session, [item.id for item in items], token, self._clock.now())
                session.commit()
        return len(items)

    def _apply(self, item: InboxItem, token: str) -> int:
        handler = self._handlers.get(item.kind)
        if handler is None:
            self._finish(item, token, status=DEAD, error=f"no handler for {item.kind!r}")
            return 0
        marker = _MarkApplied([item.id], token, self._clock)

        try:
            handler(item, lambda: self._database.uow(hook=marker))
        except Unavailable as error:
            if marker.applied:
                return 1
            self._wait_out([item], token, error)
            return 0
        except Exception as error:
            if marker.applied:
                log.warning("inbox item %s (%s) failed after it was recorded: %s", item.id, item.kind, error)
                return 1
            attempts_left = item.attempts < self.max_attempts
            log.warning(
                "inbox item %s (%s) failed (attempt %d): %s", item.id, item.kind, item.attempts, error
            )
            if attempts_left:
                delay = self.base_delay * (2 ** (item.attempts - 1))
                retry_at = self._clock.now() + delay / 2 + delay / 2 * self._rng.random()
                self._finish(item, token, status=PENDING, error=_describe(error), next_attempt_at=retry_at)
            else:
                self._finish(item, token, status=DEAD, error=_describe(error))
            return 0
        if not marker.applied:
            # The handler committed nothing (a duplicate click, a refusal told to the person).
            self._finish(item, token, status=APPLIED)
        return 1

    def _wait_out(self, items: Sequence[InboxItem], token: str, error: Unavailable) -> None:
        """Put ``items`` off while Slack is unavailable, without counting the try, all due again
        at the same moment so that they are still applied together; mark dead those that have
        waited so for ``outage_limit``."""
        now = self._clock.now()
        waiting = []
        for item in items:
            since = item.unavailable_since or now
            over = outage_over(since, now, self.outage_limit, error)
            if over is not None:
                self._finish(item, token, status=DEAD, error=over)
            else:
                waiting.append((item, since))
        if not waiting:
            return
        earliest = min(since for _, since in waiting)
        wait = outage_wait(earliest, now, self.base_delay, self.max_delay, self._rng, error.retry_after)
        (log.info if earliest < now else log.warning)(
            "%d inbox item(s) (%s) wait %s while Slack is unavailable: %s",
            len(waiting),
            items[0].kind,
            wait,
            error,
        )
        for since in {since for _, since in waiting}:
            leasing.finish_many(
                self._database,
                inbox,
                [item.id for item, started in waiting if started == since],
                token,
                {
                    "attempts": inbox.c.attempts - 1,
                    "unavailable_since": since,
                    "last_error": _describe(error)[:2000],
                    "next_attempt_at": now + wait,
                },
            )

    def _due(self) -> bool:
        now = self._clock.now()
        with self._database.session(read_only=True) as session:
            return (
                session.execute(select(inbox.c.id).where(*leasing.due(inbox, now)).limit(1)).first()
                is not None
            )

    def _claim(self, limit: int) -> tuple[list[InboxItem], str]:
        claim = self._claims.get(limit)
        if claim is None:
            claim = self._claims[limit] = leasing.Claim(inbox, _CLAIMED, limit)
        rows, token = claim(self._database, self._clock.now(), self.lease, self.claimant)
        return [
            InboxItem(
                r["id"],
                r["kind"],
                r["payload"],
                r["attempts"],
                r["received_at"],
                holder_died=r["last_error"] == leasing.HOLDER_DIED,
                unavailable_since=r["unavailable_since"],
            )
            for r in rows
        ], token

    def _finish(
        self,
        item: InboxItem,
        token: str,
        *,
        status: str,
        error: str | None = None,
        next_attempt_at: datetime | None = None,
    ) -> None:
        values: dict[str, Any] = {"status": status}
        if status != PENDING:
            values["done_at"] = self._clock.now()
        if error is not None:
            values["last_error"] = error[:2000]
        if next_attempt_at is not None:
            values["next_attempt_at"] = next_attempt_at
        if not leasing.finish(self._database, inbox, item.id, token, values):
            return  # another processor holds it now
        if status == DEAD:
            log.error("inbox item %s (%s) is dead: %s", item.id, item.kind, error)
            if self._on_dead is not None:
                try:
                    self._on_dead(item, error or "")
                except Exception:
                    log.exception("could not tell anyone that inbox item %s is dead", item.id)


# Stepping aside (``InboxProcessor.step_aside``); tests replace it to observe the pauses.
_pause = time.sleep


class _MarkApplied:
    """A commit hook: the handler's transaction also marks the item applied (once)."""

    def __init__(self, item_ids: list[int], token: str, clock: Clock) -> None:
        self._item_ids, self._token, self._clock = item_ids, token, clock
        self._marking = False
        self.applied = False

    def before_commit(self, session: Session) -> None:
        if self.applied:
            return  # a later transaction of the same handler (a follow-up message, say)
        marked = _mark_applied(session, self._item_ids, self._token, self._clock.now())
        if marked != len(self._item_ids):
            # Our claim ran out and another processor took the item: committing now would apply
            # it twice. Failing the commit rolls this transaction back.
            raise LeaseLost(f"the claim on inbox item(s) {self._item_ids} expired before they were applied")
        self._marking = True

    def after_commit(self) -> None:
        self.applied = self.applied or self._marking
        self._marking = False


def inbox_counts(database: Database) -> dict[str, int]:
    """How many requests are pending, applied and dead."""
    with database.session(read_only=True) as session:
        rows = session.execute(select(inbox.c.status, func.count()).group_by(inbox.c.status))
        return {status: int(count) for status, count in rows}


def _mark_applied(session: Session, item_ids: list[int], token: str, at: datetime) -> int:
    """Mark the items still claimed with ``token`` applied; returns how many were."""
    connection = session.connection()
    rows = _mark_applied_statement(connection.dialect.name).all(
        connection, {"item_ids": item_ids, "token": token, "at": at}
    )
    return len(rows)


@cache
def _mark_applied_statement(dialect: str) -> Prepared:
    # Built once and run on the driver: built and run through SQLAlchemy on every round, the
    # mark was a fifteenth of the worker's time per recorded decision on SQLite.
    return Prepared(
        update(inbox)
        .where(
            one_of(inbox.c.id, "item_ids", dialect),
            inbox.c.claim_token == bindparam("token"),
            inbox.c.status == PENDING,
        )
        .values(
            status=APPLIED,
            done_at=bindparam("at", type_=inbox.c.done_at.type),
            locked_until=None,
            claim_token=None,
        )
        .returning(inbox.c.id)
    )
