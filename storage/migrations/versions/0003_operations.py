"""Operations: time box extensions, periodic operations reviews, fired scheduled events and the
scheduler lease; ``initiatives.extended_until``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("initiatives", schema=None) as batch_op:
        batch_op.add_column(sa.Column("extended_until", sa.DateTime(timezone=True), nullable=True))

    op.create_table(
        "time_box_extensions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("initiative_id", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(length=64), nullable=False),
        sa.Column("previous_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("new_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("author_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["initiative_id"],
            ["initiatives.id"],
            name=op.f("fk_time_box_extensions_initiative_id_initiatives"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_time_box_extensions")),
    )
    with op.batch_alter_table("time_box_extensions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_time_box_extensions_initiative_id"), ["initiative_id"], unique=False
        )

    op.create_table(
        "operations_reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("initiative_id", sa.Integer(), nullable=False),
        sa.Column("reviewer_id", sa.String(length=64), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("next_due", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["initiative_id"],
            ["initiatives.id"],
            name=op.f("fk_operations_reviews_initiative_id_initiatives"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operations_reviews")),
    )
    with op.batch_alter_table("operations_reviews", schema=None) as batch_op:
        batch_op.create_index(
            "ix_operations_reviews_initiative_reviewed", ["initiative_id", "reviewed_at"], unique=False
        )

    op.create_table(
        "fired_events",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_fired_events")),
    )
    op.create_table(
        "scheduler_leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_scheduler_leases")),
    )


def downgrade() -> None:
    op.drop_table("scheduler_leases")
    op.drop_table("fired_events")
    with op.batch_alter_table("operations_reviews", schema=None) as batch_op:
        batch_op.drop_index("ix_operations_reviews_initiative_reviewed")
    op.drop_table("operations_reviews")
    with op.batch_alter_table("time_box_extensions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_time_box_extensions_initiative_id"))
    op.drop_table("time_box_extensions")
    with op.batch_alter_table("initiatives", schema=None) as batch_op:
        batch_op.drop_column("extended_until")
