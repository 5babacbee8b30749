"""Import faults (issue 9): unbounded lead text, purchase claims, job warnings.

- Lead text columns become TEXT: a bought record must never be rejected for the length
  of a value (PostgreSQL raised StringDataRightTruncation on varchar(64) and the chunk,
  already paid for, was lost; every retry bought it again).
- purchase_claims: the RadarIDs a job is buying right now, so two jobs never buy the
  same record at the same time.
- batch_jobs.unidentified_count, search_total, warning: records bought without a
  RadarID, the search's first total, and the warning shown when the stored leads differ.

Revision ID: 0005
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Column name -> its former varchar length (for the downgrade).
LEAD_TEXT_COLUMNS = {
    "address": 200,
    "city": 100,
    "state": 2,
    "zip_code": 10,
    "county": 10,
    "apn": 64,
    "owner_name": 200,
    "owner2": 200,
    "owner_first_name": 100,
    "owner_last_name": 100,
    "mail_address": 200,
    "mail_city": 100,
    "mail_state": 2,
    "mail_zip": 10,
    "property_type": 64,
    "foreclosure_stage": 64,
}


def upgrade():
    # varchar -> text is a catalogue-only change on PostgreSQL (no table rewrite);
    # SQLite never enforced the lengths, batch mode keeps its schema in step.
    with op.batch_alter_table("properties", schema=None) as batch_op:
        for name, length in LEAD_TEXT_COLUMNS.items():
            batch_op.alter_column(
                name,
                existing_type=sa.String(length=length),
                type_=sa.Text(),
                existing_nullable=True,
            )

    op.create_table(
        "purchase_claims",
        sa.Column("radar_id", sa.String(length=32), nullable=False),
        sa.Column("batch_job_id", sa.Integer(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["batch_job_id"], ["batch_jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("radar_id"),
    )
    op.create_index("ix_purchase_claims_job", "purchase_claims", ["batch_job_id"], unique=False)

    with op.batch_alter_table("batch_jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("unidentified_count", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("search_total", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("warning", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("purchase_started_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade():
    with op.batch_alter_table("batch_jobs", schema=None) as batch_op:
        batch_op.drop_column("purchase_started_at")
        batch_op.drop_column("warning")
        batch_op.drop_column("search_total")
        batch_op.drop_column("unidentified_count")

    op.drop_index("ix_purchase_claims_job", table_name="purchase_claims")
    op.drop_table("purchase_claims")

    # Values longer than the old limits are cut to fit (the full record stays in raw).
    if op.get_bind().dialect.name == "postgresql":
        for name, length in LEAD_TEXT_COLUMNS.items():
            op.execute(f"UPDATE properties SET {name} = LEFT({name}, {length})")
    with op.batch_alter_table("properties", schema=None) as batch_op:
        for name, length in LEAD_TEXT_COLUMNS.items():
            batch_op.alter_column(
                name,
                existing_type=sa.Text(),
                type_=sa.String(length=length),
                existing_nullable=True,
            )
