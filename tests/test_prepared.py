"""Prepared statements (radar_app.prepared) write what the same Core statement writes.

The importer's per-chunk bookkeeping (ownership guard and counters, ledger and log rows,
claims, journal) goes through them. Each test runs the Core statement and its Prepared
form on the same database and compares the rows as the ORM and the driver read them
back. Runs on PostgreSQL with TEST_DATABASE_URL.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from flask import Flask

from radar_app.extensions import db
from radar_app.jobstate import beat, owned_update
from radar_app.models import (
    BatchJob,
    JobStatus,
    LedgerEntry,
    PurchaseClaim,
    User,
    one_of_listed,
)
from radar_app.prepared import Prepared

LEDGER_KEYS = ["batch_job_id", "user_id", "page", "outcome", "requested", "result_count"]


def _job(user: User, status: str = JobStatus.PROCESSING, run_id: str = "run-1") -> BatchJob:
    job = BatchJob(
        job_id=uuid.uuid4().hex,
        name="prepared",
        criteria=[{"name": "State", "value": ["CA"]}],
        created_by=user.id,
        status=status,
        rq_job_id=run_id,
    )
    db.session.add(job)
    db.session.commit()
    return job


def test_an_insert_stores_what_the_core_insert_stores_and_fills_column_defaults(
    app: Flask, user: User
) -> None:
    with app.app_context():
        job = _job(user)
        row = {
            "batch_job_id": job.id,
            "user_id": user.id,
            "page": 3,
            "outcome": LedgerEntry.BILLED,
            "requested": 400,
            "result_count": 399,
        }
        before = datetime.now(UTC)
        connection = db.session.connection()
        connection.execute(sa.insert(LedgerEntry.__table__).inline(), row)
        Prepared(sa.insert(LedgerEntry.__table__).inline(), keys=LEDGER_KEYS)(connection, row)
        db.session.commit()
        core, prepared = db.session.scalars(
            sa.select(LedgerEntry)
            .where(LedgerEntry.batch_job_id == job.id)
            .order_by(LedgerEntry.id)
        ).all()
        columns = [
            c.key for c in LedgerEntry.__table__.columns if c.key not in {"id", "created_at"}
        ]
        assert {k: getattr(prepared, k) for k in columns} == {k: getattr(core, k) for k in columns}
        # The default (utcnow) was evaluated, and stored as the UTC text the ORM reads back.
        assert prepared.created_at.tzinfo is not None
        assert before - timedelta(seconds=1) <= prepared.created_at <= datetime.now(UTC)
        # Untyped text(): the values as the driver returns them, no result processing.
        raw = sa.text("SELECT created_at FROM purchase_ledger WHERE batch_job_id = :j ORDER BY id")
        stored = db.session.execute(raw, {"j": job.id}).scalars().all()
        assert type(stored[0]) is type(stored[1])


def test_an_insert_takes_a_given_value_over_the_default(app: Flask, user: User) -> None:
    with app.app_context():
        job = _job(user)
        when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        insert = Prepared(
            sa.insert(LedgerEntry.__table__).inline(), keys=[*LEDGER_KEYS, "created_at"]
        )
        row = {"batch_job_id": job.id, "user_id": user.id, "page": 1, "outcome": "billed"}
        insert(
            db.session.connection(), {**row, "requested": 1, "result_count": 1, "created_at": when}
        )
        db.session.commit()
        entry = db.session.scalars(
            sa.select(LedgerEntry).where(LedgerEntry.batch_job_id == job.id)
        ).one()
        assert entry.created_at == when


def test_the_heartbeat_writes_counters_only_while_the_run_owns_the_job(
    app: Flask, user: User
) -> None:
    counters = owned_update({"processed_records": BatchJob.processed_records + sa.bindparam("n")})
    with app.app_context():
        job = _job(user)
        stamp = job.updated_at
        now = datetime.now(UTC)
        connection = db.session.connection()
        assert beat(connection, job.id, "run-1", now, counters, n=400)
        assert beat(connection, job.id, "run-1", now, counters, n=400)
        assert not beat(connection, job.id, "another run", now, counters, n=400)
        db.session.commit()
        db.session.refresh(job)
        assert job.processed_records == 800
        assert job.heartbeat_at == now
        assert job.updated_at >= stamp  # the column's onupdate ran

        job.status = JobStatus.COMPLETED
        db.session.commit()
        assert not beat(db.session.connection(), job.id, "run-1", now)
        db.session.rollback()


def test_a_listed_parameter_deletes_exactly_the_listed_rows(app: Flask, user: User) -> None:
    delete = Prepared(
        lambda dialect: sa.delete(PurchaseClaim.__table__).where(
            one_of_listed(PurchaseClaim.radar_id, "ids", dialect)
        )
    )
    with app.app_context():
        job = _job(user)
        db.session.add_all(PurchaseClaim(radar_id=f"R{i}", batch_job_id=job.id) for i in range(5))
        db.session.commit()
        result = delete(db.session.connection(), {"ids": ["R1", "R3", "nobody"]})
        assert result.rowcount == 2
        db.session.commit()
        left = db.session.scalars(
            sa.select(PurchaseClaim.radar_id).order_by(PurchaseClaim.radar_id)
        )
        assert list(left) == ["R0", "R2", "R4"]


def test_a_statement_that_expands_parameters_is_refused(app: Flask) -> None:
    expanding = Prepared(sa.select(User.id).where(User.id.in_([1, 2, 3])))
    with app.app_context(), pytest.raises(ValueError, match="expand"):
        expanding(db.session.connection())
