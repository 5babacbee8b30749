"""What became of each snapshot row (issue 12, outcome files): bought, reused,
suppressed or vanished, written with the row's "stored" mark.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("job_snapshot_items") as batch:
        batch.add_column(sa.Column("outcome", sa.SmallInteger(), nullable=True))


def downgrade():
    with op.batch_alter_table("job_snapshot_items") as batch:
        batch.drop_column("outcome")
