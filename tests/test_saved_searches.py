"""Saved searches (issue 12, item 1): save from the search form or a job, open one in the
form prefilled, run it (the job remembers the search), "Run again" on a job, update,
delete, ownership, and the JSON API beside the pages."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.datastructures import MultiDict

from radar_app.extensions import db
from radar_app.jobs.forms import SearchForm, prefill
from radar_app.models import BatchJob, SavedSearch, User
from radar_app.searches import NAME_TAKEN, SearchSpec
from tests.conftest import ApiClient, csrf_token_from, issue_token, make_user
from tests.helpers import MULTNOMAH, count_rows, job_row
from tests.search_helpers import run_search

# A search that uses every kind of field the form has.
FULL_FORM = {
    "state": ["OR", "WA"],
    "county": "41051",
    "city": "Portland, Lake Oswego",
    "zips": "97201 02134",
    "property_types": ["SFR", "CND"],
    "beds_min": "2",
    "beds_max": "4",
    "baths_min": "1.5",
    "sqft_max": "3000",
    "year_built_min": "1950",
    "occupancy": "0",
    "avm_min": "100000",
    "equity_percent_min": "40",
    "available_equity_min": "-5000",
    "in_foreclosure": "1",
    "foreclosure_stages": ["Preforeclosure"],
    "tax_delinquent": "0",
    "listed_for_sale": "1",
    "name": "Absentee OR+WA",
    "max_records": "250",
    "refresh_all": "y",
    "field_set": "custom",
    "custom_fields": "AnnualTaxes, EstimatedRent",
}


@pytest.fixture
def signed_in(client: FlaskClient, auth, user: User) -> FlaskClient:
    assert auth.login().status_code == 302
    return client


def form_post(client: FlaskClient, fields: dict[str, Any]) -> MultiDict:
    data = MultiDict({"csrf_token": csrf_token_from(client.get("/search").text), "background": "y"})
    for key, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            data.add(key, item)
    return data


def saved(app: Flask) -> list[SavedSearch]:
    with app.app_context():
        found = db.session.scalars(sa.select(SavedSearch).order_by(SavedSearch.id)).all()
        db.session.expunge_all()
        return list(found)


def shown_values(page: str) -> dict[str, list[str]]:
    """What the search form shows: each input's value, each checked box, each selected
    option (as a browser would submit the form untouched)."""
    form = page.split('id="search-form"', 1)[1].split("</form>", 1)[0]
    values: dict[str, list[str]] = {}
    for tag in re.findall(r"<input[^>]*>", form):
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        kind = re.search(r'type="([^"]+)"', tag)
        if not name or (kind and kind.group(1) in ("checkbox", "radio") and "checked" not in tag):
            continue
        if value and value.group(1):
            values.setdefault(name.group(1), []).append(html.unescape(value.group(1)))
    for name, body in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', form, re.S):
        for option in re.findall(
            r'<option[^>]*selected[^>]*value="([^"]*)"|<option[^>]*value="([^"]*)"[^>]*selected',
            body,
        ):
            chosen = option[0] or option[1]
            if chosen:
                values.setdefault(name, []).append(chosen)
    return values


# ------------------------------------------------------------------------ the form


def test_prefill_gives_back_the_same_criteria(app: Flask):
    data = MultiDict()
    for key, value in FULL_FORM.items():
        for item in value if isinstance(value, list) else [value]:
            data.add(key, item)
    with app.test_request_context("/search", method="POST", data=data):
        form = SearchForm(meta={"csrf": False})
        assert form.validate(), form.errors
        criteria, fields = form.criteria(), form.chosen_fields()
        prefilled, unshown = prefill(SearchSpec("x", criteria, fields, 250))
        again = SearchForm(formdata=None, data=prefilled, meta={"csrf": False})
        assert unshown == []
        assert again.criteria() == criteria
        assert again.chosen_fields() == fields
        assert again.max_records.data == 250


def test_prefill_names_what_the_form_cannot_show():
    criteria = [*MULTNOMAH, {"name": "FirstRate", "value": [[3, 5]]}]
    data, unshown = prefill(SearchSpec("x", criteria))
    assert data["state"] == ["OR"] and data["county"] == "41051"
    assert unshown == ["FirstRate"]


# --------------------------------------------------------------------------- pages


def test_save_from_the_form_then_open_it_prefilled_and_run_it(app, signed_in, run_worker):
    response = signed_in.post(
        "/searches", data=form_post(signed_in, {**FULL_FORM, "max_records": "20"})
    )
    assert response.status_code == 302 and response.headers["Location"] == "/searches"
    [search] = saved(app)
    assert search.name == "Absentee OR+WA" and search.max_records == 20 and search.refresh_all
    assert {"name": "ZipFive", "value": [97201, 2134]} in search.criteria
    assert "AnnualTaxes" in search.fields

    listing = signed_in.get("/searches").text
    assert "Absentee OR+WA" in listing and "up to 20" in listing and "never" in listing

    page = signed_in.get(f"/search?saved={search.search_id}").text
    values = shown_values(page)
    assert values["zips"] == ["97201, 02134"]
    assert values["state"] == ["OR", "WA"]
    assert values["saved_search"] == [search.search_id]
    assert "Update saved search" in page

    # Submitted untouched, the prefilled form runs exactly the saved search.
    data = MultiDict({"csrf_token": csrf_token_from(page), "background": "y"})
    for key, items in values.items():
        if key not in ("csrf_token", "background"):
            for item in items:
                data.add(key, item)
    response = run_search(signed_in, data)
    assert response.status_code == 302
    job_id = response.headers["Location"].rsplit("/", 1)[1]
    job = job_row(app, job_id)
    assert job.saved_search_id == search.id
    assert (job.criteria, job.fields, job.max_records) == (
        search.criteria,
        search.fields,
        search.max_records,
    )
    assert "ran saved search" in signed_in.get(f"/jobs/{job_id}").text
    assert job_id in signed_in.get("/searches").text  # its last run


def test_a_changed_form_is_not_linked_to_the_saved_search(app, signed_in):
    signed_in.post(
        "/searches", data=form_post(signed_in, {"state": "OR", "county": "41051", "name": "M"})
    )
    [search] = saved(app)
    data = form_post(
        signed_in, {"state": "OR", "county": "41067", "saved_search": search.search_id}
    )
    response = run_search(signed_in, data)
    job = job_row(app, response.headers["Location"].rsplit("/", 1)[1])
    assert job.saved_search_id is None


def test_update_and_delete(app, signed_in):
    signed_in.post("/searches", data=form_post(signed_in, {"state": "OR", "name": "Oregon"}))
    [search] = saved(app)
    response = signed_in.post(
        f"/searches/{search.search_id}",
        data=form_post(signed_in, {"state": "WA", "name": "Washington", "max_records": "5"}),
    )
    assert response.status_code == 302
    [updated] = saved(app)
    assert (updated.id, updated.name, updated.criteria, updated.max_records) == (
        search.id,
        "Washington",
        [{"name": "State", "value": ["WA"]}],
        5,
    )
    token = csrf_token_from(signed_in.get("/searches").text)
    response = signed_in.post(
        f"/searches/{search.search_id}/delete", data={"csrf_token": token}, follow_redirects=True
    )
    assert "Deleted “Washington”" in response.text
    assert saved(app) == []


def test_htmx_delete_reloads_the_list(app, signed_in, auth):
    signed_in.post("/searches", data=form_post(signed_in, {"state": "OR", "name": "Oregon"}))
    [search] = saved(app)
    response = signed_in.post(
        f"/searches/{search.search_id}/delete",
        headers={"HX-Request": "true", "X-CSRFToken": auth.csrf_token()},
    )
    assert response.status_code == 200 and response.headers["HX-Redirect"] == "/searches"
    assert saved(app) == []


def test_a_name_used_twice_is_a_field_error_and_stores_nothing(app, signed_in):
    signed_in.post("/searches", data=form_post(signed_in, {"state": "OR", "name": "Mine"}))
    response = signed_in.post(
        "/searches", data=form_post(signed_in, {"state": "WA", "name": "Mine"})
    )
    assert response.status_code == 400
    assert "You already have a search with this name" in response.text
    assert [s.criteria for s in saved(app)] == [[{"name": "State", "value": ["OR"]}]]


def test_invalid_form_saves_nothing(app, signed_in):
    response = signed_in.post("/searches", data=form_post(signed_in, {"zips": "123"}))
    assert response.status_code == 400
    assert "ZIP codes have 5 digits" in response.text
    assert saved(app) == []


def test_run_again_prefills_the_form_from_a_job(app, signed_in):
    response = run_search(
        signed_in,
        form_post(signed_in, {"state": "OR", "county": "41051", "beds_min": "3", "name": "Beds"}),
    )
    job_id = response.headers["Location"].rsplit("/", 1)[1]
    assert f"/search?job={job_id}" in signed_in.get(f"/jobs/{job_id}").text
    values = shown_values(signed_in.get(f"/search?job={job_id}").text)
    assert (
        values["beds_min"] == ["3"] and values["county"] == ["41051"] and values["name"] == ["Beds"]
    )
    assert "saved_search" not in values


def test_save_a_jobs_search_even_with_criteria_the_form_lacks(app, signed_in, api):
    criteria = [*MULTNOMAH, {"name": "FirstRate", "value": [[3, 5]]}]
    body = {"criteria": criteria, "name": "From the API", "max_records": 10}
    job_id = api.post("/api/batch-jobs", json=body).json["id"]
    token = csrf_token_from(signed_in.get(f"/jobs/{job_id}").text)
    for _ in range(2):  # the second copy gets a free name
        response = signed_in.post(f"/searches/from-job/{job_id}", data={"csrf_token": token})
        assert response.status_code == 302
    first, second = saved(app)
    assert (first.name, second.name) == ("From the API", "From the API (2)")
    assert first.criteria == job_row(app, job_id).criteria
    page = signed_in.get(f"/search?saved={first.search_id}").text
    assert "also uses FirstRate" in page


def test_another_users_search_is_404_everywhere(app, client, auth, user, other_user):
    auth.login("other@example.com")
    client.post("/searches", data=form_post(client, {"state": "OR", "name": "Theirs"}))
    [theirs] = saved(app)
    client.post("/auth/logout", data={"csrf_token": auth.csrf_token()})
    auth.login()
    token = auth.csrf_token()
    assert "Theirs" not in client.get("/searches").text
    assert client.get(f"/search?saved={theirs.search_id}").status_code == 404
    update = form_post(client, {"state": "WA", "name": "Mine now"})
    assert client.post(f"/searches/{theirs.search_id}", data=update).status_code == 404
    delete = client.post(f"/searches/{theirs.search_id}/delete", data={"csrf_token": token})
    assert delete.status_code == 404
    assert [s.name for s in saved(app)] == ["Theirs"]


# ----------------------------------------------------------------------------- API


def test_api_create_list_get_replace_run_delete(app, api: ApiClient, run_worker):
    body = {"name": "Multnomah 30", "criteria": MULTNOMAH, "max_records": 30}
    created = api.post("/api/searches", json=body)
    assert created.status_code == 201, created.json
    search_id = created.json["id"]
    assert created.headers["Location"] == f"/api/searches/{search_id}"
    assert created.json["criteria"] == MULTNOMAH and created.json["fields"] is None
    assert created.json["created_by"] == "owner@example.com"

    listing = api.get("/api/searches").json
    assert [item["id"] for item in listing["items"]] == [search_id] and listing["total"] == 1

    replaced = api.client.put(
        f"/api/searches/{search_id}",
        json={**body, "max_records": 25, "fields": ["AnnualTaxes"]},
        headers=api.headers,
    )
    assert replaced.status_code == 200 and replaced.json["max_records"] == 25
    assert "AnnualTaxes" in replaced.json["fields"]

    run = api.post(f"/api/searches/{search_id}/jobs")
    assert run.status_code == 201, run.json
    assert run.headers["Location"] == f"/api/batch-jobs/{run.json['id']}"
    run_worker()
    job = job_row(app, run.json["id"])
    assert (job.status, job.success_count, job.max_records) == ("COMPLETED", 25, 25)
    assert "AnnualTaxes" in job.fields

    gone = api.client.delete(f"/api/searches/{search_id}", headers=api.headers)
    assert gone.status_code == 200 and gone.json["id"] == search_id
    assert api.get(f"/api/searches/{search_id}").status_code == 404
    # The job it ran stays, unlinked.
    assert job_row(app, run.json["id"]).saved_search_id is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"criteria": MULTNOMAH}, "name"),
        ({"name": "", "criteria": MULTNOMAH}, "name"),
        ({"name": "x" * 201, "criteria": MULTNOMAH}, "name"),
        ({"name": "nul\x00", "criteria": MULTNOMAH}, "name"),
        ({"name": "x", "criteria": [{"name": "Nope", "value": [1]}]}, "criteria[0].name"),
        ({"name": "x", "criteria": MULTNOMAH, "max_records": 0}, "max_records"),
        ({"name": "x", "criteria": MULTNOMAH, "fields": ["NoSuchField"]}, "fields"),
        ({"name": "x", "criteria": MULTNOMAH, "surprise": 1}, "surprise"),
    ],
)
def test_api_bad_bodies_are_400_with_the_field_and_store_nothing(app, api, body, field):
    response = api.post("/api/searches", json=body)
    assert response.status_code == 400, response.json
    assert field in response.json["fields"], response.json
    assert count_rows(app, SavedSearch) == 0


def test_api_name_taken_is_a_field_error(app, api):
    body = {"name": "Mine", "criteria": MULTNOMAH}
    assert api.post("/api/searches", json=body).status_code == 201
    again = api.post("/api/searches", json={**body, "max_records": 3})
    assert again.status_code == 409 and again.json["fields"] == {"name": NAME_TAKEN}
    assert count_rows(app, SavedSearch) == 1


def test_api_ownership_is_the_jobs_rule(app, client, user):
    make_user(app, "other@example.com")
    make_user(app, "admin@example.com", admin=True)
    owner = ApiClient(client, issue_token(app, "owner@example.com"))
    other = ApiClient(app.test_client(), issue_token(app, "other@example.com"))
    admin = ApiClient(app.test_client(), issue_token(app, "admin@example.com"))
    search_id = owner.post("/api/searches", json={"name": "Private", "criteria": MULTNOMAH}).json[
        "id"
    ]

    assert other.get(f"/api/searches/{search_id}").status_code == 404
    assert other.post(f"/api/searches/{search_id}/jobs").status_code == 404
    assert (
        other.client.delete(f"/api/searches/{search_id}", headers=other.headers).status_code == 404
    )
    put = other.client.put(
        f"/api/searches/{search_id}",
        json={"name": "Stolen", "criteria": MULTNOMAH},
        headers=other.headers,
    )
    assert put.status_code == 404
    assert other.get("/api/searches").json["total"] == 0
    assert count_rows(app, BatchJob) == 0
    assert admin.get(f"/api/searches/{search_id}").json["name"] == "Private"
    assert admin.get("/api/searches").json["total"] == 1
