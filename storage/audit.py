"""The audit log: append-only and hash-chained, so any edit, deletion or reordering shows.

Entry ``n`` stores ``hash = sha256(canonical JSON of {seq, actor, action, target, payload, at,
prev_hash})`` with ``prev_hash`` the hash of entry ``n - 1`` (64 zeros for the first). The number
of entries written is also kept in the ``counters`` table (``audit_seq``), so cutting entries off
the end shows too, and numbers start at 1 (a CHECK constraint; ``verify`` reads from the smallest
number there is, so an entry slipped in before the first shows even where the constraint was
dropped). The chain proves only itself: ``verify`` then checks the decisions and reviews against
what it records (``storage.audit_records``).

Appends are serialised by the database: the counter row is bumped first (``UPDATE ... RETURNING``
takes its row lock on PostgreSQL until commit; on SQLite the write transaction already holds the
database's single write lock), and ``seq`` is the primary key, so two appenders can never both
write entry ``n`` and fork the chain. An entry added without the counter (forged at the end, with
its hash computed) therefore takes a number the counter hands out next: ``verify`` reports it,
and the append that collides with it fails with ``AuditLogAheadOfCounter``.

All entries of one transaction are written together: one counter bump for all of them, then the
inserts. The first entry needs its predecessor's hash. Each ``Database`` remembers the last entry
its units of work wrote (``ChainHead``); when that is the predecessor, the first insert is
``INSERT ... SELECT ... WHERE EXISTS (predecessor with that seq and hash)``, so the database itself
confirms the link against what it holds, and no separate read is needed while the chain lock is
held. If the guess is wrong (another process appended, the guessed entry rolled back, or the row
was altered) nothing is inserted and the predecessor is read, exactly as without a guess.

``append`` only buffers; the unit of work writes the buffer just before it commits. The chain
lock is therefore the last lock every transaction takes and is held for the shortest time: a
use case that appends an entry and then updates a row can never deadlock with one that updated
that row first and then appends. A rollback drops the buffer with everything else.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import bindparam, column, exists, func, insert, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gates.loader import CompiledPipeline
from gates.ports import TimelineEntry
from storage.audit_records import RecordsCheck
from storage.errors import AuditLogAheadOfCounter
from storage.prepared import Prepared
from storage.sqlerrors import guarded, is_unique_violation
from storage.tables import AUDIT_SEQ_COUNTER, audit_log, counters

GENESIS = "0" * 64


def canonical_json(value: Any) -> str:
    """One text for one value: sorted keys, no spaces, datetimes and enums as text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_jsonable)


def entry_hash(
    seq: int, actor_id: str, action: str, target: str, payload: str, at: datetime, prev_hash: str
) -> str:
    """The hash of one entry; ``payload`` is the canonical JSON text as stored."""
    fields = {
        "seq": seq,
        "actor": actor_id,
        "action": action,
        "target": target,
        "payload": payload,
        "at": _iso(at),
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical_json(fields).encode("utf-8")).hexdigest()


class ChainHead:
    """The last entry this process wrote, as ``(seq, hash)``: a guess at the predecessor of the
    next entry, confirmed by the database before it is relied on. It may name an entry whose
    transaction has not committed yet (the writer queued behind it then links without a read as
    soon as it commits) or one that rolled back (the confirmation fails and the chain's end is read).
    """

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last: tuple[int, str] | None = None

    def wrote(self, seq: int, hash_: str) -> None:
        last = self.last
        # ">=": a rolled-back entry's seq is handed out again, and the new entry replaces it.
        if last is None or seq >= last[0]:
            self.last = (seq, hash_)


