"""Errors the storage layer raises on purpose, beside the domain's own ``gates.errors``.

    ShepherdError (gates.errors)
    └── StorageError                 the database cannot be used as it is; str() is one readable line
        ├── DatabaseUnavailable      cannot connect (server down, bad URL, unwritable file)
        ├── SchemaTooNew             the database was migrated by a newer Shepherd than this one
        ├── SchemaOutdated           the database needs ``shepherd db upgrade`` first
        ├── AuditLogAheadOfCounter   the audit log holds entries its counter never handed out, so
        │                            nothing audited can be recorded until someone looks
        └── AuditLogBeforeTheFirst   the audit log holds entries numbered below 1 (never written by
                                     Shepherd), so the schema cannot be upgraded until someone looks

Repositories raise the domain's errors (``UnknownInitiative``, ``ConcurrentUpdate`` ...), never
SQLAlchemy's: a lost race, a lock timeout or a deadlock all become ``ConcurrentUpdate``.
"""

from __future__ import annotations

from gates.errors import ShepherdError


class StorageError(ShepherdError):
    """The database cannot be used as it is. The message is one line, safe to print at start."""


class DatabaseUnavailable(StorageError):  # noqa: N818 - named for what the operator sees
    pass


class SchemaTooNew(StorageError):  # noqa: N818
    pass


class SchemaOutdated(StorageError):  # noqa: N818
    pass


class AuditLogAheadOfCounter(StorageError):  # noqa: N818
    """An audit entry was to be written under a number that is already taken: the log has
    entries beyond its counter (written without it: forged, or restored from elsewhere)."""


class AuditLogBeforeTheFirst(StorageError):  # noqa: N818
    """The audit log holds entries numbered below 1, which Shepherd never writes (its chain
    starts at 1): added by hand. Migration 0011 refuses to forbid them while they are there."""
