"""The audit log: append-only and hash-chained, so any edit, deletion or reordering shows.

Entry ``n`` stores ``hash = sha256(canonical JSON of {seq, actor, action, target, payload, at,
prev_hash})`` with ``prev_hash`` the hash of entry ``n - 1`` (64 zeros for the first). The number
of entries written is also kept in the ``counters`` table (``audit_seq``), so cutting entries off
the end shows too.

Appends are serialised by the database: the counter row is bumped first (``UPDATE ... RETURNING``
takes its row lock on PostgreSQL until commit; on SQLite the write transaction already holds the
database's single write lock), and ``seq`` is the primary key, so two appenders can never both
write entry ``n`` and fork the chain.

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
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from gates.ports import TimelineEntry
from storage.repositories import bump_counter
from storage.sqlerrors import guarded
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


class SqlAuditLog:
    def __init__(self, session: Session) -> None:
        self._session = session
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
        for entry in pending:
            self._write(*entry)

    def _write(self, actor_id: str, action: str, target: str, text: str, at: datetime) -> None:
        seq = bump_counter(self._session, AUDIT_SEQ_COUNTER)
        prev = GENESIS
        if seq > 1:
            found = self._session.execute(select(audit_log.c.hash).where(audit_log.c.seq == seq - 1)).scalar()
            # A missing predecessor means the log was tampered with; chain to a marker that
            # verify() will report rather than refusing to record what is happening now.
            prev = found if found is not None else GENESIS
        self._session.execute(
            insert(audit_log).values(
                seq=seq,
                actor_id=actor_id,
                action=action,
                target=target,
                payload=text,
                at=at,
                prev_hash=prev,
                hash=entry_hash(seq, actor_id, action, target, text, at, prev),
            )
        )

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


@dataclass(frozen=True, slots=True)
class AuditReport:
    """The outcome of ``verify``: ``ok``, how many entries were checked, and the first bad one."""

    ok: bool
    checked: int
    bad_seq: int | None = None
    problem: str | None = None

    def __str__(self) -> str:
        if self.ok:
            return f"Audit log intact: {self.checked} entries, hash chain unbroken."
        return f"Audit log broken at entry {self.bad_seq}: {self.problem}"


def verify(session: Session, batch: int = 5_000) -> AuditReport:
    """Walk the whole chain and report the first entry that was modified, deleted or moved."""
    expected_seq = 1
    prev_hash = GENESIS
    while True:
        # Keyset pages rather than a server-side cursor: nothing is left open on an early return.
        page = list(
            session.execute(
                select(audit_log)
                .where(audit_log.c.seq >= expected_seq)
                .order_by(audit_log.c.seq)
                .limit(batch)
            ).mappings()
        )
        for row in page:
            problem = _check_entry(row, expected_seq, prev_hash)
            if problem is not None:
                return AuditReport(False, expected_seq - 1, expected_seq, problem)
            prev_hash = row["hash"]
            expected_seq += 1
        if len(page) < batch:
            break
    last_seq = expected_seq - 1
    written = session.execute(select(counters.c.value).where(counters.c.name == AUDIT_SEQ_COUNTER)).scalar()
    if written is not None and written > last_seq:
        gone = f"entries {last_seq + 1}-{written} were" if written > last_seq + 1 else f"entry {written} was"
        return AuditReport(False, last_seq, last_seq + 1, f"{gone} written but are gone (deleted).")
    return AuditReport(True, last_seq)


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
