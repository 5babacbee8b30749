"""The purchase journal (issue 11): a response that arrived is never bought again, and a
request that got no response is in the ledger as possibly billed, with its records.

These runs die in-process at an exact point (an exception no handler catches, as close
as a test gets to a kill at that instruction); tests/test_crash_ledger.py SIGKILLs real
work horses.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from radar_app.extensions import db
from radar_app.importer import ImportSettings, run_import
from radar_app.journal import PurchaseJournal
from radar_app.models import BatchJob, JobStatus, JournaledPurchase, LedgerEntry
from radar_app.propertyradar.client import Page, PropertyRadarClient
from tests.conftest import SIM_TOKEN
from tests.helpers import MULTNOMAH, OREGON, count_rows, job_row, stored_radar_ids


class Killed(BaseException):
    """The work horse dies here: no except clause of the app catches it."""


def create(api: Any) -> str:
    response = api.post("/api/batch-jobs", json={"criteria": MULTNOMAH})
    assert response.status_code == 201, response.json
    return response.json["id"]


def requeue(app: Flask, batch_id: int, run_id: str) -> None:
    """What recovery does with a job whose work horse died: PENDING under a new RQ id."""
    with app.app_context():
        db.session.execute(
            sa.update(BatchJob)
            .where(BatchJob.id == batch_id)
            .values(status=JobStatus.PENDING, rq_job_id=run_id)
        )
        db.session.commit()


def ledger_total(app: Flask, batch_id: int) -> tuple[int, int]:
    """(records billed, records possibly billed) in the job's ledger."""
    with app.app_context():
        entries = db.session.scalars(
            sa.select(LedgerEntry).where(LedgerEntry.batch_job_id == batch_id)
        ).all()
        billed = sum(e.result_count or 0 for e in entries if e.outcome == LedgerEntry.BILLED)
        possibly = sum(e.requested for e in entries if e.outcome == LedgerEntry.POSSIBLY_BILLED)
        return billed, possibly


def test_a_response_journaled_before_the_crash_is_stored_from_the_journal_not_bought_again(
    app, api, simulator, simulator_url, monkeypatch
):
    job_id = create(api)
    batch_id = job_row(app, job_id).id
    received = PurchaseJournal.received

    def received_then_die(self: PurchaseJournal, responses: list[tuple[int, Page]]) -> None:
        received(self, responses)
        raise Killed  # after the body is journaled, before the chunk is stored

    monkeypatch.setattr(PurchaseJournal, "received", received_then_die)
    with app.app_context():
        client = PropertyRadarClient(SIM_TOKEN, simulator_url)
        with pytest.raises(Killed):
            run_import(db.session, client, batch_id, settings=ImportSettings(concurrency=1))
        db.session.remove()
    assert job_row(app, job_id).success_count == 0
    answered, unanswered = journal_at_the_crash(app)
    # The response being journaled when the horse died (and any other that had arrived:
    # the run's last act, storing what is in flight, only got as far as journaling it).
    assert len(answered) >= 400

    monkeypatch.setattr(PurchaseJournal, "received", received)
    requeue(app, batch_id, "second-run")
    with app.app_context():
        client = PropertyRadarClient(SIM_TOKEN, simulator_url)
        assert run_import(db.session, client, batch_id, run_id="second-run") == "COMPLETED"
    job = job_row(app, job_id)
    stats = simulator.stats()
    assert job.success_count == job.purchased_count == 2000
    ids = stored_radar_ids(app, job_id)
    assert len(ids) == len(set(ids)) == 2000
    bills = stats["billed_radar_ids"]
    assert all(bills[rid] == 1 for rid in answered), "a journaled response was bought again"
    # Only a request still unanswered at the crash (the next chunk, sent while the
    # answered one was being journaled) may have been bought twice.
    assert {rid for rid, n in bills.items() if n > 1} <= unanswered
    billed, possibly = ledger_total(app, batch_id)
    assert billed + possibly == stats["billed_records"]
    assert possibly == len(unanswered)
    assert count_rows(app, JournaledPurchase) == 0, "the journal only holds what is in flight"


