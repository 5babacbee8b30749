"""The JSON API: authentication, validation, ownership, transitions, pagination, CSV."""

from __future__ import annotations

import csv
import io

import pytest
import sqlalchemy as sa

from devstack import free_port
from radar_app import create_app
from radar_app.extensions import db
from radar_app.models import BatchJob, JobStatus
from tests.conftest import ApiClient, issue_token
from tests.helpers import MULTNOMAH, OREGON, count_rows


def create(api, criteria=MULTNOMAH, **extra):
    response = api.post("/api/batch-jobs", json={"criteria": criteria, **extra})
    assert response.status_code == 201, response.json
    return response.json


def test_create_returns_the_job_and_queues_it(api, app, redis_url):
    body = create(api, OREGON, name="Oregon leads", max_records=5000)
    assert body["status"] == "PENDING"
    assert body["name"] == "Oregon leads"
    assert body["max_records"] == 5000
    assert body["progress_percent"] == 0.0
    assert body["criteria"] == [{"name": "State", "value": ["OR"]}]
    from redis import Redis
    from rq import Queue

    queue = Queue(app.config["RQ_QUEUE"], connection=Redis.from_url(redis_url))
    assert queue.count == 1
    assert queue.jobs[0].args[0] is not None


def test_default_name_describes_the_search(api):
    assert "OR" in create(api, OREGON)["name"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"criteria": []}, "criteria"),
        ({"criteria": [{"name": "SiteCity", "value": ["Portland"]}]}, "criteria[0].name"),
        ({"criteria": [{"name": "State", "value": "OR"}]}, "criteria[0].value"),
        ({"criteria": [{"name": "EquityPercent", "value": [40]}]}, "criteria[0].value"),
        ({"criteria": OREGON, "max_records": 0}, "max_records"),
        ({"criteria": OREGON, "max_records": "ten"}, "max_records"),
        ({"criteria": OREGON, "name": 5}, "name"),
        ({"criteria": OREGON, "limit": 5}, "limit"),
        ({}, "criteria"),
    ],
)
def test_invalid_requests_get_field_errors_and_store_nothing(api, app, payload, field):
    response = api.post("/api/batch-jobs", json=payload)
    assert response.status_code == 400
    assert field in response.json["fields"], response.json
    assert count_rows(app, BatchJob) == 0


def test_unknown_criterion_suggests_the_right_name(api):
    response = api.post(
        "/api/batch-jobs", json={"criteria": [{"name": "SiteCity", "value": ["Portland"]}]}
    )
    assert "City" in response.json["fields"]["criteria[0].name"]


def test_non_json_body_is_a_400(api):
    response = api.post("/api/batch-jobs", data="criteria=State", content_type="text/plain")
    assert response.status_code == 400
    assert response.json["error"]


