"""Slack message references: where each card, review request and note was posted.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "slack_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("ts", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slack_messages")),
        sa.UniqueConstraint("target", "kind", name="uq_slack_messages_target_kind"),
    )
    with op.batch_alter_table("slack_messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_slack_messages_target"), ["target"], unique=False)
        batch_op.create_index("ix_slack_messages_channel_ts", ["channel", "ts"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("slack_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_slack_messages_channel_ts")
        batch_op.drop_index(batch_op.f("ix_slack_messages_target"))
    op.drop_table("slack_messages")
