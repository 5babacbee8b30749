"""Authorization matrix: every route × anonymous / owner / other user / admin.

MATRIX below holds one row per request (some routes have two: the htmx call and the plain
form fallback) with the exact answer each role gets. Each cell is its own test, and
`test_matrix_covers_every_route` fails as soon as a route is added without a row.

The matrix tests authorization, not CSRF: every state-changing request carries a valid
token of its own session (tests/test_security.py checks CSRF itself). API rows run twice,
authenticated by the session cookie and by a Bearer token (anonymous: none / a bogus one).

Besides the status, each cell checks where a redirect goes, that API errors are JSON, that
a refusal leaks nothing of the owner's job, and that the database changed exactly when the
row writes and the role was let through (a refused request has no side effect).
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from radar_app import alerts, schedules, suppression
from radar_app.extensions import db
from radar_app.models import (
    AlertChannel,
    AlertDelivery,
    BatchJob,
    JobStatus,
    SavedSearch,
    Schedule,
    SuppressionList,
    User,
)
from radar_app.schedules import ScheduleSpec
from tests.conftest import PASSWORD, AuthActions, csrf_token_from, issue_token, make_user
from tests.helpers import MULTNOMAH, job_row

# The value of a CSRF token in a page (a hidden input or the hx-headers JSON).
CSRF_TOKEN = re.compile(rb"(?<=csrf_token\" value=\")[^\"]+|(?<=\"X-CSRFToken\": \")[^\"]+")


class Expect(NamedTuple):
    status: int
    # Regex the redirect target must match in full (Location, or HX-Redirect for htmx 401s).
    # "{next}" stands for the requested path, "{job}" for the id of the row's job.
    location: str | None = None
    granted: bool = True


# In the table a plain number is that status (>= 400: refused); redirects are named here.
LOGIN = Expect(302, r"/auth/login\?next={next}", granted=False)  # page: off to sign in
HX_LOGIN = Expect(401, r"/auth/login\?next=/jobs", granted=False)  # htmx: via HX-Redirect
JOBS = Expect(302, r"/jobs")
JOB = Expect(302, r"/jobs/{job}")
NEW = Expect(302, r"/jobs/[0-9a-f]{{32}}")  # the job just created
OUT = Expect(302, r"/auth/login")  # signed out
SAVED = Expect(302, r"/searches")
PLAN = Expect(302, r"/searches/[0-9a-f]{{32}}/schedule")
LISTS = Expect(302, r"/suppression-lists")
ALERTS = Expect(302, r"/alerts")
STUCK = Expect(302, r"/admin/stuck")
USAGE = Expect(302, r"/admin/usage")
NOTHING = Expect(200, granted=False)  # answered, but nothing of the owner's is touched
USER = Expect(302, r"/admin/users/[0-9]+")

PAGE, HTMX, API = "page", "htmx", "api"
ROLES = ("anonymous", "owner", "other", "admin")
# The owner's jobs a path names: run to completion (leads, log, ledger, CSV exist), freshly
# queued (can be cancelled or requeued), or cancelled (can be retried).
DONE, PENDING, CANCELLED = "done", "pending", "cancelled"


class Row(NamedTuple):
    method: str
    # {done}, {pending}, {cancelled}: one of the owner's jobs; {user}: the owner;
    # {search}: the owner's saved search; {list}: the owner's suppression list
    path: str
    via: str  # a page or form (PAGE), an htmx request (HTMX), the JSON API (API)
    writes: bool  # a granted request changes the database
    anonymous: Expect | int
    owner: Expect | int
    other: Expect | int
    admin: Expect | int

    @property
    def job(self) -> str | None:
        match = re.search(r"\{(done|pending|cancelled)\}", self.path)
        return match.group(1) if match else None

    def url(
        self,
        job_id: str | None,
        user_id: int,
        search_id: str | None = None,
        list_id: str = "",
        channel_id: str = "",
    ) -> str:
        return self.path.format(
            done=job_id,
            pending=job_id,
            cancelled=job_id,
            user=user_id,
            search=search_id,
            list=list_id,
            channel=channel_id,
        )

    def expect(self, role: str) -> Expect:
        value = getattr(self, role)
        return value if isinstance(value, Expect) else Expect(value, granted=value < 400)


# fmt: off
MATRIX = [Row(*row) for row in [
    # method path                                  via   writes anonymous owner    other    admin
    ("GET",  "/",                                   PAGE, False, LOGIN,    JOBS,    JOBS,    JOBS),
    ("GET",  "/jobs",                               PAGE, False, LOGIN,    200,     200,     200),
    ("GET",  "/search",                             PAGE, False, LOGIN,    200,     200,     200),
    ("POST", "/search",                             PAGE, False, LOGIN,    200,     200,     200),
    ("POST", "/search/preview",                     HTMX, False, HX_LOGIN, 200,     200,     200),
    # No job running: 286, htmx's "stop polling" (tests/test_notifications.py).
    ("GET",  "/notifications",                      HTMX, False, HX_LOGIN, 286,     286,     286),
    ("GET",  "/jobs/{done}",                        PAGE, False, LOGIN,    200,     404,     200),
    ("GET",  "/jobs/{done}/leads.csv",              PAGE, False, LOGIN,    200,     404,     200),
    ("GET",  "/jobs/{done}/outcomes.csv",           PAGE, False, LOGIN,    200,     404,     200),
    ("GET",  "/jobs/{done}/row",                    HTMX, False, HX_LOGIN, 200,     404,     200),
    ("GET",  "/leads",                              PAGE, False, LOGIN,    200,     200,     200),
    ("GET",  "/leads?job={done}",                   PAGE, False, LOGIN,    200,     404,     200),
    ("GET",  "/leads/export.csv",                   PAGE, False, LOGIN,    200,     200,     200),
    ("GET",  "/leads/export.csv?job={done}",        PAGE, False, LOGIN,    200,     404,     200),
    ("GET",  "/jobs/{done}/progress",               HTMX, False, HX_LOGIN, 200,     404,     200),
    ("GET",  "/jobs/{done}/log",                    HTMX, False, HX_LOGIN, 200,     404,     200),
    ("GET",  "/jobs/{done}/timeline",               HTMX, False, HX_LOGIN, 200,     404,     200),
    ("GET",  "/jobs/{done}/leads",                  HTMX, False, HX_LOGIN, 200,     404,     200),
    ("GET",  "/jobs/{done}/purchases",              HTMX, False, HX_LOGIN, 200,     404,     200),
    ("GET",  "/jobs/{done}/charts",                 HTMX, False, HX_LOGIN, 200,     404,     200),
    ("GET",  "/jobs/{done}/charts/rate.svg",        PAGE, False, LOGIN,    200,     404,     200),
    ("GET",  "/jobs/{done}/charts/cost.svg",        PAGE, False, LOGIN,    200,     404,     200),
    ("GET",  "/dashboard",                          PAGE, False, LOGIN,    200,     200,     200),
    ("POST", "/jobs/{pending}/cancel",              HTMX, True,  HX_LOGIN, 200,     404,     200),
    ("POST", "/jobs/{pending}/cancel",              PAGE, True,  LOGIN,    JOB,     404,     JOB),
    ("POST", "/jobs/{cancelled}/retry",             HTMX, True,  HX_LOGIN, 200,     404,     200),
    ("POST", "/jobs/{cancelled}/retry",             PAGE, True,  LOGIN,    JOB,     404,     JOB),
    ("GET",  "/jobs/counts",                        HTMX, False, HX_LOGIN, 286,     286,     286),
    # Bulk: "?from={pending}" only makes the row's job (a pending one of the owner's); the
    # body cancels every job matching: the other user has none, so theirs changes nothing.
    ("POST", "/jobs/bulk?from={pending}",           HTMX, True,  HX_LOGIN, 200,     NOTHING, 200),
    ("POST", "/jobs/bulk?from={pending}",           PAGE, True,  LOGIN,    200,     NOTHING, 200),
    ("GET",  "/auth/login",                         PAGE, False, 200,      JOBS,    JOBS,    JOBS),
    ("POST", "/auth/login",                         PAGE, False, JOBS,     JOBS,    JOBS,    JOBS),
    ("POST", "/auth/logout",                        PAGE, False, LOGIN,    OUT,     OUT,     OUT),
    ("GET",  "/healthz",                            PAGE, False, 200,      200,     200,     200),
    # Prometheus' scrape: plain 401 / 403 (tests/test_metrics.py: the scrape token).
    ("GET",  "/metrics",                            PAGE, False, 401,      403,     403,     200),
    ("GET",  "/admin/",                             PAGE, False, LOGIN,    403,     403,     200),
    ("GET",  "/admin/stuck",                        PAGE, False, LOGIN,    403,     403,     200),
    ("GET",  "/admin/usage",                        PAGE, False, LOGIN,    403,     403,     200),
    ("POST", "/admin/jobs/{pending}/requeue",       PAGE, True,  LOGIN,    403,     403,     STUCK),
    ("POST", "/admin/jobs/{pending}/fail",          PAGE, True,  LOGIN,    403,     403,     STUCK),
    ("POST", "/admin/users/{user}/budget",          PAGE, True,  LOGIN,    403,     403,     USAGE),
    ("GET",  "/admin/users",                        PAGE, False, LOGIN,    403,     403,     200),
    ("POST", "/admin/users",                        PAGE, True,  LOGIN,    403,     403,     201),
    ("GET",  "/admin/users/{user}",                 PAGE, False, LOGIN,    403,     403,     200),
    ("POST", "/admin/users/{user}/disable",         PAGE, True,  LOGIN,    403,     403,     USER),
    # The owner is not disabled, and has no API token here: granted, nothing to change.
    ("POST", "/admin/users/{user}/enable",          PAGE, False, LOGIN,    403,     403,     USER),
    ("POST", "/admin/users/{user}/password",        PAGE, True,  LOGIN,    403,     403,     200),
    ("POST", "/admin/users/{user}/token",           PAGE, True,  LOGIN,    403,     403,     200),
    ("POST", "/admin/users/{user}/token/revoke",    PAGE, False, LOGIN,    403,     403,     USER),
    ("POST", "/admin/users/{user}/role",            PAGE, True,  LOGIN,    403,     403,     USER),
    ("GET",  "/admin/audit",                        PAGE, False, LOGIN,    403,     403,     200),
    ("POST", "/api/batch-jobs",                     API,  True,  401,      201,     201,     201),
    ("GET",  "/api/batch-jobs",                     API,  False, 401,      200,     200,     200),
    ("POST", "/api/batch-jobs/preview",             API,  False, 401,      200,     200,     200),
    ("GET",  "/api/batch-jobs/{done}",              API,  False, 401,      200,     404,     200),
    ("GET",  "/api/batch-jobs/{done}/logs",         API,  False, 401,      200,     404,     200),
    ("GET",  "/api/batch-jobs/{done}/transitions",  API,  False, 401,      200,     404,     200),
    ("GET",  "/api/batch-jobs/{done}/ledger",       API,  False, 401,      200,     404,     200),
    ("GET",  "/api/batch-jobs/{done}/leads",        API,  False, 401,      200,     404,     200),
    ("GET",  "/api/batch-jobs/{done}/leads.csv",    API,  False, 401,      200,     404,     200),
    ("GET",  "/api/batch-jobs/{done}/outcomes.csv", API,  False, 401,      200,     404,     200),
    ("POST", "/api/batch-jobs/{pending}/cancel",    API,  True,  401,      202,     404,     202),
    ("POST", "/api/batch-jobs/{cancelled}/retry",   API,  True,  401,      202,     404,     202),
    ("POST", "/api/batch-jobs/bulk?from={pending}", API,  True,  401,      200,     NOTHING, 200),
    ("GET",  "/api/openapi.json",                   API,  False, 200,      200,     200,     200),
    ("GET",  "/api/leads",                          API,  False, 401,      200,     200,     200),
    ("GET",  "/api/leads?job={done}",               API,  False, 401,      200,     404,     200),
    ("GET",  "/searches",                           PAGE, False, LOGIN,    200,     200,     200),
    ("POST", "/searches",                           PAGE, True,  LOGIN,    SAVED,   SAVED,   SAVED),
    ("POST", "/searches/{search}",                  PAGE, True,  LOGIN,    SAVED,   404,     SAVED),
    ("POST", "/searches/{search}/delete",           PAGE, True,  LOGIN,    SAVED,   404,     SAVED),
    ("POST", "/searches/from-job/{done}",           PAGE, True,  LOGIN,    SAVED,   404,     SAVED),
    ("GET",  "/searches/{search}/schedule",         PAGE, False, LOGIN,    200,     404,     200),
    ("POST", "/searches/{search}/schedule",         PAGE, True,  LOGIN,    PLAN,    404,     PLAN),
    ("POST", "/searches/{search}/schedule/delete",  PAGE, True,  LOGIN,    SAVED,   404,     SAVED),
    ("POST", "/api/searches",                       API,  True,  401,      201,     201,     201),
    ("GET",  "/api/searches",                       API,  False, 401,      200,     200,     200),
    ("GET",  "/api/searches/{search}",              API,  False, 401,      200,     404,     200),
    ("PUT",  "/api/searches/{search}",              API,  True,  401,      200,     404,     200),
    ("DELETE", "/api/searches/{search}",            API,  True,  401,      200,     404,     200),
    ("POST", "/api/searches/{search}/jobs",         API,  True,  401,      201,     404,     201),
    ("GET",  "/alerts",                             PAGE, False, LOGIN,    200,     200,     200),
    ("POST", "/alerts",                             PAGE, True,  LOGIN,    201,     201,     201),
    ("POST", "/alerts/{channel}/test",              PAGE, True,  LOGIN,    ALERTS,  404,     404),
    ("POST", "/alerts/{channel}/delete",            PAGE, True,  LOGIN,    ALERTS,  404,     404),
    ("GET",  "/suppression-lists",                  PAGE, False, LOGIN,    200,     200,     200),
    ("POST", "/suppression-lists",                  PAGE, True,  LOGIN,    LISTS,   LISTS,   LISTS),
    ("POST", "/suppression-lists/{list}/default",   PAGE, True,  LOGIN,    LISTS,   404,     LISTS),
    ("POST", "/suppression-lists/{list}/delete",    PAGE, True,  LOGIN,    LISTS,   404,     LISTS),
]]
# fmt: on

# Bodies of the state-changing requests (CSRF tokens and passwords are added per cell).
BODIES: dict[str, dict[str, Any]] = {
    "/search": {"state": "OR", "county": "41051", "background": "y"},
    "/search/preview": {"state": "OR", "county": "41051"},
    "/auth/login": {"email": "owner@example.com"},
    "/admin/users/{user}/budget": {"budget": "1234"},
    "/admin/users": {"email": "matrix@example.com", "role": "user"},
    "/admin/users/{user}/role": {"role": "admin"},
    "/api/batch-jobs": {"criteria": MULTNOMAH, "max_records": 10},
    "/api/batch-jobs/preview": {"criteria": MULTNOMAH},
    "/jobs/bulk?from={pending}": {"action": "cancel", "scope": "matching"},
    "/api/batch-jobs/bulk?from={pending}": {"action": "cancel", "filter": {}},
    "/searches": {"state": "OR", "name": "Matrix", "background": "y"},
    "/searches/{search}": {"state": "WA", "name": "Renamed", "background": "y"},
    "/searches/{search}/schedule": {"cadence": "daily", "at": "09:00", "timezone": "UTC"},
    "/api/searches": {"name": "Matrix", "criteria": MULTNOMAH},
    "/suppression-lists": {"name": "Matrix", "values": "P1A2B3C"},
    "/alerts": {"kind": "email", "target": "matrix@example.com", "events": "job.failed"},
    "/suppression-lists/{list}/default": {"is_default": "y"},
    "/api/searches/{search}": {"name": "Renamed", "criteria": MULTNOMAH},
}

# The owner's job is named so that a refusal can be checked not to leak it.
SECRET_NAME = "Owner's private Multnomah list"
EMAILS = {"owner": "owner@example.com", "other": "other@example.com", "admin": "admin@example.com"}


def _cells() -> list[Any]:
    cells = []
    for row in MATRIX:
        label = f"{row.method} {row.path}" + (" (htmx)" if row.via == HTMX else "")
        for role in ROLES:
            for auth in ("session", "bearer") if row.via == API else ("session",):
                suffix = f"-{auth}" if row.via == API else ""
                cells.append(pytest.param(row, role, auth, id=f"{label}-{role}{suffix}"))
    return cells


CELLS = _cells()


# --------------------------------------------------------------------------- coverage


def _endpoint(app: Flask, row: Row) -> str:
    path = row.url("0" * 32, 1, "0" * 32, "0" * 32, "0" * 32).split("?")[0]
    return app.url_map.bind("localhost").match(path, method=row.method)[0]


def test_matrix_covers_every_route(app: Flask) -> None:
    """Every (rule, method) of the app has a row, and every row reaches a route."""
    routes = {
        (rule.endpoint, method)
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    in_matrix = {(_endpoint(app, row), row.method) for row in MATRIX}
    assert routes - in_matrix == set(), "routes without an authorization matrix row"
    assert in_matrix <= routes
    assert len({(row.method, row.path, row.via) for row in MATRIX}) == len(MATRIX)


# ------------------------------------------------------------------------------ setup


def _owner_api(app: Flask) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(app, EMAILS['owner'])}"}


def _make_job(app: Flask, kind: str, run_worker) -> str:
    """One of the owner's jobs, made through the API the way a client would."""
    setup, headers = app.test_client(), _owner_api(app)
    body = {"criteria": MULTNOMAH, "max_records": 30, "name": SECRET_NAME}
    response = setup.post("/api/batch-jobs", json=body, headers=headers)
    assert response.status_code == 201, response.json
    job_id = response.json["id"]
    if kind == DONE:
        run_worker()
        job = job_row(app, job_id)
        assert job.status == JobStatus.COMPLETED and job.success_count == 30
    elif kind == CANCELLED:
        cancel = setup.post(f"/api/batch-jobs/{job_id}/cancel", headers=headers)
        assert cancel.status_code == 202
        assert job_row(app, job_id).status == JobStatus.CANCELLED
    return job_id


