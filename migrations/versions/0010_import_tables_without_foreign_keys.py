"""The import's own tables lose their foreign keys (issue 11).

job_properties, job_snapshot_items and purchase_claims take a row per record bought or
listed, and PostgreSQL checks each row's foreign keys one by one (radar_app.models says
what that cost and why nothing relies on them). SQLite's were never named: batch mode
finds them by a naming convention to drop them. The downgrade puts them back, named.

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# Each table's foreign keys this revision drops: {column: referred table}.
FOREIGN_KEYS = {
    "job_properties": {"batch_job_id": "batch_jobs", "property_id": "properties"},
    "job_snapshot_items": {"batch_job_id": "batch_jobs"},
    "purchase_claims": {"batch_job_id": "batch_jobs"},
}
# PostgreSQL's default name (table_column_fkey), and the one SQLite's batch mode uses.
NAMES = {"fk": "%(table_name)s_%(column_0_name)s_fkey"}


def upgrade():
    for table, columns in FOREIGN_KEYS.items():
        with op.batch_alter_table(table, naming_convention=NAMES) as batch_op:
            for column in columns:
                batch_op.drop_constraint(f"{table}_{column}_fkey", type_="foreignkey")


def downgrade():
    for table, columns in FOREIGN_KEYS.items():
        with op.batch_alter_table(table) as batch_op:
            for column, referred in columns.items():
                batch_op.create_foreign_key(
                    f"{table}_{column}_fkey", referred, [column], ["id"], ondelete="CASCADE"
                )
