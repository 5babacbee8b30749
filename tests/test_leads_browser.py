"""The leads browser (issue 12, item 6): every lead a user has across jobs, on a page and
at GET /api/leads, with filters, orders, keyset pages, a capped count and a CSV export
in the columns picked. Leads are stored through the importer's own store path."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from rq.cron import CronScheduler

from radar_app import leadsearch
from radar_app.extensions import db
from radar_app.models import BatchJob, SavedSearch, User
from radar_app.propertyradar.client import Page
from radar_app.store import store_page
from tests.conftest import ApiClient, issue_token

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def record(n: int, **fields: Any) -> dict[str, Any]:
    """A PropertyRadar record as the API sends it; ``fields`` override the defaults."""
    return {
        "RadarID": f"P{n:07d}",
        "Address": f"{100 + n} Main St",
        "City": "Portland",
        "State": "OR",
        "ZipFive": "97204",
        "County": "41051",
        "Owner": f"Owner{n} Pat",
        "AVM": 300_000 + n * 1000,
        "EquityPercent": 50,
        "isSameMailingOrExempt": 1,
        "inForeclosure": 0,
        **fields,
    }


def store(app: Flask, user: User, records: list[dict[str, Any]], *, days_ago: int = 0,
          name: str = "job", fields: list[str] | None = None,
          saved_search_id: int | None = None) -> str:  # fmt: skip
    """A finished job of ``user`` that stored ``records`` (as the importer stores a page)."""
    with app.app_context():
        job = BatchJob(
            job_id=uuid.uuid4().hex, name=name, criteria=[], created_by=user.id,
            status="COMPLETED", fields=fields, saved_search_id=saved_search_id,
        )  # fmt: skip
        db.session.add(job)
        db.session.flush()
        page = Page(records, len(records), len(records), None, None, 0, len(records))
        store_page(db.session, job.id, page, NOW - timedelta(days=days_ago))
        db.session.commit()
        return job.job_id


@pytest.fixture
def leads_api(client: FlaskClient, token: str) -> ApiClient:
    return ApiClient(client, token)


def radar_ids(api: ApiClient, **query: Any) -> list[str]:
    """Every RadarID the query returns, walking every page by cursor."""
    seen: list[str] = []
    after = None
    while True:
        args = {**query, **({"after": after} if after else {})}
        response = api.get("/api/leads", query_string=args)
        assert response.status_code == 200, response.json
        seen += [lead["radar_id"] for lead in response.json["items"]]
        after = response.json["next_cursor"]
        if after is None:
            return seen


def test_a_user_sees_their_own_leads_across_jobs_and_nobody_elses(
    app, user, other_user, leads_api, client
):
    first = store(app, user, [record(1), record(2)], name="first")
    store(app, user, [record(2), record(3)], name="second")
    store(app, other_user, [record(4)])
    response = leads_api.get("/api/leads")
    assert response.status_code == 200
    body = response.json
    assert sorted(lead["radar_id"] for lead in body["items"]) == [
        "P0000001",
        "P0000002",
        "P0000003",
    ]
    assert body["count"] == 3 and body["count_is_capped"] is False
    shared = next(lead for lead in body["items"] if lead["radar_id"] == "P0000002")
    assert len(shared["job_ids"]) == 2
    # Another user's job is no filter of this one's.
    other = ApiClient(client, issue_token(app, other_user.email))
    refused = other.get("/api/leads", query_string={"job": first})
    assert refused.status_code == 404  # like another user's job id in a path
    assert refused.json["error"] == "Job: you have no job with that id"
    assert [lead["radar_id"] for lead in other.get("/api/leads").json["items"]] == ["P0000004"]


def test_an_admin_sees_every_lead(app, user, other_user, admin, client):
    store(app, user, [record(1)])
    store(app, other_user, [record(2)])
    api = ApiClient(client, issue_token(app, admin.email))
    assert sorted(radar_ids(api)) == ["P0000001", "P0000002"]


def test_sign_in_is_needed(client):
    assert client.get("/api/leads").status_code == 401
    response = client.get("/leads")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert client.get("/leads/export.csv").status_code == 302


@pytest.fixture
def varied(app, user) -> dict[str, str]:
    """Leads that differ in every filtered field; returns the two jobs' ids."""
    with app.app_context():
        saved = SavedSearch(search_id=uuid.uuid4().hex, name="weekly", criteria=[],
                            created_by=user.id)  # fmt: skip
        db.session.add(saved)
        db.session.commit()
        saved_id = saved.id
    old = store(app, user, [
        record(1, State="CA", County="06037", City="Los Angeles", ZipFive="90012",
               Owner="Smith John", AVM=900_000, EquityPercent=80),
        record(2, isSameMailingOrExempt=0, inForeclosure=1, Owner="smithers Ann",
               EquityPercent=10, AVM=None),
    ], days_ago=30, name="old")  # fmt: skip
    new = store(app, user, [
        record(3, Address="9 Smith Rd", EquityPercent=None),
        record(4, City="Gresham", ZipFive="97030", AVM=150_000, EquityPercent=100),
    ], name="new", saved_search_id=saved_id)  # fmt: skip
    return {"old": old, "new": new}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"state": "ca"}, ["P0000001"]),
        ({"county": "6037"}, ["P0000001"]),  # FIPS without its leading zero
        ({"city": "Gresham"}, ["P0000004"]),
        ({"zip": "97030"}, ["P0000004"]),
        ({"occupancy": "absentee"}, ["P0000002"]),
        ({"occupancy": "owner"}, ["P0000001", "P0000003", "P0000004"]),
        ({"foreclosure": "yes"}, ["P0000002"]),
        ({"foreclosure": "no"}, ["P0000001", "P0000003", "P0000004"]),
        ({"min_equity": "80"}, ["P0000001", "P0000004"]),
        ({"max_equity": "50"}, ["P0000002"]),  # unknown equity is no match for a bound
        ({"min_value": "200000", "max_value": "500000"}, ["P0000003"]),
        ({"q": "SMITH"}, ["P0000001", "P0000002"]),  # any case
        ({"q": "smith j"}, ["P0000001"]),
        ({"q": "9 smith"}, ["P0000003"]),  # or the street address
        ({"q": "john"}, []),  # starts with: the owner is "Smith John"
        (
            {"first_seen_to": (NOW - timedelta(days=30)).date().isoformat()},
            ["P0000001", "P0000002"],
        ),  # noqa: E501
        ({"last_seen_from": NOW.date().isoformat()}, ["P0000003", "P0000004"]),
        ({"state": "OR", "occupancy": "owner", "min_value": "200000"}, ["P0000003"]),
    ],
)
def test_each_filter_narrows_the_leads(leads_api, varied, query, expected):
    assert sorted(radar_ids(leads_api, **query)) == expected