class SqlAuditLog:
    def __init__(self, session: Session, head: ChainHead | None = None) -> None:
        self._session = session
        self._head = head if head is not None else ChainHead()
        self._pending: list[tuple[str, str, str, str, datetime]] = []

    def append(
        self, actor_id: str, action: str, target: str, payload: Mapping[str, Any], at: datetime
    ) -> None:
        """Add one entry at the end of the chain when the caller's transaction commits."""
        self._pending.append((actor_id, action, target, canonical_json(dict(payload)), at))

    def discard(self) -> None:
        """Forget entries not yet written (the transaction rolled back)."""
        self._pending.clear()

    @guarded
    def flush(self) -> None:
        """Write the buffered entries at the end of the chain, in the current transaction."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        connection = self._session.connection()
        first_seq = self._reserve(len(pending)) - len(pending) + 1
        rows: list[dict[str, Any]] = [
            {
                "seq": first_seq + n,
                "actor_id": actor,
                "action": action,
                "target": target,
                "payload": text,
                "at": at,
            }
            for n, (actor, action, target, text, at) in enumerate(pending)
        ]
        head = self._head.last
        unwritten = rows
        # On PostgreSQL every entry goes in one statement (rows as arrays): an INSERT per
        # entry, even pipelined, was a send and polls per entry, and each of them hands this
        # interpreter's GIL over and waits to get it back (27 sends and 52 polls for a batch
        # of 25 questionnaire pages).
        together = connection.dialect.name == "postgresql"
        try:
            if first_seq == 1:
                _chain(rows, GENESIS)
            elif head is not None and head[0] == first_seq - 1:
                _chain(rows, head[1])
                # RETURNING, not rowcount: drivers need not report a row count for INSERT ... SELECT.
                if together:
                    linked = _insert_all(if_predecessor=True).all(
                        connection, {**_columns_of(rows), "p_link_seq": first_seq - 1, "p_link_hash": head[1]}
                    )
                    written = len(rows) if linked else 0
                else:
                    linked = _INSERT_IF_PREDECESSOR.all(connection, {**rows[0], "p_prev_seq": first_seq - 1})
                    written = 1 if linked else 0
                if written:
                    unwritten = rows[written:]
                else:
                    _chain(rows, self._predecessor(first_seq))
            else:
                _chain(rows, self._predecessor(first_seq))
            if unwritten and together:
                _insert_all(if_predecessor=False).all(connection, _columns_of(unwritten))
            elif unwritten:
                connection.execute(_INSERT, unwritten)
        except IntegrityError as error:
            if not is_unique_violation(error):
                raise
            # The counter's lock is held: only an entry written without it can take these numbers.
            taken = (
                f"entry {first_seq}" if len(rows) == 1 else f"one of entries {first_seq}-{rows[-1]['seq']}"
            )
            raise AuditLogAheadOfCounter(
                f"The audit log has entries beyond its counter: it counts {first_seq - 1} written, "
                f"yet {taken} already exists, so nothing audited can be recorded. "
                "Run `shepherd audit verify`."
            ) from error
        self._head.wrote(rows[-1]["seq"], rows[-1]["hash"])

    def _predecessor(self, seq: int) -> str:
        found = next(
            (row["hash"] for row in _HASH_OF.all(self._session.connection(), {"p_seq": seq - 1})), None
        )
        # A missing predecessor means the log was tampered with; chain to a marker that verify()
        # will report rather than refusing to record what is happening now.
        return str(found) if found is not None else GENESIS

    def _reserve(self, count: int) -> int:
        """Bump the chain counter by ``count`` (taking the chain lock); returns the last seq."""
        connection = self._session.connection()
        last = next((row["value"] for row in _BUMP.all(connection, {"p_count": count})), None)
        if last is not None:
            return int(last)
        try:
            with self._session.begin_nested():
                # Through the session, so that the savepoint is really emitted.
                self._session.connection().execute(
                    _CREATE_COUNTER, {"name": AUDIT_SEQ_COUNTER, "value": count}
                )
        except IntegrityError as error:
            if not is_unique_violation(error):
                raise
            return self._reserve(count)  # someone else created it a moment ago
        return count

    @guarded
    def last_at(self, action: str, targets: Sequence[str]) -> dict[str, datetime]:
        """When each of ``targets`` last had an entry ``action`` (one grouped query)."""
        if not targets:
            return {}
        if any(entry[1] == action and entry[2] in targets for entry in self._pending):
            self.flush()
        rows = self._session.execute(
            select(audit_log.c.target, func.max(audit_log.c.at))
            .where(audit_log.c.action == action, audit_log.c.target.in_(list(targets)))
            .group_by(audit_log.c.target)
        )
        return {target: at for target, at in rows}

    @guarded
    def timeline(self, target: str) -> Sequence[TimelineEntry]:
        """Every entry about ``target``, oldest first (including ones not committed yet)."""
        if any(entry[2] == target for entry in self._pending):
            self.flush()
        rows = self._session.execute(
            select(audit_log.c.at, audit_log.c.actor_id, audit_log.c.action, audit_log.c.payload)
            .where(audit_log.c.target == target)
            .order_by(audit_log.c.seq)
        )
        return [TimelineEntry(at, actor, action, json.loads(payload)) for at, actor, action, payload in rows]


def _chain(rows: list[dict[str, Any]], prev: str) -> None:
    """Link ``rows`` (consecutive entries) after an entry whose hash is ``prev``."""
    for row in rows:
        row["prev_hash"] = prev
        row["hash"] = prev = entry_hash(
            row["seq"], row["actor_id"], row["action"], row["target"], row["payload"], row["at"], prev
        )


_BUMP = Prepared(
    update(counters)
    .where(counters.c.name == AUDIT_SEQ_COUNTER)
    .values(value=counters.c.value + bindparam("p_count"))
    .returning(counters.c.value)
)
_CREATE_COUNTER = insert(counters)
_HASH_OF = Prepared(select(audit_log.c.hash).where(audit_log.c.seq == bindparam("p_seq")))
_INSERT = insert(audit_log)
_INSERT_IF_PREDECESSOR = Prepared(
    insert(audit_log)
    .from_select(
        [column.name for column in audit_log.c],
        select(*[bindparam(column.name, type_=column.type) for column in audit_log.c]).where(
            exists().where(
                audit_log.c.seq == bindparam("p_prev_seq"), audit_log.c.hash == bindparam("prev_hash")
            )
        ),
    )
    .returning(audit_log.c.seq)
)


@cache
def _insert_all(*, if_predecessor: bool) -> Prepared:
    """PostgreSQL: ``_INSERT`` (or ``_INSERT_IF_PREDECESSOR``, the predecessor being entry
    ``p_link_seq`` with hash ``p_link_hash``) of any number of entries in one statement: each
    column's values come as an array (``_columns_of``) that ``unnest`` turns back into rows, in
    their order. Linked, all are written; not linked, none."""
    names = [c.name for c in audit_log.c]
    given = (
        func.unnest(*[bindparam(f"p_{c.name}", type_=ARRAY(c.type)) for c in audit_log.c])
        .table_valued(*[column(c.name, c.type) for c in audit_log.c])
        .render_derived(name="given")
    )
    rows = select(*[given.c[name] for name in names])
    if if_predecessor:
        rows = rows.where(
            exists().where(
                audit_log.c.seq == bindparam("p_link_seq"), audit_log.c.hash == bindparam("p_link_hash")
            )
        )
    return Prepared(insert(audit_log).from_select(names, rows).returning(audit_log.c.seq))


def _columns_of(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """``rows`` as ``_insert_all`` takes them: one list per column."""
    return {f"p_{c.name}": [row[c.name] for row in rows] for c in audit_log.c}


@dataclass(frozen=True, slots=True)
class AuditReport:
    """The outcome of ``verify``: ``ok``, how many entries were checked, the first bad one, and
    where the decisions and reviews disagree with the chain (``storage.audit_records``)."""

    ok: bool
    checked: int
    bad_seq: int | None = None
    problem: str | None = None
    decisions: int = 0
    """Decisions checked against their audit entries."""
    reviews: int | None = None
    """Reviews whose evidence hash was recomputed; None when no pipeline was given to type the answers."""
    disagreements: tuple[str, ...] = ()
    """Where the tables disagree with the chain (the first ``audit_records.LISTED``)."""
    unlisted: int = 0
    """Further disagreements, counted but not listed."""

    def __str__(self) -> str:
        if self.bad_seq is not None:
            return f"Audit log broken at entry {self.bad_seq}: {self.problem}"
        evidence = (
            f"evidence hashes recomputed for {_count(self.reviews, 'review')}"
            if self.reviews is not None
            else "evidence hashes not recomputed, no pipeline given"
        )
        checked = f"{_count(self.decisions, 'decision')} checked against it, {evidence}"
        if not self.disagreements:
            return f"Audit log intact: {self.checked} entries, hash chain unbroken; {checked}."
        lines = [
            f"The tables disagree with the audit log in {self.unlisted + len(self.disagreements)} "
            f"place(s) (the log itself is intact: {self.checked} entries, hash chain unbroken; {checked}):"
        ]
        lines += [f"  - {text}" for text in self.disagreements]
        if self.unlisted:
            lines.append(f"  ... and {self.unlisted} more.")
        return "\n".join(lines)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def verify(session: Session, batch: int = 5_000, pipeline: CompiledPipeline | None = None) -> AuditReport:
    """Walk the whole chain and report the first entry that was modified, deleted, moved or
    inserted; then check the decisions and reviews against it (``storage.audit_records``).

    Args:
        pipeline: types the answers to recompute each review's evidence hash; without it the
            hashes are not recomputed.
    """
    expected_seq = 1
    prev_hash = GENESIS
    after: int | None = None
    records = RecordsCheck()
    while True:
        # Keyset pages rather than a server-side cursor: nothing is left open on an early return.
        # From the smallest number, whatever it is: an entry numbered below 1 would otherwise go
        # unread, although its target's timeline shows it.
        statement = select(audit_log).order_by(audit_log.c.seq).limit(batch)
        if after is not None:
            statement = statement.where(audit_log.c.seq > after)
        page = session.execute(statement).mappings().all()
        for row in page:
            if row["seq"] < 1:
                return _before_the_first(session, row)
            problem = _check_entry(row, expected_seq, prev_hash)
            if problem is not None:
                return AuditReport(False, expected_seq - 1, expected_seq, problem)
            records.note(row)
            prev_hash = row["hash"]
            expected_seq += 1
        if len(page) < batch:
            break
        after = page[-1]["seq"]
    last_seq = expected_seq - 1
    written = session.execute(select(counters.c.value).where(counters.c.name == AUDIT_SEQ_COUNTER)).scalar()
    if written is not None and written > last_seq:
        gone = f"entries {last_seq + 1}-{written} were" if written > last_seq + 1 else f"entry {written} was"
        return AuditReport(False, last_seq, last_seq + 1, f"{gone} written but are gone (deleted).")
    counted = written or 0  # no counter: no entry was ever written through Shepherd
    if last_seq > counted:
        # Chained correctly, but never counted: added by hand (forged) or restored from
        # elsewhere. The next append would take the same number, and fail.
        beyond = f"entries {counted + 1}-{last_seq} are" if last_seq > counted + 1 else f"entry {last_seq} is"
        return AuditReport(
            False,
            counted,
            counted + 1,
            f"{beyond} beyond the counter, which says {counted} were written: added without Shepherd "
            "(forged, or restored from elsewhere); audited writes fail until this is resolved.",
        )
    found = records.check(session, pipeline, batch)
    return AuditReport(
        found.total == 0,
        last_seq,
        decisions=found.decisions,
        reviews=found.reviews if found.recomputed else None,
        disagreements=tuple(found.listed),
        unlisted=found.total - len(found.listed),
    )


def _before_the_first(session: Session, row: Any) -> AuditReport:
    """The report on entries numbered below 1 (``row`` is the smallest), which Shepherd never
    writes and migration 0011 forbids: inserted with the constraint out of the way."""
    count = session.execute(select(func.count()).where(audit_log.c.seq < 1)).scalar_one()
    first = f"entry {row['seq']} ({row['action']} on {row['target']})"
    said = (
        f"{first} is numbered below 1, before the chain's first entry: inserted by hand (forged), "
        "yet shown on its target's timeline and evidence pack."
        if count == 1
        else f"{count} entries, from {first}, are numbered below 1, before the chain's first entry: "
        "inserted by hand (forged), yet shown on their targets' timelines and evidence packs."
    )
    return AuditReport(False, 0, row["seq"], said)


def _check_entry(row: Any, expected_seq: int, prev_hash: str) -> str | None:
    seq = row["seq"]
    if seq != expected_seq:
        span = (
            f"entries {expected_seq}-{seq - 1} are" if seq - 1 > expected_seq else f"entry {expected_seq} is"
        )
        return f"{span} missing (deleted)."
    if row["prev_hash"] != prev_hash:
        after = f"follow entry {seq - 1}" if seq > 1 else "start the chain"
        return f"it does not {after} (entries were reordered, replaced or deleted)."
    recomputed = entry_hash(
        seq, row["actor_id"], row["action"], row["target"], row["payload"], row["at"], row["prev_hash"]
    )
    if recomputed != row["hash"]:
        return f"its content was modified ({row['action']} on {row['target']})."
    return None


def _iso(at: datetime) -> str:
    aware = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return aware.isoformat(timespec="microseconds")


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, set | frozenset | tuple):
        return sorted(value, key=str) if isinstance(value, set | frozenset) else list(value)
    return str(value)
