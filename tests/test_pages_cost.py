"""Cost control in the UI: the preview's owned / to-buy / cost, the search form's refresh and
field options, and the job page's counts and purchase ledger.

CSRF stays on: the form posts carry the token from the page, as a browser's would.
"""

from __future__ import annotations

import re
from html import escape
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from radar_app.extensions import db
from radar_app.models import BatchJob, JobPhase, JobStatus, utcnow
from radar_app.propertyradar.criteria import KNOWN_FIELDS, LEAD_FIELDS, MAX_FIELDS
from tests.conftest import csrf_token_from
from tests.helpers import count_rows, purchase_requests
from tests.search_helpers import run_search

HX = {"HX-Request": "true"}
MULTNOMAH_FORM = {"state": "OR", "county": "41051"}  # 2,000 simulator records
OREGON_FORM = {"state": "OR"}  # 10,000, Multnomah's 2,000 among them


@pytest.fixture
def signed_in(client: FlaskClient, auth, user) -> FlaskClient:
    assert auth.login().status_code == 302
    return client


def form(client: FlaskClient, **fields: Any) -> dict[str, Any]:
    """The search form's data as a browser posts it (background ticked, lead essentials)."""
    token = csrf_token_from(client.get("/search").text)
    return {"csrf_token": token, "background": "y", "field_set": "essentials", **fields}


def submit(client: FlaskClient, **fields: Any) -> str:
    """Submit the search form; the id of the job it created."""
    response = run_search(client, form(client, **fields))
    assert response.status_code == 302, response.text
    return response.headers["Location"].rsplit("/", 1)[1]


def run_job(client: FlaskClient, run_worker, **fields: Any) -> str:
    job_id = submit(client, **fields)
    run_worker()
    return job_id


def preview(client: FlaskClient, **fields: Any):
    return client.post("/search/preview", data=form(client, **fields), headers=HX)


def text_of(html: str, element_id: str) -> str:
    """The text inside the element with this id, tags stripped, whitespace squeezed."""
    match = re.search(rf'<(\w+)[^>]*\bid="{element_id}"[^>]*>(.*?)</\1>', html, re.S)
    assert match, f"no element with id {element_id}"
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(2)).split())


def update_job(app: Flask, job_id: str, **values: Any) -> None:
    with app.app_context():
        db.session.execute(sa.update(BatchJob).where(BatchJob.job_id == job_id).values(**values))
        db.session.commit()


# ----------------------------------------------------------------------------- preview


def test_preview_shows_owned_to_buy_and_the_estimated_cost(app, signed_in, run_worker, simulator):
    app.config["PREVIEW_SNAPSHOT_LIMIT"] = 20_000  # every RadarID checked: exact figures
    run_job(signed_in, run_worker, **MULTNOMAH_FORM)
    simulator.reset()

    response = preview(signed_in, **OREGON_FORM)
    assert response.status_code == 200
    html = response.text
    assert text_of(html, "preview-count") == "10,000"
    assert text_of(html, "preview-owned") == "2,000"  # exact: no "estimate"
    assert text_of(html, "preview-to-buy") == "8,000 records"
    assert text_of(html, "preview-cost") == "$800.00"  # 8,000 x the default $0.10
    assert text_of(html, "preview-pages") == "20 pages of 400"
    assert "an estimate at $0.10 per record bought, the configured price" in html
    assert "estimate from a free sample" not in html
    # 20 purchases + 10 free snapshot pages at ESTIMATED_SECONDS_PER_PAGE = 1 s.
    assert text_of(html, "preview-time") == "about 30 s"
    stats = simulator.stats()
    assert stats["billed_records"] == 0 and purchase_requests(stats, status=None) == []
    assert count_rows(app, BatchJob) == 1  # the preview created nothing
    assert " style=" not in html and "<script" not in html


