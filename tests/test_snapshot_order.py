"""Snapshot pages come back out of order (they are fetched concurrently): a page that
arrives after later ones still gets its records bought, once each."""

from __future__ import annotations

import threading
import time
from typing import Any

import sqlalchemy as sa

from radar_app.extensions import db
from radar_app.importer import ImportSettings, run_import
from radar_app.models import BatchJob, JobStatus, SnapshotItem
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


SMALL = 200  # 2,000 records: ten snapshot pages and ten chunks


class LateGap(PropertyRadarClient):
    """The snapshot page at Start=200 answers only once a purchase of records past it is
    on the wire, and that purchase answers only once the whole snapshot (the late page
    too) is stored: the chunk bought past the gap is stored after the planner went back
    to the gap's rows, and no snapshot page comes after it."""

    def __init__(self, engine: sa.Engine, batch_id: int, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.engine, self.batch_id = engine, batch_id
        self.first_page: set[str] = set()
        self.past_the_gap_sent = threading.Event()

    def radar_ids(self, criteria: list[dict[str, Any]], start: int, limit: int) -> Page:
        if start == SMALL:
            assert self.past_the_gap_sent.wait(10), "nothing past the gap was bought"
        page = super().radar_ids(criteria, start, limit)
        if start == 0:
            self.first_page = {record["RadarID"] for record in page.results}
        return page

    def fetch_page(self, criteria: list[dict[str, Any]], *args: Any, **kwargs: Any) -> Page:
        wanted = next(c["value"] for c in criteria if c["name"] == "RadarID")
        if not self.past_the_gap_sent.is_set() and not set(wanted) <= self.first_page:
            self.past_the_gap_sent.set()
            self._wait_for_the_whole_snapshot()
        return super().fetch_page(criteria, *args, **kwargs)

    def _wait_for_the_whole_snapshot(self) -> None:
        query = sa.select(sa.func.count()).where(SnapshotItem.batch_job_id == self.batch_id)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with self.engine.connect() as connection:
                if connection.scalar(query) == 2000:
                    return
            time.sleep(0.01)
        raise AssertionError("the snapshot was never complete")


def test_a_chunk_bought_past_a_late_page_is_not_bought_again(app, api, simulator, simulator_url):
    """Concurrency 4: the planner goes back for the late page's rows while a chunk past
    them is on the wire; once that chunk is stored its rows are not planned again, and
    every record is billed once."""
    response = api.post("/api/batch-jobs", json={"criteria": MULTNOMAH})
    assert response.status_code == 201, response.json
    job_id = response.json["id"]
    with app.app_context():
        batch = db.session.scalar(sa.select(BatchJob).where(BatchJob.job_id == job_id))
        client = LateGap(db.engine, batch.id, SIM_TOKEN, simulator_url)
        settings = ImportSettings(snapshot_page_size=SMALL, batch_size=SMALL, concurrency=4)
        status = run_import(db.session, client, batch.id, settings=settings, run_id=batch.rq_job_id)
    assert status == JobStatus.COMPLETED
    assert client.past_the_gap_sent.is_set()
    ids = stored_radar_ids(app, job_id)
    assert len(ids) == len(set(ids)) == 2000
    stats = simulator.stats()
    assert max(stats["billed_radar_ids"].values()) == 1
    assert stats["billed_records"] == 2000
