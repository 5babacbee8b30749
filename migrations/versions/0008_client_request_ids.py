"""Client request ids on journaled purchases and ledger rows (issue 11).

Every Purchase=1 request carries an id of ours (X-Client-Request-Id), written in the
journal before it is sent and copied to its ledger row, so each ledger row can be matched
to the request PropertyRadar saw, or did not see.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("purchase_journal") as batch:
        batch.add_column(sa.Column("client_request_id", sa.String(length=36), nullable=True))
    with op.batch_alter_table("purchase_ledger") as batch:
        batch.add_column(sa.Column("client_request_id", sa.String(length=36), nullable=True))


def downgrade():
    with op.batch_alter_table("purchase_ledger") as batch:
        batch.drop_column("client_request_id")
    with op.batch_alter_table("purchase_journal") as batch:
        batch.drop_column("client_request_id")
