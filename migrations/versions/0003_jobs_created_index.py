"""Index batch_jobs.created_at for the admin's all-jobs list.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_batch_jobs_created", "batch_jobs", ["created_at"], unique=False)


def downgrade():
    op.drop_index("ix_batch_jobs_created", table_name="batch_jobs")
