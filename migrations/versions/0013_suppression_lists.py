"""Suppression lists (issue 12): RadarIDs a user must never buy.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "suppression_lists",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("list_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("list_id"),
        sa.UniqueConstraint("created_by", "name", name="uq_suppression_lists_owner_name"),
    )
    op.create_table(
        "suppressed_records",
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("radar_id", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(["list_id"], ["suppression_lists.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("list_id", "radar_id"),
    )
    for table in ("saved_searches", "batch_jobs"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("suppression_list_id", sa.Integer(), nullable=True))
            batch.create_foreign_key(
                f"fk_{table}_suppression_list_id",
                "suppression_lists",
                ["suppression_list_id"],
                ["id"],
                ondelete="SET NULL",
            )
    with op.batch_alter_table("batch_jobs") as batch:
        batch.add_column(
            sa.Column("suppressed_count", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade():
    with op.batch_alter_table("batch_jobs") as batch:
        batch.drop_column("suppressed_count")
    for table in ("batch_jobs", "saved_searches"):
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"fk_{table}_suppression_list_id", type_="foreignkey")
            batch.drop_column("suppression_list_id")
    op.drop_table("suppressed_records")
    op.drop_table("suppression_lists")