def test_the_job_and_saved_search_filters(leads_api, varied, app):
    assert sorted(radar_ids(leads_api, job=varied["old"])) == ["P0000001", "P0000002"]
    with app.app_context():
        search_id = db.session.scalar(sa.select(SavedSearch.search_id))
    assert sorted(radar_ids(leads_api, search=search_id)) == ["P0000003", "P0000004"]


@pytest.mark.parametrize("sort", [s.key for s in leadsearch.SORTS])
@pytest.mark.parametrize("reverse", [False, True])
def test_every_order_pages_through_every_lead_once(app, user, leads_api, sort, reverse):
    # Ties and unknowns in every key: the id breaks ties, and unknown sorts lowest.
    records = [
        record(n, AVM=None if n % 4 == 0 else 100_000 * (n % 3),
               EquityPercent=None if n % 5 == 0 else n % 2 * 40,
               Owner=None if n % 6 == 0 else f"{'ab'[n % 2]}name",
               Address=None if n % 7 == 0 else f"{n % 3} Elm")
        for n in range(1, 24)
    ]  # fmt: skip
    store(app, user, records[:12], days_ago=1)
    store(app, user, records[12:])
    param = ("-" if reverse else "") + sort
    walked = radar_ids(leads_api, sort=param, per_page=5)
    assert sorted(walked) == sorted(r["RadarID"] for r in records)  # each once
    one_page = leads_api.get("/api/leads", query_string={"sort": param, "per_page": 100})
    assert [lead["radar_id"] for lead in one_page.json["items"]] == walked


