"""The migrations build the schema from zero, and it matches the models exactly."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy.schema import CreateIndex

from radar_app import create_app
from radar_app.extensions import db
from radar_app.jobsearch import matching, parse_query
from radar_app.models import (
    LEAD_INDEXES,
    BatchJob,
    JSONType,
    Property,
    User,
    job_search_text,
    raw_field,
)

LEAD_INDEX_NAMES = {ix.name for ix in LEAD_INDEXES}
# Every index name, expression indexes included (SQLAlchemy's SQLite reflection skips them).
INDEX_NAMES = {
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'index'",
    "postgresql": "SELECT indexname FROM pg_indexes WHERE tablename = 'properties'",
}

# The migrations build the schema from zero.
pytestmark = pytest.mark.empty_database


def test_upgrade_from_zero_matches_the_models(app_config):
    app = create_app(app_config)  # a fresh, empty database: no create_all here
    with app.app_context():
        upgrade()
        with db.engine.connect() as conn, warnings.catch_warnings():
            # Alembic cannot compare expression indexes; they are compared below.
            warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression")
            warnings.filterwarnings("ignore", "autogenerate skipping metadata-specified expr")
            diffs = [
                diff
                for diff in compare_metadata(MigrationContext.configure(conn), db.metadata)
                # PostgreSQL reflects them rewritten ("COALESCE(avm, ('-1'::integer)...").
                if not (diff[0].endswith("_index") and diff[1].name in LEAD_INDEX_NAMES)
            ]
            tables = set(sa.inspect(conn).get_table_names())
            indexes = set(conn.execute(sa.text(INDEX_NAMES[db.engine.dialect.name])).scalars())
        assert diffs == []
        assert LEAD_INDEX_NAMES <= indexes
        if db.engine.dialect.name == "sqlite":
            # SQLite keeps each index's CREATE statement as the migration wrote it.
            with db.engine.connect() as conn:
                written = dict(conn.execute(sa.text("SELECT name, sql FROM sqlite_master")).all())
            for ix in LEAD_INDEXES:
                expected = str(CreateIndex(ix).compile(dialect=db.engine.dialect))
                assert " ".join(written[ix.name].split()) == " ".join(expected.split())
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


def test_jobs_from_before_0019_are_found_by_the_jobs_search(app_config):
    """Jobs created before the stored search text get it from the migration, exactly as
    a job created after it does: the search finds them by name and by criteria."""
    app = create_app(app_config)
    criteria = [{"name": "County", "value": ["41039"]}, {"name": "Owner", "value": ["Zoë"]}]
    # batch_jobs as revision 0018 left it.
    old_jobs = sa.Table(
        "batch_jobs",
        sa.MetaData(),
        *(column._copy() for column in BatchJob.__table__.columns if column.name != "search_text"),
    )
    with app.app_context():
        upgrade(revision="0018")
        with db.engine.begin() as conn:
            conn.execute(
                sa.insert(User.__table__), {"email": "old@example.com", "password_hash": "x"}
            )
            owner = conn.execute(sa.select(User.id)).scalar_one()
            conn.execute(
                sa.insert(old_jobs),
                {
                    "job_id": "old",
                    "name": "Eugene FLIPS",
                    "criteria": criteria,
                    "created_by": owner,
                },
            )
        upgrade()
        with db.engine.connect() as conn:
            stored = conn.execute(sa.select(BatchJob.search_text)).scalar_one()
        assert stored == job_search_text("Eugene FLIPS", criteria)
        user = db.session.get(User, owner)
        assert user is not None
        for text in ("eugene flips", "41039", "ZOË", "county"):
            query = parse_query(db.session, user, {"q": text})
            found = db.session.scalars(matching(user, query)).all()
            assert [job.name for job in found] == ["Eugene FLIPS"], text
        db.session.remove()
        downgrade(revision="base")
        db.engine.dispose()


def test_records_bought_before_0020_read_back_unchanged(app_config):
    """0020 keeps bought records as JSON text on PostgreSQL (JSONB before): a record
    stored before it reads back the same, and SQL still reads its fields (the CSV's
    custom fields), after the upgrade and after a downgrade."""
    app = create_app(app_config)
    record = {"RadarID": "P1", "Owner": "Zoë Ng", "AVM": 512000, "Tags": [1, None, "x"]}
    old_properties = sa.table(
        "properties",
        sa.column("radar_id", sa.String),
        sa.column("raw", JSONType),
        sa.column("first_seen_at", sa.DateTime),
        sa.column("last_seen_at", sa.DateTime),
    )

    def stored() -> tuple[Any, Any, Any]:
        with db.engine.connect() as conn:
            row = conn.execute(sa.select(Property.raw, raw_field("Owner"), raw_field("Tags"))).one()
        return tuple(row)

    with app.app_context():
        upgrade(revision="0019")
        now = datetime.now(UTC).replace(tzinfo=None)
        with db.engine.begin() as conn:
            conn.execute(
                sa.insert(old_properties),
                {"radar_id": "P1", "raw": record, "first_seen_at": now, "last_seen_at": now},
            )
        upgrade()
        assert stored() == (record, "Zoë Ng", [1, None, "x"])
        downgrade(revision="0019")
        with db.engine.connect() as conn:
            assert conn.execute(sa.select(old_properties.c.raw)).scalar_one() == record
        downgrade(revision="base")
        db.engine.dispose()
