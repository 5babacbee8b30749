"""Every field a job bought is in its CSV export and its JSON leads (issue 9).

Before: custom fields (AnnualTaxes, EstimatedRent...) were bought and kept in the raw
record but shown in neither output, LastTransferRecDate was bought with the essentials
and exported nowhere, and the JSON leads lacked the owner's first and last name that
the CSV had. Since issue 10 both outputs follow one table (radar_app.leads; its own
checks are in tests/test_leads.py). Runs on SQLite and PostgreSQL (the CSV reads the raw
record in SQL).
"""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from radar_app.extensions import db
from radar_app.leads import BY_FIELD, CUSTOM_FIELDS_KEY
from radar_app.models import Property
from radar_app.propertyradar.criteria import LEAD_FIELDS
from tests.conftest import ApiClient
from tests.helpers import OREGON

CUSTOM = ["AnnualTaxes", "EstimatedRent", "LastTransferValue", "LastTransferType"]
LEADS = 40


def run_job(api: ApiClient, run_worker, **extra: Any) -> dict[str, Any]:
    response = api.post("/api/batch-jobs", json={"criteria": OREGON, "max_records": LEADS, **extra})
    assert response.status_code == 201, response.json
    run_worker()
    job = api.get(f"/api/batch-jobs/{response.json['id']}").json
    assert job["status"] == "COMPLETED" and job["success_count"] == LEADS, job
    return job


def exported(api: ApiClient, job_id: str) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """(CSV rows as dicts by header, JSON leads), both in search order."""
    text = api.get(f"/api/batch-jobs/{job_id}/leads.csv").get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(text)))
    leads = api.get(f"/api/batch-jobs/{job_id}/leads?per_page=100").json["items"]
    assert len(rows) == len(leads) == LEADS
    return rows, leads


def raw_records(app: Flask) -> dict[str, dict[str, Any]]:
    with app.app_context():
        return {p.radar_id: p.raw for p in db.session.scalars(sa.select(Property))}


def bought(job: dict[str, Any]) -> list[str]:
    return job["fields"] or LEAD_FIELDS


def csv_cell(value: object) -> str:
    return "" if value is None else str(value)


# --------------------------------------------------------------- real jobs


@pytest.mark.parametrize("fields", [None, CUSTOM])
def test_every_field_bought_is_in_the_csv_and_the_json(api, app, run_worker, simulator, fields):
    job = run_job(api, run_worker, fields=fields)
    rows, leads = exported(api, job["id"])
    header = set(rows[0])
    raws = raw_records(app)
    # What was really bought and stored: the fields in the raw records.
    stored = set().union(*(raw.keys() for raw in raws.values())) & set(bought(job))
    assert stored == set(bought(job)), set(bought(job)) - stored

    for field in bought(job):
        if field in BY_FIELD:
            assert BY_FIELD[field].header in header, f"CSV lacks essential {field}"
            assert all(BY_FIELD[field].name in lead for lead in leads), f"JSON lacks {field}"
        else:
            assert field in header, f"CSV lacks custom field {field}"
            assert all(field in lead[CUSTOM_FIELDS_KEY] for lead in leads), f"JSON lacks {field}"
    custom = [f for f in bought(job) if f not in BY_FIELD]
    assert custom == (fields or [])
    assert list(rows[0])[-len(custom) :] == custom if custom else True

    for row, lead in zip(rows, leads, strict=True):
        raw = raws[lead["radar_id"]]
        assert row["RadarID"] == lead["radar_id"]
        assert lead["owner_first_name"] == raw["OwnerFirstName"]
        assert row["Owner First Name"] == csv_cell(raw["OwnerFirstName"])
        assert lead["owner_last_name"] == raw["OwnerLastName"]
        assert row["Owner Last Name"] == csv_cell(raw["OwnerLastName"])
        assert lead["last_transfer_date"] == raw["LastTransferRecDate"]
        assert row["Last Transfer Date"] == raw["LastTransferRecDate"]
        assert lead["last_transfer_date"]  # the simulator always sends one
        for field in custom:
            assert lead[CUSTOM_FIELDS_KEY][field] == raw[field]
            assert row[field] == csv_cell(raw[field])
        if not custom:
            assert lead[CUSTOM_FIELDS_KEY] == {}


def test_custom_fields_have_values_not_just_headers(api, app, run_worker, simulator):
    job = run_job(api, run_worker, fields=CUSTOM)
    rows, leads = exported(api, job["id"])
    # Most simulator records have taxes and a rent estimate: the columns are not empty.
    assert sum(bool(row["AnnualTaxes"]) for row in rows) > LEADS // 2
    assert sum(lead[CUSTOM_FIELDS_KEY]["EstimatedRent"] is not None for lead in leads) > 1


def test_custom_text_is_formula_guarded_and_numbers_are_not(api, app, run_worker, simulator):
    job = run_job(api, run_worker, fields=CUSTOM)
    with app.app_context():
        prop = db.session.scalar(sa.select(Property).order_by(Property.id).limit(1))
        prop.raw = {
            **prop.raw,
            "LastTransferType": '=HYPERLINK("http://evil")',
            "AnnualTaxes": -5,
            "LastTransferRecDate": "@SUM(1)",
        }
        db.session.commit()
        radar_id = prop.radar_id
    rows, leads = exported(api, job["id"])
    row = next(r for r in rows if r["RadarID"] == radar_id)
    assert row["LastTransferType"] == '\'=HYPERLINK("http://evil")'
    assert row["AnnualTaxes"] == "-5"
    assert row["Last Transfer Date"] == "'@SUM(1)"
    lead = next(item for item in leads if item["radar_id"] == radar_id)
    # JSON is data, not a spreadsheet: the values as stored.
    assert lead[CUSTOM_FIELDS_KEY]["LastTransferType"] == '=HYPERLINK("http://evil")'
    assert lead[CUSTOM_FIELDS_KEY]["AnnualTaxes"] == -5
