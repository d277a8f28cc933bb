"""Persistence for Shepherd: SQLAlchemy repositories behind the ``gates.ports`` protocols,
Alembic migrations, the hash-chained audit log, the inbox of acknowledged requests
(``storage.inbox``) and the transactional outbox.

The bot uses::

    database = Database(url)            # sqlite_url(data_dir) by default
    database.upgrade()                  # or database.check() when an operator migrates
    with database.uow() as uow: ...     # a gates.ports.UnitOfWork, plus uow.dedupe
    database.claim(event_id, now)       # first delivery of a Slack event / action?
    InboxWriter(database, clock).accept(kind, payload)     # durable before Slack hears "OK"
    GroupCommit(write, name=...).submit(item)              # a Future; batches share a transaction
    InboxProcessor(database, handlers, clock).run_forever(stop_event)
    OutboxWorker(database, sender, clock).run_forever(stop_event)
    verify_audit(database, pipeline)    # AuditReport: ok, or the first bad entry / disagreement
    retention.prune(database, now, retention)  # rows deleted per table (daily, by the scheduler)
"""

from __future__ import annotations

from gates.loader import CompiledPipeline
from storage.audit import AuditReport
from storage.database import Database, sqlite_url
from storage.errors import (
    AuditLogAheadOfCounter,
    AuditLogBeforeTheFirst,
    DatabaseUnavailable,
    SchemaOutdated,
    SchemaTooNew,
    StorageError,
)
from storage.leasing import Unavailable
from storage.outbox import OutboxMessage, OutboxWorker, PermanentFailure, Postponed, outbox_counts
from storage.uow import SqlUnitOfWork


def verify_audit(database: Database, pipeline: CompiledPipeline | None = None) -> AuditReport:
    """Check the whole audit chain, then the decisions and reviews against it; the report names
    the first modified, deleted, moved or inserted entry, or where the tables disagree with it.
    ``pipeline`` types the answers to recompute each review's evidence hash (without it, the
    hashes are not recomputed)."""
    from storage.audit import verify

    # One moment of the database: the walk of the chain, the counter and the tables it checks
    # them against take many statements while Shepherd may be writing.
    with database.snapshot() as session:
        return verify(session, pipeline=pipeline)


__all__ = [
    "AuditLogAheadOfCounter",
    "AuditLogBeforeTheFirst",
    "AuditReport",
    "Database",
    "DatabaseUnavailable",
    "OutboxMessage",
    "OutboxWorker",
    "PermanentFailure",
    "Postponed",
    "SchemaOutdated",
    "SchemaTooNew",
    "SqlUnitOfWork",
    "StorageError",
    "Unavailable",
    "outbox_counts",
    "sqlite_url",
    "verify_audit",
]
