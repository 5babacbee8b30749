"""The import's hot path on PostgreSQL (issue 11).

1. Purchase claims are found by RadarID only. Releasing a chunk's claims deletes them by
   RadarID. With an index on the job as well, PostgreSQL planned that DELETE from stale
   statistics (claims come and go within seconds) as a scan of the job's index, which
   holds an entry for every claim the job has made since the last vacuum: 10-18 ms a
   chunk after 18,000 claims, against 0.7 ms through the primary key. A job's claims as a
   whole are read only when it ends (release_all), from a table that holds only the
   claims in flight.
2. Journaled response bodies are stored uncompressed, and properties pages keep 30% free
   for new versions of their rows (models.POSTGRESQL_STORAGE says why; a migration keeps
   its own copy of the statements). The fill factor applies to pages written from now
   on; a table rewrite (VACUUM FULL) applies it to the existing ones.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade():
    op.drop_index("ix_purchase_claims_job", table_name="purchase_claims")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE purchase_journal ALTER COLUMN response SET STORAGE EXTERNAL")
        op.execute("ALTER TABLE properties SET (fillfactor = 70)")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE properties RESET (fillfactor)")
        op.execute("ALTER TABLE purchase_journal ALTER COLUMN response SET STORAGE EXTENDED")
    op.create_index("ix_purchase_claims_job", "purchase_claims", ["batch_job_id"], unique=False)