def test_preview_says_owned_is_an_estimate_past_the_snapshot_limit(
    app, signed_in, run_worker, simulator
):
    run_job(signed_in, run_worker, **MULTNOMAH_FORM)
    app.config.update(PREVIEW_SNAPSHOT_LIMIT=1000, PRICE_PER_EXPORT=0.025)
    html = preview(signed_in, **OREGON_FORM).text
    assert text_of(html, "preview-count") == "10,000"
    assert text_of(html, "preview-owned").endswith("estimate")
    assert text_of(html, "preview-owned").startswith("about ")
    assert "estimate from a free sample of the first 1,000 of 10,000 matches" in html
    assert "an estimate at $0.025 per record bought" in html


def test_preview_with_refresh_everything_buys_all(app, signed_in, run_worker, simulator):
    app.config["PREVIEW_SNAPSHOT_LIMIT"] = 20_000
    run_job(signed_in, run_worker, **MULTNOMAH_FORM)
    html = preview(signed_in, **MULTNOMAH_FORM, refresh_all="y").text
    assert text_of(html, "preview-owned") == "none reused (refresh everything)"
    assert text_of(html, "preview-to-buy") == "2,000 records"
    assert text_of(html, "preview-cost") == "$200.00"
    # Without the box, the same search would buy nothing.
    again = preview(signed_in, **MULTNOMAH_FORM).text
    assert text_of(again, "preview-to-buy") == "0 records"
    assert text_of(again, "preview-cost") == "$0.00"
    assert "would buy nothing and cost nothing" in again


def test_preview_with_a_cap_shows_all_matches_and_what_it_takes(signed_in):
    html = preview(signed_in, **OREGON_FORM, max_records="1000").text
    assert text_of(html, "preview-count") == "10,000"
    assert text_of(html, "preview-cap") == "1,000 (your cap)"
    assert text_of(html, "preview-to-buy") == "1,000 records"
    assert text_of(html, "preview-pages") == "3 pages of 400"


def test_preview_failing_mid_snapshot_is_a_message_not_a_500(signed_in, simulator):
    # The first free page answers; every later one fails (after the client's retries).
    simulator.configure(scripted_faults=[{"kind": "503", "purchase": 0, "after": 1, "times": -1}])
    response = preview(signed_in, **OREGON_FORM)
    assert response.status_code == 200
    assert "PropertyRadar could not count this search." in response.text
    assert "HTTP 503" in response.text and "Nothing was bought." in response.text


# ------------------------------------------------------------------------ search form


def test_search_form_offers_refresh_and_fields(signed_in):
    page = signed_in.get("/search").text
    assert "Refresh everything (buy again what was stored before this search)" in page
    assert re.search(r'<input id="refresh_all" name="refresh_all" type="checkbox"', page)
    assert "Lead essentials" in page and ">Custom<" in page
    # Lead essentials is the default choice.
    assert re.search(r'<input checked id="field_set-0" name="field_set" type="radio"', page)
    assert 'name="custom_fields"' in page


def test_refresh_all_and_custom_fields_reach_the_job(app, signed_in, api):
    job_id = submit(
        signed_in,
        **MULTNOMAH_FORM,
        refresh_all="y",
        field_set="custom",
        custom_fields="AnnualTaxes, EstimatedRent AnnualTaxes",
    )
    job = api.get(f"/api/batch-jobs/{job_id}").json
    assert job["refresh_all"] is True
    assert "AnnualTaxes" in job["fields"] and "EstimatedRent" in job["fields"]
    assert "RadarID" in job["fields"]  # the essentials always come along
    assert job["fields"].count("AnnualTaxes") == 1
    page = signed_in.get(f"/jobs/{job_id}").text
    assert text_of(page, "job-fields").startswith("custom (")
    assert "job-refresh-all" in page

    default = api.get(f"/api/batch-jobs/{submit(signed_in, **MULTNOMAH_FORM)}").json
    assert default["refresh_all"] is False and default["fields"] is None