def test_credentials_are_required(client, app, user):
    assert client.get("/api/batch-jobs").status_code == 401
    response = client.post("/api/batch-jobs", json={"criteria": OREGON})
    assert response.status_code == 401
    assert response.json == {"error": "Authentication required"}
    bad = client.get("/api/batch-jobs", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401


def test_revoked_token_stops_working(client, app, user):
    old = issue_token(app, user.email)
    new = issue_token(app, user.email)
    assert (
        client.get("/api/batch-jobs", headers={"Authorization": f"Bearer {old}"}).status_code == 401
    )
    assert (
        client.get("/api/batch-jobs", headers={"Authorization": f"Bearer {new}"}).status_code == 200
    )


def test_another_users_job_is_404_but_admin_sees_it(client, app, api, other_user, admin):
    job = create(api)
    other = ApiClient(client, issue_token(app, other_user.email))
    for path in ("", "/logs", "/leads", "/leads.csv"):
        assert other.get(f"/api/batch-jobs/{job['id']}{path}").status_code == 404
    assert other.post(f"/api/batch-jobs/{job['id']}/cancel").status_code == 404
    assert other.get("/api/batch-jobs").json["total"] == 0

    boss = ApiClient(client, issue_token(app, admin.email))
    assert boss.get(f"/api/batch-jobs/{job['id']}").json["created_by"] == "owner@example.com"
    assert boss.get("/api/batch-jobs").json["total"] == 1
    assert boss.post(f"/api/batch-jobs/{job['id']}/cancel").status_code == 202


def test_unknown_job_and_path_are_json_404(api):
    response = api.get("/api/batch-jobs/does-not-exist")
    assert response.status_code == 404 and response.json["error"]
    assert api.get("/api/nothing-here").json["error"]


def test_impossible_transitions_are_409(api, run_worker, app):
    job = create(api)
    assert api.post(f"/api/batch-jobs/{job['id']}/retry").status_code == 409
    run_worker()
    assert api.get(f"/api/batch-jobs/{job['id']}").json["status"] == "COMPLETED"
    response = api.post(f"/api/batch-jobs/{job['id']}/cancel")
    assert response.status_code == 409
    assert response.json["status"] == "COMPLETED"
    assert api.post(f"/api/batch-jobs/{job['id']}/retry").status_code == 409


def test_list_is_paginated_newest_first_and_filterable(api):
    ids = [create(api, name=f"job {i}")["id"] for i in range(7)]
    api.post(f"/api/batch-jobs/{ids[0]}/cancel")
    first = api.get("/api/batch-jobs?per_page=3").json
    assert (first["total"], first["page"], first["per_page"]) == (7, 1, 3)
    assert [j["name"] for j in first["items"]] == ["job 6", "job 5", "job 4"]
    last = api.get("/api/batch-jobs?per_page=3&page=3").json
    assert [j["name"] for j in last["items"]] == ["job 0"]
    cancelled = api.get("/api/batch-jobs?status=cancelled").json
    assert [j["id"] for j in cancelled["items"]] == [ids[0]]
    assert api.get("/api/batch-jobs?status=bogus").status_code == 400
    assert api.get("/api/batch-jobs?per_page=1000").status_code == 400
    assert api.get("/api/batch-jobs?page=zero").status_code == 400


def test_logs_and_leads_after_a_run(api, run_worker):
    job = create(api)
    run_worker()
    logs = api.get(f"/api/batch-jobs/{job['id']}/logs?per_page=100").json
    messages = [entry["message"] for entry in logs["items"]]
    assert messages[0].startswith("Completed: 2,000 leads stored")
    assert messages[-1] == "Job created"
    assert sum(1 for e in logs["items"] if e["page"]) == 5

    leads = api.get(f"/api/batch-jobs/{job['id']}/leads?per_page=50&page=2").json
    assert leads["total"] == 2000 and len(leads["items"]) == 50
    lead = leads["items"][0]
    assert lead["county"] == "41051" and lead["state"] == "OR"
    assert lead["radar_id"].startswith("P")


def test_csv_export_has_a_header_and_every_lead(api, run_worker):
    job = create(api)
    run_worker()
    response = api.get(f"/api/batch-jobs/{job['id']}/leads.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0][:4] == ["RadarID", "Address", "City", "State"]
    assert len(rows) == 2001
    assert len({row[0] for row in rows[1:]}) == 2000
    assert all(row[3] == "OR" for row in rows[1:])


def test_session_authenticated_post_needs_csrf(client, auth, user):
    auth.login()
    response = client.post("/api/batch-jobs", json={"criteria": OREGON})
    assert response.status_code == 400
    assert "CSRF" in response.json["error"]
    token = auth.csrf_token()
    ok = client.post("/api/batch-jobs", json={"criteria": OREGON}, headers={"X-CSRFToken": token})
    assert ok.status_code == 201


def test_redis_down_answers_503_and_leaves_no_job(app, app_config, user, token):
    # A real refused connection: nothing listens on this port.
    dead_redis = create_app({**app_config, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    client = ApiClient(dead_redis.test_client(), token)
    response = client.post("/api/batch-jobs", json={"criteria": OREGON})
    with dead_redis.app_context():
        db.engine.dispose()
    assert response.status_code == 503
    assert "queue is unavailable" in response.json["error"]
    assert count_rows(app, BatchJob) == 0


def test_progress_fields_while_processing(api, app):
    job = create(api)
    body = api.get(f"/api/batch-jobs/{job['id']}").json
    for key in ("progress_percent", "records_per_second", "eta_seconds", "total_records"):
        assert key in body
    assert JobStatus(body["status"]) is JobStatus.PENDING


def test_csv_export_defuses_spreadsheet_formulas(app, api, run_worker):
    job = create(api)
    run_worker()
    with app.app_context():
        from radar_app.models import Property

        first = db.session.scalar(sa.select(Property).order_by(Property.id).limit(1))
        first.owner_name, first.address = '=HYPERLINK("http://evil")', "\t=1+1"
        db.session.commit()
    rows = list(csv.reader(io.StringIO(api.get(f"/api/batch-jobs/{job['id']}/leads.csv").text)))
    owner, address = rows[0].index("Owner"), rows[0].index("Address")
    poisoned = [row for row in rows[1:] if "HYPERLINK" in row[owner]]
    assert poisoned[0][owner] == '\'=HYPERLINK("http://evil")'
    assert poisoned[0][address] == "'\t=1+1"
