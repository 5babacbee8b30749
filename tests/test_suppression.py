"""Suppression lists (issue 12, item 4, RadarIDs): upload or paste a list, default lists
and a list chosen on the search form; a suppressed RadarID is never bought (checked
against the simulator's billing), counted as suppressed on the job and in the preview."""

from __future__ import annotations

import io
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from radar_app import services
from radar_app.extensions import db
from radar_app.models import BatchJob, SuppressedRecord, SuppressionList, User
from radar_app.suppression import parse_radar_ids
from tests.conftest import ApiClient, csrf_token_from, issue_token
from tests.helpers import MULTNOMAH, count_rows, job_row, stored_radar_ids
from tests.search_helpers import confirmation_form, is_confirmation


@pytest.fixture
def signed_in(client: FlaskClient, auth, user: User) -> FlaskClient:
    assert auth.login().status_code == 302
    return client


def first_radar_ids(app: Flask, count: int) -> list[str]:
    """The search's first matches, by a free request (what the job's snapshot lists)."""
    with app.test_request_context(), services.client() as client:
        page = client.radar_ids(MULTNOMAH, 0, count)
    return [record["RadarID"] for record in page.results]


def upload(client: FlaskClient, name: str, text: str, *, default: bool = False, **extra):
    token = csrf_token_from(client.get("/suppression-lists").text)
    data = {"csrf_token": token, "name": name, **extra}
    if default:
        data["is_default"] = "y"
    data["file"] = (io.BytesIO(text.encode()), "dnc.csv")
    return client.post("/suppression-lists", data=data, content_type="multipart/form-data")


def test_parse_reads_a_radar_id_column_or_loose_values():
    export = 'Address,RadarID,Owner\n"1 Main St, Apt 2",P1A2B3C,Bob\n2 Elm,P9,Ann\n3 Oak,,Cy\n'
    assert parse_radar_ids(export) == (["P1A2B3C", "P9"], [])
    assert parse_radar_ids("P1, P2;P3\nP2  P4\n") == (["P1", "P2", "P3", "P4"], [])
    ids, problems = parse_radar_ids("P1\nnot-an-id\n")
    assert ids == ["P1"] and problems == ["line 2: 'not-an-id' is not a RadarID"]


def test_upload_lists_and_manage(app, signed_in):
    response = upload(signed_in, "Do not contact", "RadarID\nP1\nP2\nP2\n", default=True)
    assert response.status_code == 302
    page = signed_in.get("/suppression-lists").text
    assert "Do not contact" in page and "every job (default)" in page
    [found] = db_lists(app)
    assert count_rows(app, SuppressedRecord) == 2

    token = csrf_token_from(page)
    signed_in.post(f"/suppression-lists/{found.list_id}/default", data={"csrf_token": token})
    assert not db_lists(app)[0].is_default
    signed_in.post(f"/suppression-lists/{found.list_id}/delete", data={"csrf_token": token})
    assert db_lists(app) == [] and count_rows(app, SuppressedRecord) == 0


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("", "P1", "Give the list a name"),
        ("Bad", "P1\nbad id!", "is not a RadarID"),
        ("Empty", "\n\n", "Upload or paste at least one RadarID"),
    ],
)
def test_bad_uploads_store_nothing(app, signed_in, name, text, message):
    response = upload(signed_in, name, text)
    assert response.status_code == 400 and message in response.text
    assert db_lists(app) == [] and count_rows(app, SuppressedRecord) == 0


def test_a_name_used_twice_is_refused(app, signed_in):
    assert upload(signed_in, "Mine", "P1").status_code == 302
    again = upload(signed_in, "Mine", "P2")
    assert again.status_code == 400 and "already have a list with this name" in again.text
    assert count_rows(app, SuppressedRecord) == 1


