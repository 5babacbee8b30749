"""properties.raw as JSON text on PostgreSQL, as on SQLite (radar_app.models.RecordJSON):
parsing every bought record into JSONB was the largest server cost of an import.

Revision ID: 0020
Revises: 0019
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite's JSON column is text already
    op.alter_column(
        "properties",
        "raw",
        type_=sa.Text(),
        existing_type=postgresql.JSONB(),
        existing_nullable=False,
        postgresql_using="raw::text",
    )


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.alter_column(
        "properties",
        "raw",
        type_=postgresql.JSONB(),
        existing_type=sa.Text(),
        existing_nullable=False,
        postgresql_using="raw::jsonb",
    )
