"""Never pay twice: free snapshot, buy only what is new, ledger, budgets, preview, fields."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from radar_app.config import Config
from radar_app.extensions import db
from radar_app.models import JobStatus, Property, User, utcnow
from tests.helpers import MULTNOMAH, OREGON, job_row, purchase_requests, stored_radar_ids


def run(api, run_worker, criteria, **extra):
    response = api.post("/api/batch-jobs", json={"criteria": criteria, **extra})
    assert response.status_code == 201, response.json
    run_worker()
    return api.get(f"/api/batch-jobs/{response.json['id']}").json


def ledger(api, job):
    return api.get(f"/api/batch-jobs/{job['id']}/ledger").json


def test_superset_search_buys_only_the_difference(app, api, run_worker, simulator):
    county = run(api, run_worker, MULTNOMAH)
    assert (county["purchased_count"], county["reused_count"]) == (2000, 0)
    state = run(api, run_worker, OREGON)
    assert state["status"] == "COMPLETED"
    assert (state["purchased_count"], state["reused_count"]) == (8000, 2000)
    assert state["success_count"] == 10_000
    assert len(set(stored_radar_ids(app, state["id"]))) == 10_000
    stats = simulator.stats()
    assert stats["billed_records"] == 10_000
    assert max(stats["billed_radar_ids"].values()) == 1  # nobody bought twice
    # The ledger and the simulator agree exactly.
    billed = sum(e["result_count"] for j in (county, state) for e in ledger(api, j)["items"])
    assert billed == stats["billed_records"]
    # The simulator bills the configured price, the one the preview estimates with.
    assert state["cost_total"] == pytest.approx(8000 * Config.PRICE_PER_EXPORT)
    assert county["cost_total"] + state["cost_total"] == pytest.approx(stats["billed_cost"])


def test_rerun_within_freshness_buys_nothing(app, api, run_worker, simulator):
    first = run(api, run_worker, MULTNOMAH)
    simulator.reset()
    again = run(api, run_worker, MULTNOMAH)
    assert again["status"] == "COMPLETED"
    assert (again["purchased_count"], again["reused_count"], again["cost_total"]) == (0, 2000, 0)
    assert purchase_requests(simulator.stats(), status=None) == []
    assert ledger(api, again)["items"] == []
    logs = api.get(f"/api/batch-jobs/{again['id']}/logs?per_page=100").json["items"]
    assert logs[0]["message"].startswith("Completed: 2,000 leads stored (0 bought, 2,000 reused")
    assert first["id"] != again["id"]


def test_stale_copies_and_refresh_all_are_bought_again(app, api, run_worker, simulator):
    run(api, run_worker, MULTNOMAH)
    with app.app_context():
        db.session.execute(sa.update(Property).values(last_seen_at=utcnow() - timedelta(days=31)))
        db.session.commit()
    simulator.reset()
    stale = run(api, run_worker, MULTNOMAH)
    assert (stale["purchased_count"], stale["reused_count"]) == (2000, 0)
    simulator.reset()
    fresh_but_forced = run(api, run_worker, MULTNOMAH, refresh_all=True)
    assert fresh_but_forced["purchased_count"] == 2000 and fresh_but_forced["refresh_all"]
    assert simulator.stats()["billed_records"] == 2000


def test_refresh_everything_reuses_what_was_bought_after_it_was_asked_for(
    app, api, run_worker, simulator
):
    """Two "refresh everything" jobs over the same search, both asked for before either
    runs: the second reuses what the first bought (newer than the second's request), so
    each record is paid for once, and both jobs hold all of them."""
    first, second = (
        api.post("/api/batch-jobs", json={"criteria": MULTNOMAH, "refresh_all": True}).json["id"]
        for _ in range(2)
    )
    run_worker()
    done = [api.get(f"/api/batch-jobs/{job}").json for job in (first, second)]
    assert [j["status"] for j in done] == ["COMPLETED", "COMPLETED"]
    assert sorted((j["purchased_count"], j["reused_count"]) for j in done) == [
        (0, 2000),
        (2000, 0),
    ]
    assert simulator.stats()["billed_records"] == 2000
    assert set(stored_radar_ids(app, first)) == set(stored_radar_ids(app, second))
    assert len(set(stored_radar_ids(app, first))) == 2000


def test_monthly_budget_stops_before_crossing_and_resumes(app, api, run_worker, simulator, user):
    with app.app_context():
        db.session.execute(
            sa.update(User).where(User.id == user.id).values(monthly_export_budget=1000)
        )
        db.session.commit()
    job = run(api, run_worker, OREGON)
    assert job["status"] == "FAILED"
    assert "Monthly export budget reached: 800 of 1,000" in job["error_details"]
    assert job["purchased_count"] == 800  # the chunk that would cross it was not bought
    assert simulator.stats()["billed_records"] == 800

    with app.app_context():
        db.session.execute(
            sa.update(User).where(User.id == user.id).values(monthly_export_budget=20_000)
        )
        db.session.commit()
    assert api.post(f"/api/batch-jobs/{job['id']}/retry").status_code == 202
    run_worker()
    done = api.get(f"/api/batch-jobs/{job['id']}").json
    assert done["status"] == "COMPLETED" and done["purchased_count"] == 10_000
    assert simulator.stats()["billed_records"] == 10_000


def test_lost_response_is_recorded_as_possibly_billed(app, api, run_worker, simulator):
    simulator.configure(scripted_faults=[{"kind": "malformed", "purchase": 1, "after": 1}])
    job = run(api, run_worker, MULTNOMAH)
    assert job["status"] == "COMPLETED"
    entries = ledger(api, job)
    outcomes = [e["outcome"] for e in entries["items"]]
    assert outcomes.count("possibly_billed") == 1 and outcomes.count("billed") == 5
    assert entries["possibly_billed_requests"] == 1
    billed = sum(e["result_count"] or 0 for e in entries["items"])
    # The simulator billed the garbled page too; the ledger shows it as the one unknown.
    assert simulator.stats()["billed_records"] == billed + 400


def test_preview_counts_owned_and_prices_the_rest(app, api, run_worker, simulator):
    app.config.update(PREVIEW_SNAPSHOT_LIMIT=20_000, PRICE_PER_EXPORT=0.25)
    body = api.post("/api/batch-jobs/preview", json={"criteria": MULTNOMAH}).json
    assert body["matches"] == 2000 and body["owned"] == 0 and body["to_buy"] == 2000
    assert body["estimated_cost"] == 500.0 and body["pages"] == 5
    assert body["owned_is_estimate"] is False
    run(api, run_worker, MULTNOMAH)
    simulator.reset()
    body = api.post("/api/batch-jobs/preview", json={"criteria": OREGON}).json
    assert (body["matches"], body["owned"], body["to_buy"]) == (10_000, 2000, 8000)
    assert simulator.stats()["billed_records"] == 0  # a preview never buys
    app.config["PREVIEW_SNAPSHOT_LIMIT"] = 1000
    estimate = api.post("/api/batch-jobs/preview", json={"criteria": OREGON}).json
    assert estimate["owned_is_estimate"] is True and estimate["sampled"] == 1000
    bad = api.post("/api/batch-jobs/preview", json={"criteria": [{"name": "Nope", "value": [1]}]})
    assert bad.status_code == 400 and "criteria[0].name" in bad.json["fields"]


def test_custom_fields_are_bought_with_the_essentials(app, api, run_worker, simulator):
    job = run(api, run_worker, MULTNOMAH, fields=["AnnualTaxes", "EstimatedRent"])
    assert "AnnualTaxes" in job["fields"] and "RadarID" in job["fields"]
    with app.app_context():
        raw = db.session.scalar(sa.select(Property.raw).limit(1))
    assert "AnnualTaxes" in raw and "Address" in raw
    assert job_row(app, job["id"]).status == JobStatus.COMPLETED


def test_invalid_fields_are_rejected(api):
    unknown = api.post("/api/batch-jobs", json={"criteria": MULTNOMAH, "fields": ["Nope"]})
    assert unknown.status_code == 400 and "Nope" in unknown.json["fields"]["fields"]
    too_many = api.post(
        "/api/batch-jobs", json={"criteria": MULTNOMAH, "fields": [f"F{i}" for i in range(60)]}
    )
    assert too_many.status_code == 400
    named = api.post("/api/batch-jobs", json={"criteria": MULTNOMAH, "fields": "everything"})
    assert named.status_code == 400


def test_concurrent_purchases_keep_counts_and_budget_exact(app, api, run_worker, simulator, user):
    """With four purchases in flight, nothing changes for the user: exact counts, and a
    budget still stops before the chunk that crosses it (chunks in flight count)."""
    app.config["PROPERTYRADAR_CONCURRENCY"] = 4
    with app.app_context():
        db.session.execute(
            sa.update(User).where(User.id == user.id).values(monthly_export_budget=1000)
        )
        db.session.commit()
    job = run(api, run_worker, OREGON)
    assert job["status"] == "FAILED" and job["purchased_count"] == 800
    assert "Monthly export budget reached: 800 of 1,000" in job["error_details"]
    assert simulator.stats()["billed_records"] == 800
    with app.app_context():
        db.session.execute(
            sa.update(User).where(User.id == user.id).values(monthly_export_budget=None)
        )
        db.session.commit()
    api.post(f"/api/batch-jobs/{job['id']}/retry")
    run_worker()
    done = api.get(f"/api/batch-jobs/{job['id']}").json
    assert done["status"] == "COMPLETED" and done["purchased_count"] == 10_000
    assert len(set(stored_radar_ids(app, job["id"]))) == 10_000
    assert max(simulator.stats()["billed_radar_ids"].values()) == 1
