"""The leads browser's indexes (issue 12): one per order, and one per equality filter
with the default order (see radar_app.models.LEAD_INDEXES and radar_app.leadsearch); and
every stored county FIPS code as 5 digits.

Revision ID: 0017
Revises: 0016
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def _folded(column: str, dialect: str) -> str:
    expression = f"lower(coalesce({column}, ''))"
    # Byte order on PostgreSQL too: the prefix search is a range on this expression.
    return f'({expression}) COLLATE "C"' if dialect == "postgresql" else expression


def _indexes(dialect: str) -> dict[str, str]:
    # The id last: pages are ordered by (key, id) (radar_app.models.LEAD_INDEXES).
    return {name: f"{columns}, id" for name, columns in _keys(dialect).items()}


def _keys(dialect: str) -> dict[str, str]:
    return {
        "ix_properties_last_seen": "last_seen_at",
        "ix_properties_value": "coalesce(avm, -1)",
        "ix_properties_equity": "coalesce(equity_percent, -1)",
        "ix_properties_owner": _folded("owner_name", dialect),
        "ix_properties_address": _folded("address", dialect),
        "ix_properties_state_seen": "state, last_seen_at",
        "ix_properties_county_seen": "county, last_seen_at",
        "ix_properties_city_seen": "city, last_seen_at",
        "ix_properties_zip_seen": "zip_code, last_seen_at",
        "ix_properties_foreclosure_seen": "in_foreclosure, last_seen_at",
        "ix_properties_foreclosure_equity": "in_foreclosure, coalesce(equity_percent, -1)",
    }


def upgrade():
    dialect = op.get_bind().dialect.name
    # County FIPS as 5 digits (propertyradar.coerce.to_fips), as the county filter reads
    # them: sent as a number, 06037 had been stored as 6037.
    op.execute("UPDATE properties SET county = '0' || county WHERE length(county) = 4")
    for name, columns in _indexes(dialect).items():
        op.execute(f"CREATE INDEX {name} ON properties ({columns})")
    # No ANALYZE here: statistics of a table still empty mislead the planner worse than
    # none; the hourly job takes them once there are leads (tasks.refresh_planner_statistics).


def downgrade():
    for name in _indexes(op.get_bind().dialect.name):
        op.drop_index(name, table_name="properties")
