"""Snapshot pages come back out of order (they are fetched concurrently): a page that
arrives after later ones still gets its records bought, once each."""

from __future__ import annotations

import threading
from typing import Any

import sqlalchemy as sa

from radar_app.extensions import db
from radar_app.importer import ImportSettings, run_import
from radar_app.models import BatchJob, JobStatus
from radar_app.propertyradar.client import Page, PropertyRadarClient
from tests.conftest import SIM_TOKEN
from tests.helpers import MULTNOMAH, stored_radar_ids

PAGE = 400  # 2,000 records: five snapshot pages


class LatePage(PropertyRadarClient):
    """The snapshot page at Start=400 answers only after the one at Start=800 has."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.later_one_back = threading.Event()
        self.order: list[int] = []

    def radar_ids(self, criteria: list[dict[str, Any]], start: int, limit: int) -> Page:
        if start == PAGE:
            assert self.later_one_back.wait(10), "the page after it was never asked for"
        page = super().radar_ids(criteria, start, limit)
        self.order.append(start)
        if start == 2 * PAGE:
            self.later_one_back.set()
        return page


def test_a_snapshot_page_that_comes_back_late_is_bought_once(app, api, simulator, simulator_url):
    response = api.post("/api/batch-jobs", json={"criteria": MULTNOMAH})
    assert response.status_code == 201, response.json
    job_id = response.json["id"]
    with app.app_context():
        batch = db.session.scalar(sa.select(BatchJob).where(BatchJob.job_id == job_id))
        client = LatePage(SIM_TOKEN, simulator_url)
        settings = ImportSettings(snapshot_page_size=PAGE, concurrency=2)
        status = run_import(db.session, client, batch.id, settings=settings, run_id=batch.rq_job_id)
    assert status == JobStatus.COMPLETED
    assert client.order.index(2 * PAGE) < client.order.index(PAGE), client.order
    ids = stored_radar_ids(app, job_id)
    assert len(ids) == len(set(ids)) == 2000
    stats = simulator.stats()
    assert stats["billed_records"] == 2000
    assert max(stats["billed_radar_ids"].values()) == 1