def test_custom_list_is_ignored_while_lead_essentials_is_chosen(signed_in, api):
    job_id = submit(signed_in, **MULTNOMAH_FORM, field_set="essentials", custom_fields="Nope")
    assert api.get(f"/api/batch-jobs/{job_id}").json["fields"] is None


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("AnnualTaxes, Nope", "Unknown field(s): Nope"),
        ("", "List at least one field name, or choose Lead essentials"),
        (", ".join(f"Field{n}" for n in range(3)), "Unknown field(s): Field0, Field1, Field2"),
    ],
)
def test_invalid_custom_fields_are_shown_next_to_the_field(app, signed_in, typed, message):
    response = signed_in.post(
        "/search",
        data=form(signed_in, **MULTNOMAH_FORM, field_set="custom", custom_fields=typed),
    )
    assert response.status_code == 400
    html = response.text
    assert 'id="custom_fields-error"' in html and message in html
    assert f'value="{typed}"' in html  # what was typed is kept
    assert re.search(r'<input checked id="field_set-1" name="field_set" type="radio"', html)
    assert count_rows(app, BatchJob) == 0

    listed = preview(signed_in, **MULTNOMAH_FORM, field_set="custom", custom_fields=typed)
    assert listed.status_code == 422 and f"Custom fields: {message}" in listed.text


def test_too_many_custom_fields_are_refused(app, signed_in):
    extra = sorted(KNOWN_FIELDS - set(LEAD_FIELDS))[: MAX_FIELDS - len(LEAD_FIELDS) + 1]
    response = signed_in.post(
        "/search",
        data=form(signed_in, **MULTNOMAH_FORM, field_set="custom", custom_fields=",".join(extra)),
    )
    assert response.status_code == 400
    assert f"At most {MAX_FIELDS} fields per request" in response.text
    assert count_rows(app, BatchJob) == 0


# -------------------------------------------------------------------------- job page


def test_job_page_shows_reused_bought_cost_and_the_ledger(app, signed_in, api, run_worker):
    run_job(signed_in, run_worker, **MULTNOMAH_FORM)
    job_id = run_job(signed_in, run_worker, **OREGON_FORM)
    page = signed_in.get(f"/jobs/{job_id}").text
    assert text_of(page, "job-matched") == "10,000"
    assert text_of(page, "job-reused") == "2,000"
    assert text_of(page, "job-bought") == "8,000"
    assert 'id="job-vanished"' not in page and 'id="job-errors"' not in page  # zero: hidden
    assert text_of(page, "job-cost") == "$800.00"  # 8,000 at the configured $0.10
    assert 'id="job-phase"' not in page  # the snapshot is over
    assert " style=" not in page  # the CSP allows no inline styles

    # The ledger: 20 purchases of 400, newest first, 10 per page, the JSON linked.
    ledger = api.get(f"/api/batch-jobs/{job_id}/ledger").json["items"]
    assert len(ledger) == 20
    summary = text_of(page, "purchases-summary")
    assert summary == "8,000 records bought for $800.00 · 2,000 reused at no cost"
    assert f'href="/api/batch-jobs/{job_id}/ledger"' in page
    assert "Page 1 of 2 · 20 purchases" in page
    rows = page.split('id="purchases-table"')[1].split("</table>")[0]
    assert rows.count('data-outcome="billed"') == 10
    for entry in ledger[10:]:
        assert entry["request_id"] in rows
    assert ledger[0]["request_id"] not in rows  # the oldest is on page 2
    assert "$40.00" in rows

    second = signed_in.get(f"/jobs/{job_id}/purchases?page=2", headers=HX)
    assert second.status_code == 200 and "<html" not in second.text
    assert ledger[0]["request_id"] in second.text and "Page 2 of 2" in second.text
    # Without JavaScript the pager reloads the job page at that ledger page.
    assert f"/jobs/{job_id}?purchases_page=2" in page
    assert ledger[0]["request_id"] in signed_in.get(f"/jobs/{job_id}?purchases_page=2").text

    # The live fragment carries the same counts.
    live = signed_in.get(f"/jobs/{job_id}/progress", headers=HX).text
    assert text_of(live, "job-reused") == "2,000" and text_of(live, "job-cost") == "$800.00"