def test_another_users_list_is_404(app, client, auth, user, other_user):
    auth.login("other@example.com")
    upload(client, "Theirs", "P1", default=True)
    [theirs] = db_lists(app)
    client.post("/auth/logout", data={"csrf_token": auth.csrf_token()})
    auth.login()
    token = auth.csrf_token()
    assert "Theirs" not in client.get("/suppression-lists").text
    for action in ("default", "delete"):
        response = client.post(
            f"/suppression-lists/{theirs.list_id}/{action}", data={"csrf_token": token}
        )
        assert response.status_code == 404
    assert [(found.name, found.is_default) for found in db_lists(app)] == [("Theirs", True)]


def test_a_default_list_is_never_bought_and_counts_as_suppressed(
    app, signed_in, api: ApiClient, run_worker, simulator
):
    suppressed = first_radar_ids(app, 40)[::4]  # 10 of the first 40 matches
    assert upload(signed_in, "DNC", "\n".join(suppressed), default=True).status_code == 302

    preview = api.post("/api/batch-jobs/preview", json={"criteria": MULTNOMAH, "max_records": 40})
    assert preview.json["suppressed"] == 10 and preview.json["to_buy"] == 30

    job_id = api.post("/api/batch-jobs", json={"criteria": MULTNOMAH, "max_records": 40}).json["id"]
    run_worker()
    job = job_row(app, job_id)
    assert (job.status, job.suppressed_count, job.purchased_count, job.success_count) == (
        "COMPLETED",
        10,
        30,
        30,
    )
    assert job.warning is None  # left out on purpose: not a shortfall
    billed = simulator.stats()["billed_radar_ids"]
    assert len(billed) == 30 and not set(billed) & set(suppressed)
    assert not set(stored_radar_ids(app, job_id)) & set(suppressed)
    assert "10 suppressed" in signed_in.get(f"/jobs/{job_id}").text


def test_a_list_chosen_on_the_form_applies_to_that_job_only(
    app, signed_in, api: ApiClient, run_worker, simulator
):
    suppressed = first_radar_ids(app, 20)[:5]
    assert upload(signed_in, "Just this once", "\n".join(suppressed)).status_code == 302
    [chosen] = db_lists(app)
    page = signed_in.get("/search").text
    assert f'value="{chosen.list_id}"' in page

    data = {
        "csrf_token": csrf_token_from(page),
        "state": "OR",
        "county": "41051",
        "max_records": "20",
        "background": "y",
        "suppression_list": chosen.list_id,
    }
    asked = signed_in.post("/search", data=data)
    assert is_confirmation(asked) and "5, on your suppression lists" in asked.text
    started = signed_in.post("/search", data=confirmation_form(asked.text))
    job_id = started.headers["Location"].rsplit("/", 1)[1]
    run_worker()
    job = job_row(app, job_id)
    assert (job.suppressed_count, job.purchased_count) == (5, 15)
    assert not set(simulator.stats()["billed_radar_ids"]) & set(suppressed)

    # A job without the list buys them: the list is not a default one.
    other = api.post("/api/batch-jobs", json={"criteria": MULTNOMAH, "max_records": 20}).json
    run_worker()
    assert job_row(app, other["id"]).suppressed_count == 0


def test_the_form_refuses_a_list_that_is_not_offered(app, signed_in, other_user):
    page = signed_in.get("/search").text
    data = {
        "csrf_token": csrf_token_from(page),
        "state": "OR",
        "background": "y",
        "suppression_list": "f" * 32,
    }
    response = signed_in.post("/search", data=data)
    assert response.status_code == 400 and "Not a valid choice" in response.text


def db_lists(app: Flask) -> list[SuppressionList]:
    with app.app_context():
        found = db.session.scalars(sa.select(SuppressionList).order_by(SuppressionList.id)).all()
        db.session.expunge_all()
        return list(found)


