"""The tables, as SQLAlchemy 2 declarative models.

These rows are storage's own shapes; repositories translate them to and from the domain's
dataclasses, so ``gates`` never sees a row. The migrations in ``storage/migrations`` create the
same schema; ``tests/storage/test_migrations.py`` checks the two agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend.

    SQLite has no time zones, so values are stored as naive UTC there; a naive value handed in
    is taken to be UTC already.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class InitiativeRow(Base):
    __tablename__ = "initiatives"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ref: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(300))
    owner_id: Mapped[str] = mapped_column(String(64), index=True)
    sponsor_id: Mapped[str | None] = mapped_column(String(64))
    stage: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    status_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    stage_entered_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # A time box extension for the current stage (migration 0003); cleared when the stage changes.
    extended_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Row version for optimistic locking: every save is UPDATE ... WHERE version = :loaded.
    version: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))

    __table_args__ = (
        Index("ix_initiatives_stage_status", "stage", "status"),
        Index("ix_initiatives_stage_entered", "stage", "stage_entered_at"),
    )


class CounterRow(Base):
    """Named counters (the initiative ref number); bumped with one atomic UPDATE."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(Integer)


class AnswerVersionRow(Base):
    __tablename__ = "answer_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    initiative_id: Mapped[int] = mapped_column(ForeignKey("initiatives.id", ondelete="RESTRICT"))
    gate_id: Mapped[str] = mapped_column(String(64))
    question_id: Mapped[str] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(Integer)
    value: Mapped[Any] = mapped_column(JSON(none_as_null=True), nullable=True)
    author_id: Mapped[str] = mapped_column(String(64))
    answered_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        # Doubles as the index that finds the latest version of each question.
        UniqueConstraint("initiative_id", "question_id", "version", name="uq_answer_versions_version"),
    )


class EvidenceLinkRow(Base):
    __tablename__ = "evidence_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    initiative_id: Mapped[int] = mapped_column(ForeignKey("initiatives.id", ondelete="RESTRICT"), index=True)
    gate_id: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    author_id: Mapped[str] = mapped_column(String(64))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ReviewRow(Base):
    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    initiative_id: Mapped[int] = mapped_column(ForeignKey("initiatives.id", ondelete="RESTRICT"), index=True)
    gate_id: Mapped[str] = mapped_column(String(64))
    from_stage: Mapped[str] = mapped_column(String(64))
    to_stage: Mapped[str] = mapped_column(String(64))
    submitted_by: Mapped[str] = mapped_column(String(64))
    owner_id: Mapped[str] = mapped_column(String(64))
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    pipeline_version: Mapped[str] = mapped_column(String(128))
    evidence_hash: Mapped[str] = mapped_column(String(64))
    requirements: Mapped[Any] = mapped_column(JSON)
    tier: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    exception_reason: Mapped[str | None] = mapped_column(Text)
    # Bumped by every save that records a decision or changes status, so two approvers who
    # each supply "the last" approval cannot both commit against the same state.
    version: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))

    __table_args__ = (
        Index(
            "uq_reviews_one_open",
            "initiative_id",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
        Index("ix_reviews_status", "status"),
    )


class DecisionRow(Base):
    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    review_id: Mapped[int] = mapped_column(ForeignKey("reviews.id", ondelete="RESTRICT"))
    approver_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    role: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime())
    roles: Mapped[str | None] = mapped_column(Text)
    """The review's roles the approver held, space-separated (``Decision.roles``)."""

    __table_args__ = (UniqueConstraint("review_id", "approver_id", name="uq_decisions_review_approver"),)


class RoleHolderRow(Base):
    __tablename__ = "role_holders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    role: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(64), index=True)

    __table_args__ = (UniqueConstraint("role", "user_id", name="uq_role_holders_role_user"),)


class AuditRow(Base):
    """One link of the hash chain. ``payload`` is kept as the exact canonical JSON text that was
    hashed, so verification never depends on how a backend re-serialises JSON."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    actor_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(128), index=True)
    payload: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    # The chain starts at 1 (migration 0011): an entry numbered below it would lie outside the
    # chain that ``verify`` walks, yet show on its target's timeline and evidence pack.
    __table_args__ = (CheckConstraint("seq >= 1", name="seq_positive"),)


class OutboxRow(Base):
    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[Any] = mapped_column(JSON)
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default=text("'pending'"))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claim_token: Mapped[str | None] = mapped_column(String(64))
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    merge_key: Mapped[str | None] = mapped_column(String(200))
    """Messages with the same merge key say the same thing: while one waits, another is not queued."""
    unavailable_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When its sender first found Slack unavailable (``storage.leasing.Unavailable``)."""

    __table_args__ = (
        Index("ix_outbox_due", "status", "next_attempt_at"),
        Index("ix_outbox_merge", "merge_key", "status"),
    )


class InboxRow(Base):
    """A request Slack has been answered "OK" for, kept until a worker applies it (``storage.inbox``)."""

    __tablename__ = "inbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[Any] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default=text("'pending'"))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claim_token: Mapped[str | None] = mapped_column(String(64))
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    unavailable_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When its handler first found Slack unavailable (``storage.leasing.Unavailable``)."""

    __table_args__ = (Index("ix_inbox_due", "status", "next_attempt_at"),)


class ProcessedEventRow(Base):
    """Slack event ids / action keys already handled: the first insert wins."""

    __tablename__ = "processed_events"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


def _add_slack_tables() -> None:
    """slack_sdk's installation and OAuth state stores build their own tables; declaring them on
    our metadata lets the migration test prove the migration creates exactly what they expect."""
    from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
    from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore

    store = SQLAlchemyInstallationStore
    store.build_installations_table(Base.metadata, store.default_installations_table_name)
    store.build_bots_table(Base.metadata, store.default_bots_table_name)
    SQLAlchemyOAuthStateStore.build_oauth_states_table(
        Base.metadata, SQLAlchemyOAuthStateStore.default_table_name
    )


_add_slack_tables()