def _make_search(app: Flask) -> str:
    """The owner's saved search, made through the API, with a weekly schedule."""
    body = {"name": SECRET_NAME, "criteria": MULTNOMAH, "max_records": 30}
    response = app.test_client().post("/api/searches", json=body, headers=_owner_api(app))
    assert response.status_code == 201, response.json
    with app.app_context():
        search = db.session.scalar(
            sa.select(SavedSearch).where(SavedSearch.search_id == response.json["id"])
        )
        schedules.save_schedule(db.session, search, ScheduleSpec("weekly", "UTC", at="08:00"))
    return str(response.json["id"])


def _make_list(app: Flask) -> str:
    """The owner's suppression list (not a default one)."""
    with app.app_context():
        owner = db.session.scalar(sa.select(User).where(User.email == EMAILS["owner"]))
        found = suppression.create_list(
            db.session, owner, SECRET_NAME, ["P1A2B3C"], is_default=False
        )
        return found.list_id


def _make_channel(app: Flask) -> str:
    """The owner's email alert channel."""
    with app.app_context():
        owner = db.session.scalar(sa.select(User).where(User.email == EMAILS["owner"]))
        return alerts.add_channel(
            db.session, owner, "email", "owner@example.com", ["job.failed"]
        ).channel_id


def _fingerprint(app: Flask) -> tuple[Any, ...]:
    """What a request could change: every job's state, every user's budget, role, state,
    password and token, every saved search."""
    with app.app_context():
        jobs = db.session.execute(
            sa.select(
                BatchJob.job_id,
                BatchJob.status,
                BatchJob.cancel_requested,
                BatchJob.rq_job_id,
                BatchJob.attempts,
            ).order_by(BatchJob.id)
        ).all()
        budgets = db.session.execute(
            sa.select(
                User.email,
                User.monthly_export_budget,
                User.is_admin,
                User.read_only,
                User.disabled_at,
                User.password_hash,
                User.api_token_hash,
            ).order_by(User.id)
        ).all()
        saved = db.session.execute(
            sa.select(SavedSearch.search_id, SavedSearch.name, SavedSearch.criteria).order_by(
                SavedSearch.id
            )
        ).all()
        lists = db.session.execute(
            sa.select(
                SuppressionList.list_id, SuppressionList.name, SuppressionList.is_default
            ).order_by(SuppressionList.id)
        ).all()
        plans = db.session.execute(
            sa.select(Schedule.saved_search_id, Schedule.cron).order_by(Schedule.id)
        ).all()
        sent = db.session.execute(
            sa.select(AlertChannel.channel_id, AlertChannel.target).order_by(AlertChannel.id)
        ).all()
        deliveries = db.session.scalar(sa.select(sa.func.count()).select_from(AlertDelivery))
        return (
            tuple(map(tuple, jobs)),
            tuple(map(tuple, budgets)),
            repr(saved),
            repr(lists),
            repr(plans),
            repr(sent),
            deliveries,
        )


