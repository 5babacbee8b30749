"""The migrations build the schema from zero, and it matches the models exactly."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from radar_app import create_app
from radar_app.extensions import db


def test_upgrade_from_zero_matches_the_models(app_config):
    app = create_app(app_config)  # a fresh, empty database: no create_all here
    with app.app_context():
        upgrade()
        with db.engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), db.metadata)
            tables = set(sa.inspect(conn).get_table_names())
        assert diffs == []
        assert {"users", "batch_jobs", "batch_job_logs", "properties", "job_properties"} <= tables
        if db.engine.dialect.name == "postgresql":
            # Room on each page for rows updated in place (models.POSTGRESQL_STORAGE).
            with db.engine.connect() as conn:
                options = dict(
                    conn.execute(
                        sa.text(
                            "SELECT relname, reloptions FROM pg_class "
                            "WHERE relname IN ('properties', 'job_snapshot_items')"
                        )
                    ).all()
                )
            assert options == {
                "properties": ["fillfactor=70"],
                "job_snapshot_items": ["fillfactor=70"],
            }
        downgrade(revision="base")
        with db.engine.connect() as conn:
            assert set(sa.inspect(conn).get_table_names()) <= {"alembic_version"}
        db.engine.dispose()
