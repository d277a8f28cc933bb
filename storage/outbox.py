"""The transactional outbox and its delivery worker.

Use cases ``put`` messages in the same transaction as the change that caused them, so a
notification exists if and only if the change was committed. ``OutboxWorker`` delivers them
through a pluggable ``sender``:

- **Claiming.** A worker claims a batch under a lease in one short transaction (``storage.leasing``,
  shared with the inbox): ``SKIP LOCKED`` on PostgreSQL lets several workers claim disjoint
  batches; a claimed message is invisible to other workers until its lease runs out.
- **Delivering.** After the sender returns, the message is marked delivered, conditionally on
  the claim token. A message is therefore sent once by one worker.
- **At least once, honestly.** If a worker dies between sending and marking (or a send outlasts
  the lease), the lease expires and the message is sent again. The sender receives the
  message ``id``; use it as an idempotency key (for Slack: remember which ids were posted, or
  look for the message before posting) where a duplicate would matter.
- **Failures.** A sender signals failure by raising. The message is retried after
  ``base_delay * 2 ** (attempts - 1)`` (capped at ``max_delay``) with jitter, and moves to
  ``dead`` with ``last_error`` after ``max_attempts``. ``PermanentFailure`` dead-letters at once.
- **Outages.** ``Unavailable`` (Slack down, rate limiting, unreachable) is not the message's
  fault: the try is not counted, the message waits about as long again as it has found Slack
  unavailable (``leasing.outage_wait``: doubling, capped at ``max_delay``, at least Slack's
  ``Retry-After``), and so does the rest of the round, since each would only fail the same way.
  It is dead-lettered only after ``outage_limit`` (a day) of that. ``requeue_dead`` sends dead
  messages again (``shepherd outbox retry``).
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from gates.ports import Clock
from storage import leasing
from storage.audit import canonical_json
from storage.dialect import insert_ignoring_conflicts_for, one_of
from storage.leasing import OUTAGE_LIMIT, PENDING, Unavailable, outage_over, outage_wait
from storage.leasing import describe as _describe
from storage.prepared import Prepared
from storage.sqlerrors import guarded
from storage.tables import outbox

if TYPE_CHECKING:
    from storage.database import Database

log = logging.getLogger(__name__)

DELIVERED = "delivered"
DEAD = "dead"
# The ``waits_with`` value of a hold on the whole round (Slack unavailable to every message).
_EVERYONE = object()


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One notification to deliver. ``id`` is stable across retries: use it to deduplicate."""

    id: int
    kind: str
    payload: Mapping[str, Any]
    dedupe_key: str | None
    attempts: int
    created_at: datetime
    unavailable_since: datetime | None = None
    """When a try first found Slack unavailable (``Unavailable``), if one has."""
    holder_died: bool = False
    """Its previous attempt ended with the death of the worker sending it (``leasing.HOLDER_DIED``)."""


class PermanentFailure(Exception):  # noqa: N818 - the name the brief and the bot use
    """Raised by a sender when retrying cannot help (channel archived, user gone)."""


class Postponed(Exception):  # noqa: N818 - it names what happens to the message
    """Raised by a sender when nothing can be sent yet, through no fault of the message (the
    app is not installed yet): the message waits ``delay`` and the attempt is not counted, so
    waiting never dead-letters it.

    ``holds_round``: the rest of the round that would wait the same way waits too (the messages
    ``OutboxWorker``'s ``waits_with`` puts with this one); False when only this message (and
    those after it in its order) must wait.
    """

    def __init__(
        self, message: str, delay: timedelta = timedelta(minutes=1), holds_round: bool = True
    ) -> None:
        super().__init__(message)
        self.delay = delay
        self.holds_round = holds_round


class _HeldForOutage(Postponed):
    """The round held back because Slack is unavailable (``OutboxWorker._wait_out``), as opposed
    to a sender that could not try at all."""


