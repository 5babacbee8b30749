"""batch_jobs.search_text: what the Jobs search matches (name and criteria, lower case),
stored, not the criteria cast to text at each search (radar_app.models.job_search_text).

Revision ID: 0019
Revises: 0018
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

BATCH = 1_000


def _search_text(name: str, criteria: object) -> str:
    # This revision's copy of radar_app.models.job_search_text (a migration must not change
    # with the app). Compact JSON, as orjson writes it there.
    if isinstance(criteria, str):  # SQLite returns the JSON column's text
        criteria = json.loads(criteria)
    text = json.dumps(criteria, separators=(",", ":"), ensure_ascii=False)
    return f"{name}\n{text}".lower()


def upgrade():
    # Plain ADD COLUMN, no batch rebuild: on SQLite a rebuild drops the old table, which
    # with foreign keys on cascades into the jobs' rows (see 0004).
    op.add_column(
        "batch_jobs", sa.Column("search_text", sa.Text(), nullable=False, server_default="")
    )
    connection = op.get_bind()
    jobs = sa.table(
        "batch_jobs",
        sa.column("id", sa.Integer),
        sa.column("name", sa.String),
        sa.column("criteria", sa.JSON),
        sa.column("search_text", sa.Text),
    )
    last = 0
    while True:
        rows = connection.execute(
            sa.select(jobs.c.id, jobs.c.name, jobs.c.criteria)
            .where(jobs.c.id > last)
            .order_by(jobs.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        connection.execute(
            sa.update(jobs).where(jobs.c.id == sa.bindparam("job")),
            [
                {"job": id_, "search_text": _search_text(name, criteria)}
                for id_, name, criteria in rows
            ],
        )
        last = rows[-1][0]


def downgrade():
    op.drop_column("batch_jobs", "search_text")
