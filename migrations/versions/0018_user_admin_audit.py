"""User admin (issue 13): users.disabled_at and users.read_only, the audit_events table,
indexes that read job transitions and purchases by time (the audit page, the charts), and
one that finds a user's active or just-ended jobs (the notification poll on every page).

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade():
    # Plain ADD COLUMN, no batch rebuild: on SQLite a rebuild of `users` drops the old
    # table, which with foreign keys on cascades into every user's jobs (see 0004).
    op.add_column("users", sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "users",
        sa.Column("read_only", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=320), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("target_user_id", sa.Integer(), nullable=True),
        sa.Column("target_email", sa.String(length=254), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["target_user_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_events_created", "audit_events", ["created_at", "id"])
    op.create_index("ix_job_transitions_created", "job_transitions", ["created_at", "id"])
    op.create_index("ix_purchase_ledger_created", "purchase_ledger", ["created_at"])
    op.create_index(
        "ix_batch_jobs_owner_status_completed",
        "batch_jobs",
        ["created_by", "status", "completed_at"],
    )


def downgrade():
    op.drop_index("ix_batch_jobs_owner_status_completed", table_name="batch_jobs")
    op.drop_index("ix_purchase_ledger_created", table_name="purchase_ledger")
    op.drop_index("ix_job_transitions_created", table_name="job_transitions")
    op.drop_table("audit_events")
    op.drop_column("users", "read_only")
    op.drop_column("users", "disabled_at")
