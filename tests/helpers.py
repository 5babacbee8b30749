"""Plain helper functions for tests (no factory framework)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from flask import Flask

from radar_app import batches
from radar_app.extensions import db
from radar_app.models import BatchJob, JobProperty, Property, User
from radar_app.queue import get_queue

T = TypeVar("T")

OREGON = [{"name": "State", "value": ["OR"]}]  # exactly 10,000 simulator records
MULTNOMAH = [{"name": "State", "value": ["OR"]}, {"name": "County", "value": ["41051"]}]  # 2,000


def wait_for(check: Callable[[], T], timeout: float = 30, what: str = "condition") -> T:
    """Poll until `check()` is truthy and return it; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def job_row(app: Flask, job_id: str) -> BatchJob:
    with app.app_context():
        job = db.session.scalar(sa.select(BatchJob).where(BatchJob.job_id == job_id))
        assert job is not None
        db.session.expunge(job)
        return job


def stored_radar_ids(app: Flask, job_id: str) -> list[str]:
    """RadarIDs linked to the job, one entry per link (duplicates would show)."""
    with app.app_context():
        return list(
            db.session.scalars(
                sa.select(Property.radar_id)
                .join(JobProperty, JobProperty.property_id == Property.id)
                .join(BatchJob, BatchJob.id == JobProperty.batch_job_id)
                .where(BatchJob.job_id == job_id)
            )
        )


def count_rows(app: Flask, model: Any) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def purchase_requests(stats: dict[str, Any], status: int | None = 200) -> list[dict[str, Any]]:
    return [
        r
        for r in stats["requests"]
        if r["purchase"] == 1 and (status is None or r["status"] == status)
    ]


def make_job(
    app: Flask, email: str = "owner@example.com", criteria: Any = MULTNOMAH, **fields: Any
) -> str:
    """A job row created through batches.create_job (not queued), then given `fields`."""
    with app.app_context():
        owner = db.session.scalar(sa.select(User).where(User.email == email))
        job = batches.create_job(
            db.session,
            get_queue(),
            batches.QueueSettings.from_config(app.config),
            owner=owner,
            criteria=criteria,
            name=fields.pop("name", None),
            enqueue=False,
        )
        for key, value in fields.items():
            setattr(job, key, value)
        db.session.commit()
        return job.job_id
