"""Audit entries are numbered from 1: an entry numbered 0 or below lay outside the chain that
``shepherd audit verify`` walked, yet showed on its initiative's timeline and evidence pack.

A database that already holds such entries is not changed: they were added by hand (Shepherd
never writes them), and someone has to look at them before they are removed.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from storage.errors import AuditLogBeforeTheFirst

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    below = [
        seq
        for (seq,) in op.get_bind().execute(
            sa.text("SELECT seq FROM audit_log WHERE seq < 1 ORDER BY seq LIMIT 6")
        )
    ]
    if below:
        named = ", ".join(str(seq) for seq in below[:5]) + (" ..." if len(below) > 5 else "")
        raise AuditLogBeforeTheFirst(
            f"The audit log holds entries numbered below 1 ({named}), which Shepherd never writes: "
            "they were added by hand. Keep a copy for your investigation, delete them "
            "(DELETE FROM audit_log WHERE seq < 1) and run `shepherd db upgrade` again."
        )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_check_constraint(op.f("ck_audit_log_seq_positive"), "seq >= 1")


def downgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_audit_log_seq_positive"), type_="check")
