"""Answers given to questions, kept under their feedback key, so that a vote on an ephemeral
answer (``/shepherd ask``) is recorded with the answer it judges.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "asked_answers",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_asked_answers")),
    )
    with op.batch_alter_table("asked_answers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_asked_answers_posted_at"), ["posted_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("asked_answers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_asked_answers_posted_at"))
    op.drop_table("asked_answers")
