"""Issue 9's first-time-user findings through Flask's test client, CSRF on.

- "Run search" asks before any job that would buy records, with the count and the cost
  in dollars; Back keeps the values; a job that would buy nothing starts at once.
- County by name (per chosen state), several states per search.
- Money shown with its currency, admin usage included.
- A finished job's page: no "queued" message, no zero counters, an ETA only from a
  meaningful purchase rate.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from radar_app import pace
from radar_app.extensions import db
from radar_app.jobs.filters import money
from radar_app.models import BatchJob, JobPhase, JobStatus, LedgerEntry, User, utcnow
from radar_app.propertyradar.counties import (
    CountyError,
    by_fips,
    counties_in,
    resolve_counties,
)
from tests.conftest import csrf_token_from
from tests.helpers import MULTNOMAH, count_rows, job_row, make_job, purchase_requests
from tests.search_helpers import confirmation_form, is_confirmation, run_search

HX = {"HX-Request": "true"}


@pytest.fixture
def signed_in(client: FlaskClient, auth, user: User) -> FlaskClient:
    assert auth.login().status_code == 302
    return client


def form(client: FlaskClient, **fields: Any) -> dict[str, Any]:
    """The search form as a browser posts it: background ticked, lead essentials."""
    token = csrf_token_from(client.get("/search").text)
    data = {"csrf_token": token, "background": "y", "field_set": "essentials", **fields}
    if fields.get("background") is False:
        del data["background"]
    return data


def text_of(html: str, element_id: str) -> str:
    match = re.search(rf'<(\w+)[^>]*\bid="{element_id}"[^>]*>(.*?)</\1>', html, re.S)
    assert match, f"no element with id {element_id}"
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(2)).split())


def purchases(simulator) -> list[dict[str, Any]]:
    return purchase_requests(simulator.stats(), status=None)


# ------------------------------------------------------------- 1. confirm before buying


def test_run_search_shows_the_cost_and_buys_nothing_until_confirmed(app, signed_in, simulator):
    price = app.config["PRICE_PER_EXPORT"]
    asked = signed_in.post("/search", data=form(signed_in, state="OR", name="Oregon"))
    assert is_confirmation(asked)
    assert text_of(asked.text, "confirm-to-buy") == "10,000 records"
    assert text_of(asked.text, "confirm-cost") == money(10_000 * price)
    assert text_of(asked.text, "confirm-matches") == "10,000"
    assert "Confirm and buy 10,000 records" in asked.text
    assert count_rows(app, BatchJob) == 0 and purchases(simulator) == []

    done = signed_in.post("/search", data=confirmation_form(asked.text))
    assert done.status_code == 302
    job = job_row(app, done.headers["Location"].rsplit("/", 1)[1])
    assert job.name == "Oregon" and job.status == JobStatus.PENDING
    assert count_rows(app, BatchJob) == 1 and purchases(simulator) == []  # queued only


def test_one_confirmation_starts_one_job(app, signed_in, simulator):
    """A double click, or the browser resending the form, must not buy the search twice."""
    asked = signed_in.post("/search", data=form(signed_in, state="OR", county="41051"))
    confirm = confirmation_form(asked.text)
    first = signed_in.post("/search", data=confirm)
    again = signed_in.post("/search", data=confirm)
    assert first.status_code == again.status_code == 302
    assert again.headers["Location"] == first.headers["Location"]
    assert count_rows(app, BatchJob) == 1
    assert "This search was already started" in signed_in.get(again.headers["Location"]).text
    # Asking again gives a new confirmation, which starts a new job.
    fresh = signed_in.post("/search", data=form(signed_in, state="OR", county="41051"))
    assert signed_in.post("/search", data=confirmation_form(fresh.text)).status_code == 302
    assert count_rows(app, BatchJob) == 2


def test_back_to_the_form_keeps_every_value_and_creates_nothing(app, signed_in):
    data = form(
        signed_in,
        state=["OR", "WA"],
        county="Multnomah, King",
        name="Two states",
        beds_min="3",
        occupancy="0",
        max_records="500",
        field_set="custom",
        custom_fields="AnnualTaxes",
    )
    del data["background"]
    asked = signed_in.post("/search", data=data)
    assert is_confirmation(asked)
    back = signed_in.post("/search", data=confirmation_form(asked.text, "edit"))
    assert back.status_code == 200 and 'id="search-form"' in back.text
    page = back.text
    assert '<option selected value="OR">' in page and '<option selected value="WA">' in page
    assert 'value="Multnomah, King"' in page and 'value="Two states"' in page
    assert 'value="3"' in page and 'value="500"' in page and 'value="AnnualTaxes"' in page
    assert re.search(r'<input checked id="occupancy-2" name="occupancy" type="radio"', page)
    assert re.search(r'<input id="background" name="background" type="checkbox"', page)
    assert "Please fix" not in page  # going back is not an error
    assert count_rows(app, BatchJob) == 0


def test_a_search_that_buys_nothing_starts_at_once(app, signed_in, run_worker, simulator):
    run_search(signed_in, form(signed_in, state="OR", county="41051"))
    run_worker()
    simulator.reset()
    # Every match is stored and fresh: nothing to buy, so no question.
    again = signed_in.post("/search", data=form(signed_in, state="OR", county="41051"))
    assert again.status_code == 302
    assert count_rows(app, BatchJob) == 2
    run_worker()
    assert job_row(app, again.headers["Location"].rsplit("/", 1)[1]).purchased_count == 0
    assert purchases(simulator) == []


def test_the_unticked_path_asks_too(app, signed_in, simulator, worker):
    data = form(signed_in, state="ID", county="16027", background=False)  # 100 records
    asked = signed_in.post("/search", data=data)
    assert is_confirmation(asked) and "runs now" in asked.text
    assert purchases(simulator) == [] and count_rows(app, BatchJob) == 0
    done = signed_in.post("/search", data=confirmation_form(asked.text), follow_redirects=True)
    assert "Done: 100 leads, listed below. 100 bought for" in done.text


def test_a_confirmation_only_starts_the_search_it_priced(app, signed_in, simulator):
    asked = signed_in.post("/search", data=form(signed_in, state="ID", county="16027"))
    changed = confirmation_form(asked.text)
    changed["county"] = "16001"  # Ada: another search, never priced
    again = signed_in.post("/search", data=changed)
    assert is_confirmation(again) and 'id="confirm-stale"' in again.text
    assert count_rows(app, BatchJob) == 0

    forged = confirmation_form(asked.text)
    forged["confirm_token"] = forged["confirm_token"][:-2] + "xx"
    assert is_confirmation(signed_in.post("/search", data=forged))
    assert count_rows(app, BatchJob) == 0 and purchases(simulator) == []


def test_a_confirmation_expires_and_belongs_to_its_user(app, client, auth, user, other_user):
    auth.login(other_user.email)
    theirs = client.post("/search", data=form(client, state="ID", county="16027"))
    client.post("/auth/logout", data={"csrf_token": auth.csrf_token()})
    auth.login(user.email)
    stolen = confirmation_form(theirs.text)
    stolen["csrf_token"] = auth.csrf_token()
    assert is_confirmation(client.post("/search", data=stolen))  # priced again, for me

    app.config["SEARCH_CONFIRM_SECONDS"] = -1  # every confirmation is already too old
    mine = client.post("/search", data=form(client, state="ID", county="16027"))
    late = client.post("/search", data=confirmation_form(mine.text))
    assert is_confirmation(late) and "confirmation expired" in late.text
    assert count_rows(app, BatchJob) == 0


def test_confirming_needs_the_csrf_token_and_a_valid_form(app, signed_in):
    asked = signed_in.post("/search", data=form(signed_in, state="OR"))
    no_csrf = confirmation_form(asked.text)
    del no_csrf["csrf_token"]
    assert signed_in.post("/search", data=no_csrf).status_code == 400
    bad = confirmation_form(asked.text)
    bad["beds_min"] = "lots"
    refused = signed_in.post("/search", data=bad)
    assert refused.status_code == 400 and "Not a valid integer value" in refused.text
    assert count_rows(app, BatchJob) == 0


def test_a_search_that_cannot_be_priced_is_a_message_and_creates_nothing(app, signed_in, simulator):
    simulator.configure(scripted_faults=[{"kind": "503", "purchase": 0, "times": -1}])
    response = signed_in.post("/search", data=form(signed_in, state="OR", name="Keep me"))
    assert response.status_code == 502
    assert "Could not price this search" in response.text and 'value="Keep me"' in response.text
    assert count_rows(app, BatchJob) == 0


# -------------------------------------------------------------- 3. counties and states


def test_county_table_covers_every_state_the_simulator_holds():
    from simulator import tables

    for county in tables.COUNTIES:
        known = by_fips(county.fips)
        assert known is not None and known.state == county.state, county
    assert len(counties_in(["OR"])) == 36 and len(counties_in(["CA"])) == 58
    assert len(counties_in(["TX"])) == 254


@pytest.mark.parametrize(
    ("typed", "states", "fips"),
    [
        ("Multnomah", ["OR"], ["41051"]),
        ("multnomah county", None, ["41051"]),
        ("Multnomah County, OR", ["OR", "WA"], ["41051"]),
        ("Orange, FL", None, ["12095"]),
        ("Orange (CA)", ["CA", "FL"], ["06059"]),
        ("Washington, Multnomah", ["OR"], ["41067", "41051"]),
        ("King", ["OR", "WA"], ["53033"]),
        ("41051, 6037", None, ["41051", "6037"]),
        ("Miami-Dade", ["FL"], ["12086"]),
        ("St. Louis", ["MO"], ["29189"]),
        ("Saint Louis city", ["MO"], ["29510"]),
        ("Baltimore", ["MD"], ["24005"]),
    ],
)
def test_county_names_resolve_to_fips(typed, states, fips):
    assert resolve_counties(typed, states) == fips


@pytest.mark.parametrize(
    ("typed", "states", "message"),
    [
        ("Nowhere", ["OR"], "No county named 'Nowhere' in OR"),
        ("King", ["OR"], "No county named 'King' in OR (found in TX, WA)"),
        ("Orange", None, "'Orange' is a county in CA, FL, IN, NC, NY, TX, VA, VT"),
        ("Orange", ["CA", "FL"], "add the state, like 'Orange, CA'"),
        ("Orange, FL", ["CA"], "Orange, FL is outside the chosen states (CA)"),
        ("53033", ["OR"], "53033 is King County, WA, outside the chosen states (OR)"),
        ("123", None, "County FIPS codes have 4 or 5 digits"),
    ],
)
def test_unknown_or_ambiguous_counties_say_how_to_fix_them(typed, states, message):
    with pytest.raises(CountyError, match=re.escape(message)):
        resolve_counties(typed, states)


def test_county_by_name_and_several_states_reach_the_job(app, signed_in):
    response = run_search(
        signed_in, form(signed_in, state=["OR", "WA"], county="Multnomah County, OR, King")
    )
    assert response.status_code == 302
    job = job_row(app, response.headers["Location"].rsplit("/", 1)[1])
    assert job.criteria == [
        {"name": "State", "value": ["OR", "WA"]},
        {"name": "County", "value": ["41051", "53033"]},
    ]


def test_an_unknown_county_name_is_a_field_error(app, signed_in):
    response = signed_in.post(
        "/search", data=form(signed_in, state="OR", county="Multnomah, Atlantis")
    )
    assert response.status_code == 400
    assert 'id="county-error"' in response.text
    assert "No county named &#39;Atlantis&#39; in OR" in response.text
    assert 'value="Multnomah, Atlantis"' in response.text  # what was typed is kept
    preview = signed_in.post("/search/preview", data=form(signed_in, county="Orange"), headers=HX)
    assert preview.status_code == 422 and "add the state, like" in preview.text
    unknown_state = signed_in.post("/search", data=form(signed_in, state="ZZ"))
    assert unknown_state.status_code == 400 and 'id="state-error"' in unknown_state.text
    assert count_rows(app, BatchJob) == 0


def test_county_suggestions_follow_the_chosen_states(signed_in):
    page = signed_in.get("/search").text
    assert re.search(r'<datalist id="county-options">\s*</datalist>', page)  # no state yet
    headers = {**HX, "HX-Target": "county-options"}
    fragment = signed_in.get("/search?state=OR&state=WA", headers=headers)
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert fragment.text.count("<option ") == 36 + 39
    assert '<option value="Multnomah County, OR">41051</option>' in fragment.text
    assert '<option value="King County, WA">53033</option>' in fragment.text
    assert signed_in.get("/search?state=ZZ", headers=headers).text.count("<option ") == 0
    # The state select asks for exactly this fragment when it changes.
    select = re.search(r'<select[^>]*id="state"[^>]*>', page)[0]
    for attribute in ('hx-get="/search"', 'hx-target="#county-options"', 'hx-trigger="change"'):
        assert attribute in select, attribute


# ------------------------------------------------------------------------- 4. money


def test_admin_usage_shows_money_with_its_currency(app, client, auth, api, admin, run_worker):
    api.post("/api/batch-jobs", json={"criteria": MULTNOMAH})
    run_worker()
    with app.app_context():
        billed = db.session.scalar(sa.select(sa.func.sum(LedgerEntry.total_cost)))
    assert billed
    auth.login(admin.email)
    page = client.get("/admin/usage").text
    usage = page.split('id="usage"')[1].split("</table>")[0]
    assert f'<td class="num">{money(billed)}</td>' in usage
    assert re.search(r">\d[\d,]*\.\d\d<", usage) is None  # no amount without its "$"


def test_money_filter_is_the_one_format():
    assert money(80_000) == "$80,000.00"
    assert money(-12.5) == "-$12.50"
    assert money(0.025, unit_price=True) == "$0.025"
    assert money(850_000, cents=False) == "$850,000"
    assert money(None) == "–"


# ------------------------------------------------------------------ 5. the job page


def test_queued_message_lasts_only_while_the_job_is_queued(app, signed_in):
    response = run_search(signed_in, form(signed_in, state="OR", county="41051"))
    job_id = response.headers["Location"].rsplit("/", 1)[1]
    queued = signed_in.get(f"/jobs/{job_id}").text
    assert "Your job is queued. This page updates as it runs." in queued
    with app.app_context():
        db.session.execute(
            sa.update(BatchJob)
            .where(BatchJob.job_id == job_id)
            .values(status=JobStatus.COMPLETED, completed_at=utcnow())
        )
        db.session.commit()
    assert "Your job is queued" not in signed_in.get(f"/jobs/{job_id}").text


def test_the_page_notices_are_cleared_once_the_job_has_finished(app, signed_in, csrf_headers):
    job_id = make_job(app)
    url = f"/jobs/{job_id}/progress"
    oob = 'id="job-notices" role="status" hx-swap-oob="true"'
    assert oob not in signed_in.get(f"{url}?v=PENDING.0.0.x", headers=HX).text  # still active
    with app.app_context():
        db.session.execute(
            sa.update(BatchJob)
            .where(BatchJob.job_id == job_id)
            .values(status=JobStatus.FAILED, completed_at=utcnow(), error_details="503")
        )
        db.session.commit()
    # The page last showed it running: the poll that sees it finished clears the notices.
    assert oob in signed_in.get(f"{url}?v=PROCESSING.800.0.x", headers=HX).text
    assert oob not in signed_in.get(f"{url}?v=FAILED.0.0.x", headers=HX).text
    assert "hx-swap-oob" not in signed_in.get(f"/jobs/{job_id}").text  # the page has one box
    # Acting on the job (Retry) replaces what the notices said.
    assert oob in signed_in.post(f"/jobs/{job_id}/retry", headers=csrf_headers).text


@pytest.fixture
def csrf_headers(signed_in, auth) -> dict[str, str]:
    return {**HX, "X-CSRFToken": auth.csrf_token()}


def test_a_failed_job_shows_no_zero_counters(app, signed_in):
    now = utcnow()
    job_id = make_job(
        app,
        status=JobStatus.FAILED,
        error_details="PropertyRadar returned 503",
        total_records=2000,
        processed_records=800,
        started_at=now - timedelta(seconds=30),
        run_started_at=now - timedelta(seconds=30),
        completed_at=now,
    )
    page = signed_in.get(f"/jobs/{job_id}").text
    assert "Why it failed" in page
    for hidden in ("job-errors", "job-vanished", "job-eta", "job-speed"):
        assert f'id="{hidden}"' not in page, hidden
    assert ">Errors<" not in page and "Time left" not in page
    with app.app_context():
        db.session.execute(
            sa.update(BatchJob).where(BatchJob.job_id == job_id).values(error_count=3)
        )
        db.session.commit()
    assert text_of(signed_in.get(f"/jobs/{job_id}").text, "job-errors") == "3"


def test_eta_waits_for_a_meaningful_purchase_rate(app, signed_in):
    """A 2,000-record job whose free snapshot took 40 s, then 400 records per 2 s."""
    now = utcnow()
    started = now - timedelta(seconds=41)
    snapshot_done = now - timedelta(seconds=1)
    common = dict(
        status=JobStatus.PROCESSING,
        total_records=2000,
        started_at=started,
        run_started_at=started,
        run_start_processed=0,
    )
    # During the free snapshot: no rate, no time left.
    snapshotting = make_job(app, phase=JobPhase.SNAPSHOT, snapshot_count=1000, **common)
    page = signed_in.get(f"/jobs/{snapshotting}/progress", headers=HX).text
    assert text_of(page, "job-eta") == "estimating…"
    assert text_of(page, "job-speed") == "estimating…"

    # One chunk 1 s into the purchases: still estimating (measured from the run's start, as
    # before, 400 records in 41 s would have said 2 min 43 s).
    first_chunk = make_job(
        app,
        phase=JobPhase.PURCHASE,
        processed_records=400,
        purchase_started_at=snapshot_done,
        **common,
    )
    page = signed_in.get(f"/jobs/{first_chunk}/progress", headers=HX).text
    assert text_of(page, "job-eta") == "estimating…"
    assert signed_in.get(f"/api/batch-jobs/{first_chunk}").json["eta_seconds"] is None

    # Two chunks over 8 s of buying: 100 records/s, 12 s left for the last 1,200.
    buying = make_job(
        app,
        phase=JobPhase.PURCHASE,
        processed_records=800,
        purchase_started_at=(began_buying := utcnow() - timedelta(seconds=8)),
        **common,
    )
    page = signed_in.get(f"/jobs/{buying}/progress", headers=HX).text
    # The page reads the clock after the test did (milliseconds, more on a loaded machine):
    # the rate it shows lies between 800 records over 8 s and over the time since then.
    seconds = (utcnow() - began_buying).total_seconds()
    assert 800 / seconds - 0.1 <= float(text_of(page, "job-speed").removesuffix(" rec/s")) <= 100
    eta = int(text_of(page, "job-eta").removesuffix(" s"))
    assert 12 <= eta <= round(1200 * seconds / 800)
    eta_seconds = signed_in.get(f"/api/batch-jobs/{buying}").json["eta_seconds"]
    assert 11 <= eta_seconds <= 1200 * (utcnow() - began_buying).total_seconds() / 800 + 0.5


def test_pace_rules_on_constructed_rows():
    now = utcnow()
    job = BatchJob(
        status=JobStatus.PROCESSING,
        phase=JobPhase.PURCHASE,
        total_records=10_000,
        processed_records=800,
        run_start_processed=0,
        run_started_at=now - timedelta(seconds=100),
    )
    # The purchase phase began 4 s ago: too early, whatever was done.
    job.purchase_started_at = now - timedelta(seconds=4)
    early = pace.purchase_pace(job, now, batch_size=400)
    assert early.estimating and early.seconds_left is None
    # Unknown start: measured from the run's start, never earlier.
    job.purchase_started_at = None
    unknown = pace.purchase_pace(job, now, batch_size=400)
    assert unknown.records_per_second == 8.0 and unknown.seconds_left == 1150.0
    job.purchase_started_at = now - timedelta(days=1)
    assert pace.purchase_pace(job, now, batch_size=400) == unknown
    # A resumed run: only what this run did counts.
    job.purchase_started_at = None
    job.run_start_processed = 600
    assert pace.purchase_pace(job, now, batch_size=400).estimating
    job.status = JobStatus.COMPLETED
    assert pace.purchase_pace(job, now, batch_size=400) == pace.NOT_RUNNING