class SqlOutbox:
    """The outbox of one unit of work: messages are queued here and written when it commits
    (``flush``), all at once: the merge keys of a whole batch of questionnaire pages are checked
    in one statement and their messages inserted in one, where each page cost two round trips
    on PostgreSQL."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._pending: list[dict[str, Any]] = []

    def put(
        self,
        kind: str,
        payload: Mapping[str, Any],
        at: datetime,
        dedupe_key: str | None = None,
        merge_key: str | None = None,
    ) -> None:
        """Queue a message in the caller's transaction; a repeated ``dedupe_key`` is ignored, and
        so is a ``merge_key`` whose message no sender has claimed yet (``gates.ports.Outbox``)."""
        self._pending.append(
            {
                "kind": kind,
                # Round-trip through canonical JSON so datetimes and enums are stored as text.
                "payload": json.loads(canonical_json(dict(payload))),
                "dedupe_key": dedupe_key,
                "status": PENDING,
                "attempts": 0,
                "created_at": at,
                "next_attempt_at": at,
                "merge_key": merge_key,
            }
        )

    def discard(self) -> None:
        """Forget messages not yet written (the transaction rolled back)."""
        self._pending.clear()

    @guarded
    def flush(self) -> None:
        """Write the queued messages, in the order they were put, in the current transaction."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        connection = self._session.connection()
        dialect = connection.dialect.name
        keys = sorted({values["merge_key"] for values in pending if values["merge_key"] is not None})
        waiting = (
            {row["merge_key"] for row in _waiting(dialect).all(connection, {"p_keys": keys})}
            if keys
            else set()
        )
        rows = []
        for values in pending:
            key = values["merge_key"]
            if key is not None:
                if key in waiting:
                    continue
                waiting.add(key)  # a second message with this key in this transaction merges too
            rows.append(values)
        if rows:
            connection.execute(insert_ignoring_conflicts_for(dialect, outbox), rows)


@cache
def _waiting(dialect: str) -> Prepared:
    """Which of the merge keys ``p_keys`` have a message waiting, unclaimed, that stays so until
    this transaction commits.

    Never claimed, so whoever sends it reads the state after this transaction: on SQLite no
    claim can happen inside a write transaction; on PostgreSQL the rows are locked here until
    commit, and a claim skips locked rows. A row being claimed right now is skipped (and a new
    message queued), since that sender may read the state before this commits.
    """
    return Prepared(
        select(outbox.c.merge_key)
        .where(
            one_of(outbox.c.merge_key, "p_keys", dialect),
            outbox.c.status == PENDING,
            outbox.c.claim_token.is_(None),
        )
        .with_for_update(skip_locked=True)
    )


_CLAIMED = (
    "id",
    "kind",
    "payload",
    "dedupe_key",
    "attempts",
    "created_at",
    "unavailable_since",
    "last_error",
)
# With ``settle``: a message that may still be merged into waits until it has settled.
_SETTLED = or_(
    outbox.c.merge_key.is_(None),
    outbox.c.next_attempt_at <= bindparam("settled_before", type_=outbox.c.next_attempt_at.type),
)