def journal_at_the_crash(app: Flask) -> tuple[set[str], set[str]]:
    """(RadarIDs of journaled responses, RadarIDs of requests without one)."""
    with app.app_context():
        rows = db.session.scalars(sa.select(JournaledPurchase)).all()
        answered = {rid for row in rows if row.response is not None for rid in row.radar_ids}
        unanswered = {rid for row in rows if row.response is None for rid in row.radar_ids}
        return answered, unanswered


def test_a_purchase_without_a_journaled_response_is_possibly_billed_with_its_records(
    app, api, simulator, simulator_url
):
    job_id = create(api)
    batch_id = job_row(app, job_id).id

    class DiesWithTheResponseOnTheWire(PropertyRadarClient):
        def fetch_page(self, *args: Any, **kwargs: Any) -> Page:
            super().fetch_page(*args, **kwargs)  # PropertyRadar billed it...
            raise Killed  # ...and the horse died before the body was journaled

    with app.app_context():
        dying = DiesWithTheResponseOnTheWire(SIM_TOKEN, simulator_url)
        with pytest.raises(Killed):
            run_import(db.session, dying, batch_id, settings=ImportSettings(concurrency=1))
        db.session.remove()
    answered, unanswered = journal_at_the_crash(app)
    # The dying request, and maybe the next one (sent once the first had ended).
    assert not answered and len(unanswered) in (400, 800)

    requeue(app, batch_id, "second-run")
    with app.app_context():
        client = PropertyRadarClient(SIM_TOKEN, simulator_url)
        assert run_import(db.session, client, batch_id, run_id="second-run") == "COMPLETED"
    job = job_row(app, job_id)
    stats = simulator.stats()
    assert job.success_count == 2000 and len(set(stored_radar_ids(app, job_id))) == 2000
    # The requests in flight at the crash were bought twice, and nothing else.
    assert {rid for rid, n in stats["billed_radar_ids"].items() if n > 1} == unanswered
    billed, possibly = ledger_total(app, batch_id)
    assert (billed, possibly) == (2000, len(unanswered))
    assert billed + possibly == stats["billed_records"]
    assert count_rows(app, JournaledPurchase) == 0
    with app.app_context():
        entries = db.session.scalars(
            sa.select(LedgerEntry.note).where(LedgerEntry.outcome == LedgerEntry.POSSIBLY_BILLED)
        ).all()
    assert entries and "may have been billed" in entries[0]


@pytest.mark.parametrize("concurrency", [2, 4])
def test_a_purchase_goes_out_only_once_every_answered_one_is_journaled(
    app, api, simulator, simulator_url, concurrency
):
    """At a kill, only the requests on the wire may be lost (and bought again): so when a
    purchase is sent, every other journaled request without a response must still be on
    the wire, never one whose answer has arrived and waits in memory to be stored."""
    response = api.post("/api/batch-jobs", json={"criteria": OREGON})
    assert response.status_code == 201, response.json
    batch_id = job_row(app, response.json["id"]).id
    # Its own connections (closed after each use), as the purchase threads are not the
    # run's session.
    counter = sa.create_engine(app.config["SQLALCHEMY_DATABASE_URI"], poolclass=sa.pool.NullPool)
    seen: list[int] = []

    class Counting(PropertyRadarClient):
        def fetch_page(self, *args: Any, **kwargs: Any) -> Page:
            with counter.connect() as conn:
                unanswered = conn.scalar(
                    sa.select(sa.func.count()).where(
                        JournaledPurchase.batch_job_id == batch_id,
                        JournaledPurchase.received_at.is_(None),
                    )
                )
            seen.append(int(unanswered or 0))
            return super().fetch_page(*args, **kwargs)

    try:
        with app.app_context(), Counting(SIM_TOKEN, simulator_url) as client:
            settings = ImportSettings(concurrency=concurrency)
            assert run_import(db.session, client, batch_id, settings=settings) == "COMPLETED"
    finally:
        counter.dispose()
    # This request's own row, and the others on the wire.
    assert len(seen) == 25 and max(seen) <= concurrency, seen