def _signed_in_client(app: Flask, role: str, auth: str) -> tuple[FlaskClient, dict[str, str]]:
    """A client acting as `role` and the headers it sends: the Bearer token, or for a
    session its CSRF token as X-CSRFToken (the caller moves it into the form when needed)."""
    client = app.test_client()
    if auth == "bearer":
        token = "rdr_not-a-real-token" if role == "anonymous" else issue_token(app, EMAILS[role])
        return client, {"Authorization": f"Bearer {token}"}
    actions = AuthActions(client)
    if role == "anonymous":
        # Anonymous visitors have a session too, and a CSRF token from the sign-in page.
        return client, {"X-CSRFToken": csrf_token_from(client.get("/auth/login").text)}
    assert actions.login(EMAILS[role]).status_code == 302
    return client, {"X-CSRFToken": actions.csrf_token()}


# ------------------------------------------------------------------------------ cells


@pytest.mark.parametrize(("row", "role", "auth"), CELLS)
def test_authorization(app: Flask, user: User, run_worker, row: Row, role: str, auth: str):
    if role in ("other", "admin"):
        make_user(app, EMAILS[role], admin=role == "admin")
    job_id = _make_job(app, row.job, run_worker) if row.job else None
    search_id = _make_search(app) if "{search}" in row.path else None
    list_id = _make_list(app) if "{list}" in row.path else ""
    channel_id = _make_channel(app) if "{channel}" in row.path else ""
    path = row.url(job_id, user.id, search_id, list_id, channel_id)

    client, headers = _signed_in_client(app, role, auth)
    body = dict(BODIES.get(row.path, {})) if row.method in ("POST", "PUT") else {}
    if row.path == "/auth/login":
        body["password"] = PASSWORD
    kwargs: dict[str, Any] = {}
    if row.via == API:
        if row.method in ("POST", "PUT"):
            kwargs["json"] = body
    else:
        csrf = headers.pop("X-CSRFToken")
        if row.via == HTMX:
            headers.update({"HX-Request": "true", "HX-Current-URL": "http://localhost/jobs"})
            if row.method == "POST":
                headers["X-CSRFToken"] = csrf  # as base.html's hx-headers sends it
        elif row.method == "POST":
            body["csrf_token"] = csrf
        if row.method == "POST":
            kwargs["data"] = body

    before = _fingerprint(app)
    response = client.open(path, method=row.method, headers=headers, **kwargs)
    text = response.get_data(as_text=True)  # reads (and so ends) streamed answers too
    response.close()
    expect = row.expect(role)

    assert response.status_code == expect.status, text[:500]
    if expect.location is not None:
        pattern = expect.location.format(next=re.escape(path), job=re.escape(job_id or ""))
        header = "HX-Redirect" if row.via == HTMX and expect.status == 401 else "Location"
        target = urlsplit(response.headers[header])
        assert target.netloc in ("", "localhost")
        where = target.path + (f"?{unquote(target.query)}" if target.query else "")
        assert re.fullmatch(pattern, where), f"{header}: {where}"

    if row.via == API:
        csv = row.path.endswith(".csv") and expect.status == 200
        assert response.mimetype == ("text/csv" if csv else "application/json")
        if expect.status == 401:
            assert response.json == {"error": "Authentication required"}
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
        elif expect.status >= 400:
            assert response.json["error"]

    if not expect.granted:
        assert SECRET_NAME not in text
    changed = _fingerprint(app) != before
    assert changed == (expect.granted and row.writes), "side effect mismatch"


# ------------------------------------------------------------------- probing for ids


@pytest.mark.parametrize(
    "path", [row.path for row in MATRIX if row.job == DONE and row.method == "GET"]
)
def test_another_users_job_looks_like_a_missing_one(app, user, other_user, run_worker, path):
    """The 404 for someone else's job is the same answer as for an id that never existed,
    so job ids cannot be probed."""
    job_id = _make_job(app, DONE, run_worker)
    client = app.test_client()
    AuthActions(client).login(other_user.email)
    headers = {"Authorization": f"Bearer {issue_token(app, other_user.email)}"}
    answers = []
    for job in (job_id, "f" * 32):
        with client.get(path.format(done=job), headers=headers) as response:
            # A page's CSRF token is signed with the current second: the one part of two
            # identical answers that may differ.
            body = CSRF_TOKEN.sub(b"csrf-token", response.get_data())
            # A filter form shows the id typed in: the request's own, not a leak.
            body = body.replace(job.encode(), b"job-id")
            answers.append((response.status_code, body))
    theirs, missing = answers
    assert theirs[0] == 404
    assert theirs == missing