class OutboxWorker:
    """Delivers due outbox messages through ``sender``; run one or several (threads, processes).

    Args:
        database: where the outbox lives.
        sender: delivers one message; raises to signal failure, ``PermanentFailure`` to give up,
            ``Unavailable`` to wait out an outage, ``Postponed`` to wait without trying.
        clock: the time source (tests pass a controllable one).
        max_attempts: failures after which a message is dead-lettered.
        base_delay: wait before the first retry; doubles with each failure.
        max_delay: the longest wait between attempts (and between tries while Slack is
            unavailable).
        outage_limit: how long a message may keep finding Slack unavailable (``Unavailable``),
            from the first time, before it is dead-lettered (``leasing.OUTAGE_LIMIT``).
        lease: how long a claim hides a message from other workers; keep it well above the
            sender's own timeout.
        batch_size: messages claimed per transaction.
        rng: source of jitter (seed it in tests).
        concurrency: senders working at once; messages with the same ``ordering_key`` go out
            one after the other, in order.
        supersedes: ``supersedes(later, earlier)`` is true when sending ``later`` makes sending
            ``earlier`` pointless (both only redraw the same thing from the current state).
            Such an ``earlier`` message, claimed in the same batch and with the same ordering
            key, is marked delivered without being sent.
        claimant: names this worker's claims (``leasing.claim_due``), so that they can be handed
            back as soon as its process is known to have died.
        settle: how long a message with a merge key (``SqlOutbox.put``) waits before it is sent,
            so that what follows soon after merges into it rather than being sent again.
        waits_with: messages with the same value wait together when the sender postpones one of
            them (``Postponed.holds_round``), such as those sent with one workspace's token;
            others in the round are still tried. By default the whole round waits. A Slack
            outage (``Unavailable``) holds back the whole round whatever this says.
    """

    def __init__(
        self,
        database: Database,
        sender: Callable[[OutboxMessage], None],
        clock: Clock,
        *,
        max_attempts: int = 8,
        base_delay: timedelta = timedelta(seconds=2),
        max_delay: timedelta = timedelta(minutes=15),
        lease: timedelta = timedelta(minutes=2),
        batch_size: int = 20,
        rng: random.Random | None = None,
        concurrency: int = 1,
        ordering_key: Callable[[OutboxMessage], object] | None = None,
        supersedes: Callable[[OutboxMessage, OutboxMessage], bool] | None = None,
        claimant: str = "",
        settle: timedelta = timedelta(0),
        outage_limit: timedelta = OUTAGE_LIMIT,
        waits_with: Callable[[OutboxMessage], Hashable] | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._database = database
        self._sender = sender
        self._clock = clock
        self.claimant = claimant
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.outage_limit = outage_limit
        self.lease = lease
        self.batch_size = batch_size
        self._rng = rng or random.Random()
        self.concurrency = max(1, concurrency)
        self._ordering_key = ordering_key or (lambda message: message.id)
        self._supersedes = supersedes
        self.settle = settle
        self._claims: dict[tuple[int, bool], leasing.Claim] = {}  # by batch size and settling
        self._pool = ThreadPoolExecutor(self.concurrency, "outbox-send") if self.concurrency > 1 else None
        self._stopping: threading.Event | None = None  # run_forever's stop event
        self._waits_with = waits_with or (lambda message: None)
        # Set by the sender during this round: what is held back, by ``waits_with`` value
        # (``_EVERYONE``: all of it).
        self._postponed: dict[Hashable, Postponed] = {}
        self._send_until = clock.now()  # when this round stops starting sends (``run_once``)

    def run_once(self, limit: int | None = None) -> int:
        """Claim up to ``limit`` due messages (default: one batch), send them; returns how many
        were delivered, superseded ones included (marked delivered, never sent)."""
        self._postponed = {}
        # Past half the lease, a message not started yet is handed back instead of sent: a send
        # can take a minute with Slack slow (timeouts, Retry-After), and one still going when the
        # claim runs out may be sent again by the worker that takes it over.
        self._send_until = self._clock.now() + self.lease / 2
        claimed = self._without_doomed(self._one_suspect_alone(self._claim(limit or self.batch_size)))
        groups: dict[object, list[tuple[OutboxMessage, str]]] = {}
        for item in claimed:
            groups.setdefault(self._ordering_key(item[0]), []).append(item)
        skipped = 0
        if self._supersedes is not None:
            superseded: list[tuple[OutboxMessage, str]] = []
            for key, group in groups.items():
                groups[key] = self._coalesce(group, superseded)
            skipped = self._mark_superseded(superseded)
        if self._pool is None or len(groups) <= 1:
            return skipped + sum(self._deliver_each(group) for group in groups.values())
        # Messages about the same thing (one initiative) go out in order, one after the other;
        # different things go out in parallel, so one slow Slack call does not hold up the rest.
        return skipped + sum(self._pool.map(self._deliver_each, groups.values()))

    def _one_suspect_alone(self, claimed: list[tuple[OutboxMessage, str]]) -> list[tuple[OutboxMessage, str]]:
        """When a worker died sending some of these, send the first such message by itself and
        hand the rest back uncounted: if that message is what kills workers (the OOM killer, a
        crash), every worker after it died with it, and every notification waited behind it for
        good; alone, it takes nothing else down, and only its own attempts run out."""
        suspect = next((item for item in claimed if item[0].holder_died), None)
        if suspect is None:
            return claimed
        self._release([item for item in claimed if item is not suspect], self._clock.now())
        return [suspect]

    def _without_doomed(self, claimed: list[tuple[OutboxMessage, str]]) -> list[tuple[OutboxMessage, str]]:
        """Messages whose every attempt ended without a verdict (their worker died, or stalled
        past the lease, each time) are dead, not claimed again forever."""
        kept = []
        for message, token in claimed:
            if message.attempts > self.max_attempts:
                reason = (
                    f"{message.attempts - 1} attempts ended without a result (the worker died or stalled)"
                )
                self._finish(message, token, status=DEAD, error=reason)
            else:
                kept.append((message, token))
        return kept

    def _coalesce(
        self, group: list[tuple[OutboxMessage, str]], superseded: list[tuple[OutboxMessage, str]]
    ) -> list[tuple[OutboxMessage, str]]:
        """``group`` without the messages a later one in it supersedes (added to ``superseded``).

        Twenty questionnaire pages saved in a minute queue twenty redraws of the same card: one
        ``chat.update`` with the latest state says the same, and spares Slack's rate limit.
        """
        assert self._supersedes is not None
        kept: list[tuple[OutboxMessage, str]] = []
        for index, (message, token) in enumerate(group):
            later = next((m for m, _ in group[index + 1 :] if self._supersedes(m, message)), None)
            if later is None:
                kept.append((message, token))
            else:
                log.debug("outbox message %s superseded by %s", message.id, later.id)
                superseded.append((message, token))
        return kept

    def _mark_superseded(self, items: list[tuple[OutboxMessage, str]]) -> int:
        """Mark ``items`` delivered in one transaction (one round claims them with one token)."""
        if not items:
            return 0
        return leasing.finish_many(
            self._database,
            outbox,
            [message.id for message, _ in items],
            items[0][1],
            {"status": DELIVERED, "delivered_at": self._clock.now()},
        )

    def _deliver_each(self, items: list[tuple[OutboxMessage, str]]) -> int:
        """Send ``items`` (one ordering key's) one after the other; returns how many were delivered.

        A stop request, a postponing sender or a claim half run out hands back what is left; a
        failed message holds back the ones after it until its retry.
        """
        delivered = 0
        for index, (message, token) in enumerate(items):
            if self._stopping is not None and self._stopping.is_set():
                self._release(items[index:], self._clock.now())
                break
            if self._clock.now() >= self._send_until:
                log.info("outbox round past half its lease: %d messages handed back", len(items) - index)
                self._release(items[index:], self._clock.now(), "handed back: the claim was running out")
                break
            # The sender cannot send anything yet (no installation): what would wait the same
            # way waits too, unless only that message had to (``Postponed.holds_round``).
            scope = self._waits_with(message)
            wait = self._postponed.get(_EVERYONE) or self._postponed.get(scope)
            if wait is None:
                try:
                    sent, retry_at = self._deliver(message, token)
                except Postponed as postponed:
                    wait = postponed
                    if postponed.holds_round:
                        self._postponed[scope] = postponed
            if wait is not None:
                # Waiting for an installation is not finding Slack unavailable: days of it
                # (a reinstall) must not dead-letter these at their first 429 after it.
                self._release(
                    items[index:],
                    self._clock.now() + wait.delay,
                    _describe(wait),
                    outage_over=not isinstance(wait, _HeldForOutage),
                )
                break
            delivered += sent
            if retry_at is not None:
                # Keep the order: what follows a failed message waits for its retry (due at the
                # same moment, claimed after it), without using up attempts of its own. After a
                # dead-lettered message the rest go on: it will never be sent.
                self._release(items[index + 1 :], retry_at, "waiting for an earlier message")
                break
        return delivered

    def run_forever(self, stop_event: threading.Event, poll_interval: float = 1.0) -> None:
        """Deliver until ``stop_event`` is set; sleeps ``poll_interval`` when nothing is due.

        Once it is set, messages not yet started are handed back at once rather than sent: with
        Slack slow or down, finishing a claimed batch (retries included) took a stopping worker
        over a minute, and another worker would have waited for the lease to expire.
        """
        self._stopping = stop_event
        while not stop_event.is_set():
            try:
                busy = self.run_once() > 0
            except Exception:
                log.exception("outbox delivery round failed; retrying after a pause")
                busy = False
            if not busy:
                stop_event.wait(poll_interval)

    def _release(
        self,
        items: Sequence[tuple[OutboxMessage, str]],
        due: datetime,
        reason: str | None = None,
        outage_over: bool = False,
    ) -> None:
        """Hand claimed messages back, due at ``due``, without counting the attempt they never
        really had; ``outage_over`` as for ``leasing.hand_back``."""
        by_claim: dict[str, list[int]] = {}
        for message, token in items:
            by_claim.setdefault(token, []).append(message.id)
        for token, ids in by_claim.items():
            leasing.hand_back(
                self._database, outbox, ids, token, due=due, reason=reason, outage_over=outage_over
            )

    def backoff(self, attempts: int) -> timedelta:
        """The wait after the ``attempts``-th failure: exponential, capped, half of it jittered."""
        full: timedelta = min(self.max_delay, self.base_delay * (2 ** max(0, attempts - 1)))
        jitter: timedelta = full / 2 * self._rng.random()
        return full / 2 + jitter

    # -- internals --------------------------------------------------------------------------

    def _claim(self, limit: int) -> list[tuple[OutboxMessage, str]]:
        now = self._clock.now()
        settled = bool(self.settle)
        claim = self._claims.get((limit, settled))
        if claim is None:
            claim = self._claims[(limit, settled)] = leasing.Claim(
                outbox, _CLAIMED, limit, (_SETTLED,) if settled else ()
            )
        rows, token = claim(
            self._database, now, self.lease, self.claimant, {"settled_before": now - self.settle}
        )
        messages = [
            OutboxMessage(
                r["id"],
                r["kind"],
                r["payload"],
                r["dedupe_key"],
                r["attempts"],
                r["created_at"],
                r["unavailable_since"],
                r["last_error"] == leasing.HOLDER_DIED,
            )
            for r in rows
        ]
        return [(m, token) for m in messages]

    def _deliver(self, message: OutboxMessage, token: str) -> tuple[int, datetime | None]:
        """(1, None) if sent; (0, when) if it failed and will be retried at ``when``; (0, None)
        if it was dead-lettered (or its lease ran out meanwhile).

        Raises:
            Postponed: from the sender, for the caller to hand this and what follows back.
        """
        try:
            self._sender(message)
        except Postponed:
            raise
        except PermanentFailure as error:
            self._finish(message, token, status=DEAD, error=f"permanent: {_describe(error)}")
            return 0, None
        except Unavailable as error:
            return 0, self._wait_out(message, token, error)
        except Exception as error:
            if message.attempts >= self.max_attempts:
                self._finish(message, token, status=DEAD, error=_describe(error))
                return 0, None
            retry_at = self._clock.now() + self.backoff(message.attempts)
            self._finish(message, token, status=PENDING, error=_describe(error), next_attempt_at=retry_at)
            return 0, retry_at
        return (1 if self._finish(message, token, status=DELIVERED) else 0), None

    def _wait_out(self, message: OutboxMessage, token: str, error: Unavailable) -> datetime | None:
        """Put ``message`` off while Slack is unavailable, without counting the try, and the rest
        of the round with it (they would only fail the same way, each costing the client's own
        retries) unless the error says only this message must wait (``holds_round``); returns
        when it is due again, or None once ``outage_limit`` is reached and it is dead-lettered."""
        now = self._clock.now()
        since = message.unavailable_since or now
        over = outage_over(since, now, self.outage_limit, error)
        if over is not None:
            self._finish(message, token, status=DEAD, error=over)
            return None
        wait = outage_wait(since, now, self.base_delay, self.max_delay, self._rng, error.retry_after)
        # Said once per message and outage; its later waits are routine.
        (log.info if message.unavailable_since else log.warning)(
            "outbox message %s waits %s: %s", message.id, wait, error
        )
        if error.holds_round:
            self._postponed[_EVERYONE] = _HeldForOutage(
                f"held back while Slack is unavailable: {error}", wait
            )
        leasing.finish(
            self._database,
            outbox,
            message.id,
            token,
            {
                "attempts": outbox.c.attempts - 1,
                "unavailable_since": since,
                "last_error": _describe(error)[:2000],
                "next_attempt_at": now + wait,
            },
        )
        return now + wait

    def _finish(
        self,
        message: OutboxMessage,
        token: str,
        *,
        status: str,
        error: str | None = None,
        next_attempt_at: datetime | None = None,
    ) -> bool:
        values: dict[str, Any] = {"status": status}
        if status == DELIVERED:
            values["delivered_at"] = self._clock.now()
        if error is not None:
            values["last_error"] = error[:2000]
        if next_attempt_at is not None:
            values["next_attempt_at"] = next_attempt_at
        if not leasing.finish(self._database, outbox, message.id, token, values):
            log.warning("outbox message %s: lease expired before it was marked %s", message.id, status)
            return False
        if status == DEAD:
            log.warning("outbox message %s (%s) dead-lettered: %s", message.id, message.kind, error)
        return True


def outbox_counts(database: Database) -> dict[str, int]:
    """How many messages are pending, delivered and dead."""
    with database.session(read_only=True) as session:
        rows = session.execute(select(outbox.c.status, func.count()).group_by(outbox.c.status))
        return {status: int(count) for status, count in rows}


@dataclass(frozen=True, slots=True)
class DeadMessage:
    """A message given up on, as ``shepherd outbox list-dead`` shows it."""

    id: int
    kind: str
    ref: str | None
    """The initiative it is about, when its payload names one."""
    created_at: datetime
    attempts: int
    last_error: str | None


def dead_messages(database: Database) -> list[DeadMessage]:
    """Every dead message, oldest first."""
    columns = (outbox.c.id, outbox.c.kind, outbox.c.payload, outbox.c.created_at, outbox.c.attempts)
    with database.session(read_only=True) as session:
        rows = session.execute(
            select(*columns, outbox.c.last_error).where(outbox.c.status == DEAD).order_by(outbox.c.id)
        ).all()
    return [
        DeadMessage(
            row.id,
            row.kind,
            str(row.payload["ref"]) if isinstance(row.payload, dict) and row.payload.get("ref") else None,
            row.created_at,
            row.attempts,
            row.last_error,
        )
        for row in rows
    ]


def outbox_statuses(database: Database, ids: Sequence[int]) -> dict[int, str]:
    """The status of each message of ``ids`` that exists."""
    with database.session(read_only=True) as session:
        rows = session.execute(select(outbox.c.id, outbox.c.status).where(outbox.c.id.in_(list(ids))))
        return {int(row_id): str(status) for row_id, status in rows}


@guarded
def requeue_dead(database: Database, ids: Sequence[int] | None = None) -> list[int]:
    """Make dead messages (those of ``ids``, or all) pending again, with their attempts and
    their outage forgotten, so that a worker sends them as if they were new; returns the ids
    requeued (those of ``ids`` that were dead), in order.

    They are due at once: ``next_attempt_at`` stays when they were last due, already past (on
    whatever clock the worker runs). A message goes out as of the current state (the notifier reads it again), after
    any later message of its initiative that was delivered meanwhile.
    """
    requeue = (
        update(outbox)
        .where(outbox.c.status == DEAD, *(() if ids is None else (outbox.c.id.in_(list(ids)),)))
        .values(
            status=PENDING,
            attempts=0,
            unavailable_since=None,
            locked_until=None,
            claim_token=None,
        )
        .returning(outbox.c.id)
    )
    with database.session() as session:
        requeued = sorted(int(row_id) for row_id in session.execute(requeue).scalars())
        session.commit()
    for row_id in requeued:
        log.info("outbox message %s requeued by an operator", row_id)
    return requeued
