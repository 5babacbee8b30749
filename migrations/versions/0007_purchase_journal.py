"""Purchase journal and per-chunk checkpoint (issue 11).

purchase_journal holds each Purchase=1 request from before it is sent until its chunk is
stored; job_snapshot_items.stored marks the snapshot rows whose chunk is stored, since
concurrent chunks finish out of order.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "purchase_journal",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_job_id", sa.Integer(), nullable=False),
        sa.Column("chunk", sa.Integer(), nullable=False),
        sa.Column("radar_ids", sa.JSON(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("response", sa.Text(), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["batch_job_id"], ["batch_jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_purchase_journal_job", "purchase_journal", ["batch_job_id", "id"], unique=False
    )
    with op.batch_alter_table("job_snapshot_items") as batch:
        batch.add_column(
            sa.Column("stored", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    op.create_index(
        "ix_job_snapshot_items_to_store",
        "job_snapshot_items",
        ["batch_job_id", "stored", "position"],
        unique=False,
    )
    # Jobs part way through their purchase phase: everything before the old single
    # cursor (next_start) is stored.
    op.execute(
        "UPDATE job_snapshot_items SET stored = TRUE WHERE position < ("
        "SELECT batch_jobs.next_start FROM batch_jobs "
        "WHERE batch_jobs.id = job_snapshot_items.batch_job_id AND batch_jobs.phase = 'PURCHASE')"
    )


def downgrade():
    op.drop_index("ix_job_snapshot_items_to_store", table_name="job_snapshot_items")
    with op.batch_alter_table("job_snapshot_items") as batch:
        batch.drop_column("stored")
    op.drop_index("ix_purchase_journal_job", table_name="purchase_journal")
    op.drop_table("purchase_journal")
