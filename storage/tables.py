"""Core ``Table`` handles for the repositories, which work in SQL expressions, not ORM objects:
rows never linger in an identity map, so a conditional UPDATE is always judged on fresh data."""

from __future__ import annotations

from sqlalchemy import Table

from storage.models import (
    AnswerVersionRow,
    AuditRow,
    CounterRow,
    DecisionRow,
    EvidenceLinkRow,
    InboxRow,
    InitiativeRow,
    OutboxRow,
    ProcessedEventRow,
    ReviewRow,
    RoleHolderRow,
)


def table_of(model: type) -> Table:
    """The Core table of an ORM model, typed as one (``__table__`` is typed as any FromClause)."""
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, Table)
    return table


initiatives = table_of(InitiativeRow)
counters = table_of(CounterRow)
answer_versions = table_of(AnswerVersionRow)
evidence_links = table_of(EvidenceLinkRow)
reviews = table_of(ReviewRow)
decisions = table_of(DecisionRow)
role_holders = table_of(RoleHolderRow)
audit_log = table_of(AuditRow)
outbox = table_of(OutboxRow)
inbox = table_of(InboxRow)
processed_events = table_of(ProcessedEventRow)

INITIATIVE_REF_COUNTER = "initiative_ref"
AUDIT_SEQ_COUNTER = "audit_seq"