@pytest.mark.parametrize("sort", ["owner", "-last_seen", "value", "-address"])
def test_a_common_search_box_prefix_pages_the_same_when_walked(
    app, user, other_user, leads_api, monkeypatch, sort
):
    # A prefix matching many leads is found by walking the order's index (WALK_ROWS at
    # a time) instead of gathering every match: the pages must be the same either way,
    # with another user's matching leads in the walked window and a walk that runs out.
    def owner(n: int) -> str:
        return f"Smith {n:02d}" if n % 3 else f"Jones {n:02d}"

    def varied(n: int) -> dict[str, Any]:
        return record(n, Owner=owner(n), AVM=10_000 * (n % 7))

    store(app, user, [varied(n) for n in range(1, 31)], days_ago=2)
    store(app, other_user, [varied(n) for n in range(31, 61)], days_ago=1)
    store(app, user, [varied(n) for n in range(61, 91)])
    plain = radar_ids(leads_api, q="smith", sort=sort, per_page=4)
    mine = [n for n in [*range(1, 31), *range(61, 91)] if n % 3]
    assert sorted(plain) == [f"P{n:07d}" for n in mine]
    monkeypatch.setattr(leadsearch, "WALK_MIN_MATCHES", 2)
    monkeypatch.setattr(leadsearch, "WALK_ROWS", 9)
    walked_page = leadsearch._walked
    walks = []
    monkeypatch.setattr(leadsearch, "_walked", lambda *args: walks.append(1) or walked_page(*args))
    assert radar_ids(leads_api, q="smith", sort=sort, per_page=4) == plain
    assert walks  # the walk was taken


