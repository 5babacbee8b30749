"""Saved searches (issue 12), and the search each job ran.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade():
    op.create_table(
        "saved_searches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("search_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("criteria", JSON, nullable=False),
        sa.Column("fields", JSON, nullable=True),
        sa.Column("max_records", sa.Integer(), nullable=True),
        sa.Column("refresh_all", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("search_id"),
        sa.UniqueConstraint("created_by", "name", name="uq_saved_searches_owner_name"),
    )
    with op.batch_alter_table("batch_jobs") as batch:
        batch.add_column(sa.Column("saved_search_id", sa.Integer(), nullable=True))
        batch.create_index("ix_batch_jobs_saved_search_id", ["saved_search_id"])
        batch.create_foreign_key(
            "fk_batch_jobs_saved_search_id",
            "saved_searches",
            ["saved_search_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade():
    with op.batch_alter_table("batch_jobs") as batch:
        batch.drop_constraint("fk_batch_jobs_saved_search_id", type_="foreignkey")
        batch.drop_index("ix_batch_jobs_saved_search_id")
        batch.drop_column("saved_search_id")
    op.drop_table("saved_searches")
