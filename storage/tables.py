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


def _table(model: type) -> Table:
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, Table)
    return table


initiatives = _table(InitiativeRow)
counters = _table(CounterRow)
answer_versions = _table(AnswerVersionRow)
evidence_links = _table(EvidenceLinkRow)
reviews = _table(ReviewRow)
decisions = _table(DecisionRow)
role_holders = _table(RoleHolderRow)
audit_log = _table(AuditRow)
outbox = _table(OutboxRow)
inbox = _table(InboxRow)
processed_events = _table(ProcessedEventRow)

INITIATIVE_REF_COUNTER = "initiative_ref"
AUDIT_SEQ_COUNTER = "audit_seq"