def test_the_count_is_capped(app, user, leads_api, monkeypatch):
    store(app, user, [record(n) for n in range(1, 6)])
    monkeypatch.setattr(leadsearch, "COUNT_CAP", 3)
    body = leads_api.get("/api/leads").json
    assert body["count"] == 3 and body["count_is_capped"] is True
    assert len(body["items"]) == 5


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"state": "ZZ"}, "state"),
        ({"zip": "abc"}, "zip"),
        ({"county": "Multnomah"}, "county"),
        ({"occupancy": "renter"}, "occupancy"),
        ({"min_equity": "lots"}, "min_equity"),
        ({"max_equity": "101"}, "max_equity"),
        ({"min_value": "-5"}, "min_value"),
        ({"min_value": "9", "max_value": "1"}, "max_value"),
        ({"first_seen_from": "yesterday"}, "first_seen_from"),
        ({"sort": "price"}, "sort"),
        ({"per_page": "0"}, "per_page"),
        ({"per_page": "101"}, "per_page"),
        ({"after": "not-a-cursor"}, "after"),
        ({"q": "a\x00b"}, "q"),
        ({"q": "x" * 201}, "q"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(leads_api, client, auth, user, query, field):
    response = leads_api.get("/api/leads", query_string=query)
    assert response.status_code == 400
    assert list(response.json["fields"]) == [field]
    # The page shows the same message beside the filters, as a 400, not a 500.
    auth.login()
    page = client.get("/leads", query_string=query)
    assert page.status_code == 400
    assert response.json["fields"][field] in page.text.replace("&#39;", "'")


@pytest.mark.parametrize("query", [{"job": "0" * 32}, {"search": "nope"}])
def test_an_unknown_job_or_search_is_a_404_with_its_message(leads_api, client, auth, user, query):
    response = leads_api.get("/api/leads", query_string=query)
    assert response.status_code == 404 and "you have no" in response.json["error"]
    auth.login()
    page = client.get("/leads", query_string=query)
    assert page.status_code == 404 and response.json["error"] in page.text


def test_a_cursor_of_another_order_is_refused(app, user, leads_api):
    store(app, user, [record(n) for n in range(1, 4)])
    cursor = leads_api.get("/api/leads", query_string={"per_page": 1}).json["next_cursor"]
    refused = leads_api.get("/api/leads", query_string={"after": cursor, "sort": "value"})
    assert refused.status_code == 400 and "after" in refused.json["fields"]


def exported(client: FlaskClient, **query: Any) -> list[list[str]]:
    response = client.get("/leads/export.csv", query_string=query)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Disposition"].startswith("attachment;")
    return list(csv.reader(io.StringIO(response.text)))


def test_export_has_the_filter_and_the_columns_picked(app, user, client, auth, varied):
    store(app, user, [record(9, State="CA", Owner="=HYPERLINK(1)", AnnualTaxes=4321)],
          fields=["RadarID", "Owner", "State", "AnnualTaxes"])  # fmt: skip
    auth.login()
    rows = exported(client, state="CA", sort="-value",
                    columns=["owner_name", "radar_id", "avm", "AnnualTaxes"])  # fmt: skip
    # Columns in the table's order (custom fields last), whatever order they came in.
    assert rows[0] == ["RadarID", "Owner", "AVM", "AnnualTaxes"]
    # -value: cheapest first; the formula is guarded; the custom field has its value.
    assert rows[1:] == [
        ["P0000009", "'=HYPERLINK(1)", "309000", "4321"],
        ["P0000001", "Smith John", "900000", ""],
    ]
    # The page offers the custom field in its column picker.
    assert 'value="AnnualTaxes"' in client.get("/leads").text


def test_export_with_no_columns_has_every_essential_and_refuses_unknown_ones(
    app, user, client, auth, varied
):
    auth.login()
    rows = exported(client)
    assert len(rows) == 5 and rows[0][0] == "RadarID" and "Owner Occupied" in rows[0]
    response = client.get("/leads/export.csv", query_string={"columns": "password_hash"})
    assert response.status_code == 400
    assert "no such column password_hash" in response.text
    assert client.get("/leads/export.csv", query_string={"zip": "x"}).status_code == 400


def test_another_users_leads_never_reach_the_export(app, user, other_user, client, auth):
    store(app, user, [record(1)])
    store(app, other_user, [record(2)])
    auth.login()
    assert [r[0] for r in exported(client, columns="radar_id")] == ["RadarID", "P0000001"]


def test_the_page_filters_sorts_and_pages(app, user, client, auth, varied):
    auth.login()
    page = client.get("/leads", query_string={"q": "smith", "sort": "owner", "per_page": 1})
    assert page.status_code == 200
    text = page.text
    assert "Smith John" in text and "smithers Ann" not in text  # A-Z, one per page
    assert 'id="leads-count">2<' in text
    assert "old</a>" in text  # the job that brought the lead
    next_link = text.split('id="next-page" rel="next" href="')[1].split('"')[0]
    second = client.get(next_link.replace("&amp;", "&")).text
    assert "smithers Ann" in second and "Smith John" not in second
    assert 'id="next-page"' not in second and "First page" in second
    # htmx asks for the results alone.
    fragment = client.get("/leads", query_string={"zip": "97030"}, headers={"HX-Request": "true"})
    assert "<html" not in fragment.text and "Gresham" in fragment.text
    bad = client.get("/leads", query_string={"zip": "x"}, headers={"HX-Request": "true"})
    assert bad.status_code == 422 and "ZIP: a 5-digit ZIP" in bad.text
    empty = client.get("/leads", query_string={"state": "TX"}).text
    assert "No lead matches these filters." in empty


def test_the_hourly_job_refreshes_the_planners_statistics(app, user, redis_url):
    store(app, user, [record(n) for n in range(1, 4)])
    scheduler = CronScheduler(connection=Redis.from_url(redis_url))
    scheduler.load_config_from_file("radar_app/cron_config.py")  # what `rq cron` loads
    registered = {job.func.__name__: job.interval for job in scheduler.get_jobs()}
    assert registered["refresh_planner_statistics"] == 3600
    with app.app_context():
        dialect = db.engine.dialect.name
        assert leadsearch.refresh_statistics(db.session) == f"{dialect}: ANALYZE"
        stats = {
            "sqlite": "SELECT tbl FROM sqlite_stat1",
            "postgresql": "SELECT tablename FROM pg_stats WHERE schemaname = current_schema()",
        }
        assert "properties" in db.session.scalars(sa.text(stats[dialect])).all()