def test_the_api_takes_a_list_for_a_job_a_preview_and_a_saved_search(
    app, signed_in, api: ApiClient, other_user, run_worker, simulator
):
    suppressed = first_radar_ids(app, 10)[:3]
    upload(signed_in, "API list", "\n".join(suppressed))
    [chosen] = db_lists(app)
    body = {"criteria": MULTNOMAH, "max_records": 10, "suppression_list": chosen.list_id}
    assert api.post("/api/batch-jobs/preview", json=body).json["suppressed"] == 3
    created = api.post("/api/batch-jobs", json=body)
    assert created.status_code == 201 and created.json["suppression_list"] == chosen.list_id
    run_worker()
    assert api.get(f"/api/batch-jobs/{created.json['id']}").json["suppressed_count"] == 3
    saved = api.post("/api/searches", json={**body, "name": "With list"})
    assert saved.status_code == 201 and saved.json["suppression_list"] == chosen.list_id
    run = api.post(f"/api/searches/{saved.json['id']}/jobs").json
    assert job_row(app, run["id"]).suppression_list_id == chosen.id

    # Someone else's list, or none of that id: 404, nothing created.
    other = ApiClient(app.test_client(), issue_token(app, other_user.email))
    for caller, list_id in ((other, chosen.list_id), (api, "f" * 32)):
        refused = caller.post("/api/batch-jobs", json={**body, "suppression_list": list_id})
        assert refused.status_code == 404, refused.json
    assert count_rows(app, BatchJob) == 2


def properties_of(simulator, radar_ids: list[str]) -> list[dict[str, Any]]:
    """The simulator's records for these RadarIDs (what PropertyRadar knows of them)."""
    dataset = simulator.dataset
    return [dataset.record(dataset.index_of(radar_id)) for radar_id in radar_ids]


def test_a_list_by_apn_or_address_is_looked_up_free_and_never_bought(
    app, signed_in, api: ApiClient, run_worker, simulator
):
    matches = first_radar_ids(app, 40)
    by_apn, by_address = matches[:5], matches[5:10]
    apn_rows = [f"{r['APN']},{r['County']},{r['State']}" for r in properties_of(simulator, by_apn)]
    address_rows = [f'"{r["Address"]}",{r["ZipFive"]:05d}'
                    for r in properties_of(simulator, by_address)]  # fmt: skip
    simulator.reset()
    assert upload(signed_in, "By APN", "APN,County FIPS,State\n" + "\n".join(apn_rows),
                  default=True).status_code == 302  # fmt: skip
    address_upload = upload(signed_in, "By address", "Address,ZIP\n" + "\n".join(address_rows),
                            default=True)  # fmt: skip
    assert address_upload.status_code == 302
    assert "(from 5 APNs or addresses)" in signed_in.get("/suppression-lists").text
    stats = simulator.stats()
    assert stats["billed_records"] == 0  # the lookups were free
    with app.app_context():
        listed = set(db.session.scalars(sa.select(SuppressedRecord.radar_id)))
    assert set(by_apn) | set(by_address) <= listed

    job_id = api.post("/api/batch-jobs", json={"criteria": MULTNOMAH, "max_records": 40}).json["id"]
    run_worker()
    job = job_row(app, job_id)
    assert job.status == "COMPLETED" and job.suppressed_count >= 10
    billed = set(simulator.stats()["billed_radar_ids"])
    assert not billed & (set(by_apn) | set(by_address))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("APN,State\n123,OR\n", "needs County FIPS and State columns"),
        ("APN,County FIPS,State\n123,Multnomah,OR\n", "line 2: needs an APN, a county FIPS"),
        ("Address\n1 Main St\n", "An Address column needs a ZIP column"),
        ("Address,ZIP\n1 Main St,abc\n", "line 2: needs a street address and a 5-digit ZIP"),
    ],
)
def test_bad_apn_or_address_uploads_store_nothing(app, signed_in, simulator, text, message):
    response = upload(signed_in, "Bad", text)
    assert response.status_code == 400 and message in response.text
    assert db_lists(app) == []
    assert simulator.stats()["requests"] == []  # refused before any lookup