def test_a_rerun_shows_everything_reused_at_no_cost(app, signed_in, run_worker, simulator):
    run_job(signed_in, run_worker, **MULTNOMAH_FORM)
    simulator.reset()
    job_id = run_job(signed_in, run_worker, **MULTNOMAH_FORM)
    page = signed_in.get(f"/jobs/{job_id}").text
    assert text_of(page, "job-reused") == "2,000" and text_of(page, "job-bought") == "0"
    assert text_of(page, "job-cost") == "$0.00"
    assert "Nothing was bought: every lead was already stored." in page
    assert simulator.stats()["billed_records"] == 0


def test_a_possibly_billed_purchase_is_flagged_with_its_note(
    app, signed_in, api, run_worker, simulator
):
    # The second purchase's answer is garbled: it may have been billed, and is bought again.
    simulator.configure(scripted_faults=[{"kind": "malformed", "purchase": 1, "after": 1}])
    job_id = run_job(signed_in, run_worker, **MULTNOMAH_FORM)
    page = signed_in.get(f"/jobs/{job_id}").text
    assert text_of(page, "job-bought") == "2,000"
    summary = text_of(page, "purchases-summary")
    assert summary.endswith("· 1 possibly billed (lost answer, bought again: page 2)")
    rows = page.split('id="purchases-table"')[1].split("</table>")[0]
    assert rows.count('data-outcome="possibly_billed"') == 1
    assert rows.count('data-outcome="billed"') == 5
    entry = next(
        e
        for e in api.get(f"/api/batch-jobs/{job_id}/ledger").json["items"]
        if e["outcome"] == "possibly_billed"
    )
    flagged = rows.split('class="ledger-possibly_billed"')[1].split("</tr>")[0]
    assert 'class="flag flag-warn"' in flagged and "Possibly billed" in flagged
    assert "unknown" in flagged  # neither the records nor the cost are known
    assert entry["note"].startswith("Attempt 1 failed")
    assert escape(entry["note"]) in flagged
    # The id radar_app sent with it, which PropertyRadar received, is shown too: for a
    # request whose answer never came it is the only one.
    ours = entry["client_request_id"]
    assert f"ours: {ours}" in flagged
    sent = [r["client_request_id"] for r in simulator.stats()["requests"] if r["purchase"]]
    assert ours in sent


# ----------------------------------------------------------------------- snapshot phase


def test_job_page_shows_the_free_snapshot_while_it_runs(app, signed_in, run_worker):
    job_id = submit(signed_in, **OREGON_FORM)
    update_job(
        app,
        job_id,
        status=JobStatus.PROCESSING,
        phase=JobPhase.SNAPSHOT,
        snapshot_count=3000,
        total_records=10_000,
        started_at=utcnow(),
    )
    for url in (f"/jobs/{job_id}", f"/jobs/{job_id}/progress"):
        html = signed_in.get(url, headers=HX).text
        assert "Taking a free snapshot: 3,000 RadarIDs so far" in text_of(html, "job-phase")
        assert 'id="job-snapshot-bar" max="10000" value="3000"' in html
    update_job(app, job_id, phase=JobPhase.PURCHASE, processed_records=400)
    assert 'id="job-phase"' not in signed_in.get(f"/jobs/{job_id}/progress", headers=HX).text
    update_job(app, job_id, phase=JobPhase.SNAPSHOT, status=JobStatus.CANCELLED)
    stopped = signed_in.get(f"/jobs/{job_id}").text
    assert "Stopped during the free snapshot (3,000 RadarIDs listed): nothing was bought." in (
        text_of(stopped, "job-phase")
    )


def test_a_waited_for_run_says_what_it_bought_and_reused(app, signed_in, simulator, worker):
    # 100 records (Canyon County, ID): one page, so the request waits for the worker.
    canyon = {"state": "ID", "county": "16027"}
    data = form(signed_in, **canyon)
    del data["background"]
    first = run_search(signed_in, data, follow_redirects=True).text
    assert "Done: 100 leads, listed below. 100 bought for $10.00, 0 reused at no cost." in first
    data["csrf_token"] = csrf_token_from(first)
    again = run_search(signed_in, data, follow_redirects=True).text
    assert "Done: 100 leads, listed below. 0 bought for $0.00, 100 reused at no cost." in again
    assert simulator.stats()["billed_records"] == 100
