"""Security properties (issue 4, item 8), each tried the way an attacker would.

(a) CSRF on every state-changing form, htmx call and cookie-authenticated API call;
(b) script injection through job names, criteria values, validation messages, error
    details, log lines and lead data, on every page and fragment that shows them;
(c) security headers on every kind of response, and cookie flags;
(d) passwords under a modern KDF, API tokens stored only hashed and revocable;
(e) no open redirect after sign-in;
(f) the sign-in rate limit.
Who may call what is tests/test_authz_matrix.py.
"""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape

from radar_app import alerts, create_app, suppression
from radar_app.extensions import db
from radar_app.jobstate import add_log
from radar_app.models import (
    AlertChannel,
    AlertDelivery,
    BatchJob,
    JobProperty,
    JobStatus,
    Property,
    SavedSearch,
    SuppressionList,
    User,
    utcnow,
)
from tests.conftest import PASSWORD, AuthActions, csrf_token_from, issue_token, make_user
from tests.helpers import MULTNOMAH, job_row

HX = {"HX-Request": "true"}


def _api_create(app: Flask, email: str, **body: Any) -> str:
    headers = {"Authorization": f"Bearer {issue_token(app, email)}"}
    response = app.test_client().post("/api/batch-jobs", json=body, headers=headers)
    assert response.status_code == 201, response.json
    return response.json["id"]


def _api_save(app: Flask, email: str) -> str:
    """A saved search of `email`'s, made through the API."""
    token = issue_token(app, email)
    response = app.test_client().post(
        "/api/searches",
        json={"criteria": MULTNOMAH, "name": "Saved"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201, response.json
    return str(response.json["id"])


def _set(app: Flask, job_id: str, **fields: Any) -> None:
    with app.app_context():
        db.session.execute(sa.update(BatchJob).where(BatchJob.job_id == job_id).values(**fields))
        db.session.commit()


# ============================================================================ (a) CSRF

PAGE, HTMX, API = "page", "htmx", "api"


class CsrfCase(NamedTuple):
    path: str  # {pending} / {cancelled}: a job of the owner's in that state; {user}: the owner
    via: str
    role: str  # who sends it
    body: dict[str, Any]
    granted: int  # the status once the token is right


SEARCH = {"state": "OR", "background": "y"}
API_SEARCH = {"criteria": MULTNOMAH}
SAVE = {**SEARCH, "name": "Forged?"}
API_SAVE = {**API_SEARCH, "name": "Forged?"}
LIST = {"name": "Forged?", "values": "P1A2B3C"}
PLAN = {"cadence": "daily", "at": "09:00", "timezone": "UTC"}
CHANNEL = {"kind": "email", "target": "forged@example.com", "events": "job.failed"}
NEW_USER = {"email": "forged@example.com", "role": "admin"}
# Cancels every matching job: the owner's pending one ("?from={pending}" makes it).
BULK = {"action": "cancel", "scope": "matching"}
API_BULK = {"action": "cancel", "filter": {}}

# Every POST route; the htmx ones also as the plain form they fall back to.
# fmt: off
CSRF_CASES = [CsrfCase(*case) for case in [
    # path                                  via   role         body                    granted
    ("/search",                             PAGE, "owner",     SEARCH,                 200),
    ("/search/preview",                     HTMX, "owner",     {"state": "OR"},        200),
    ("/jobs/{pending}/cancel",              HTMX, "owner",     {},                     200),
    ("/jobs/{pending}/cancel",              PAGE, "owner",     {},                     302),
    ("/jobs/{cancelled}/retry",             HTMX, "owner",     {},                     200),
    ("/jobs/{cancelled}/retry",             PAGE, "owner",     {},                     302),
    ("/jobs/bulk?from={pending}",           HTMX, "owner",     BULK,                   200),
    ("/jobs/bulk?from={pending}",           PAGE, "owner",     BULK,                   200),
    ("/auth/login",                         PAGE, "anonymous", {"password": PASSWORD}, 302),
    ("/auth/logout",                        PAGE, "owner",     {},                     302),
    ("/admin/jobs/{pending}/requeue",       PAGE, "admin",     {},                     302),
    ("/admin/jobs/{pending}/fail",          PAGE, "admin",     {},                     302),
    ("/admin/users/{user}/budget",          PAGE, "admin",     {"budget": "9"},        302),
    ("/admin/users",                        PAGE, "admin",     NEW_USER,               201),
    ("/admin/users/{user}/disable",         PAGE, "admin",     {},                     302),
    ("/admin/users/{user}/enable",          PAGE, "admin",     {},                     302),
    ("/admin/users/{user}/password",        PAGE, "admin",     {},                     200),
    ("/admin/users/{user}/token",           PAGE, "admin",     {},                     200),
    ("/admin/users/{user}/token/revoke",    PAGE, "admin",     {},                     302),
    ("/admin/users/{user}/role",            PAGE, "admin",     {"role": "admin"},      302),
    ("/api/batch-jobs",                     API,  "owner",     API_SEARCH,             201),
    ("/api/batch-jobs/preview",             API,  "owner",     API_SEARCH,             200),
    ("/api/batch-jobs/{pending}/cancel",    API,  "owner",     {},                     202),
    ("/api/batch-jobs/{cancelled}/retry",   API,  "owner",     {},                     202),
    ("/api/batch-jobs/bulk?from={pending}", API,  "owner",     API_BULK,               200),
    ("/searches",                           PAGE, "owner",     SAVE,                   302),
    ("/searches/{search}",                  PAGE, "owner",     SAVE,                   302),
    ("/searches/{search}/delete",           PAGE, "owner",     {},                     302),
    ("/searches/from-job/{pending}",        PAGE, "owner",     {},                     302),
    ("/searches/{search}/schedule",         PAGE, "owner",     PLAN,                   302),
    ("/searches/{search}/schedule/delete",  PAGE, "owner",     {},                     302),
    ("/api/searches",                       API,  "owner",     API_SAVE,               201),
    ("/api/searches/{search}/jobs",         API,  "owner",     {},                     201),
    ("/suppression-lists",                  PAGE, "owner",     LIST,                   302),
    ("/alerts",                             PAGE, "owner",     CHANNEL,                201),
    ("/alerts/{channel}/test",              PAGE, "owner",     {},                     302),
    ("/alerts/{channel}/delete",            PAGE, "owner",     {},                     302),
    ("/suppression-lists/{list}/default",   PAGE, "owner",     {"is_default": "y"},    302),
    ("/suppression-lists/{list}/delete",    PAGE, "owner",     {},                     302),
]]
# fmt: on


def _url(
    case: CsrfCase,
    job_id: str | None,
    user_id: int,
    search_id: str = "",
    list_id: str = "",
    channel_id: str = "",
) -> str:
    return case.path.format(
        pending=job_id,
        cancelled=job_id,
        user=user_id,
        search=search_id,
        list=list_id,
        channel=channel_id,
    )


def test_csrf_cases_cover_every_post_route(app: Flask) -> None:
    posts = {
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if "POST" in rule.methods and rule.endpoint != "static"
    }
    adapter = app.url_map.bind("localhost")
    covered = {
        adapter.match(
            _url(case, "0" * 32, 1, "0" * 32, "0" * 32, "0" * 32).split("?")[0], method="POST"
        )[0]
        for case in CSRF_CASES
    }
    assert posts == covered


def _state(app: Flask) -> tuple[Any, ...]:
    """Everything a forged request could change (sessions are checked separately)."""
    with app.app_context():
        jobs = db.session.execute(
            sa.select(BatchJob.job_id, BatchJob.status, BatchJob.rq_job_id, BatchJob.attempts)
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
            )
        ).all()
        saved = db.session.execute(sa.select(SavedSearch.search_id, SavedSearch.name)).all()
        lists = db.session.execute(
            sa.select(SuppressionList.list_id, SuppressionList.is_default)
        ).all()
        channels = db.session.execute(sa.select(AlertChannel.channel_id)).all()
        sent = db.session.execute(sa.select(AlertDelivery.id)).all()
        return tuple(
            tuple(sorted(map(tuple, rows)))
            for rows in (jobs, budgets, saved, lists, channels, sent)
        )


def _sign_in_as(client: FlaskClient, role: str) -> None:
    if role != "anonymous":
        assert AuthActions(client).login(f"{role}@example.com").status_code == 302


@pytest.mark.parametrize("token", ["missing", "foreign", "valid"])
@pytest.mark.parametrize("case", CSRF_CASES, ids=[f"{c.path}-{c.via}" for c in CSRF_CASES])
def test_csrf_is_enforced(app, client, user, admin, case: CsrfCase, token: str) -> None:
    """Without a token, or with another session's, a state-changing request is a 400 and
    changes nothing; with its own session's token it goes through."""
    job_id = None
    if "{pending}" in case.path or "{cancelled}" in case.path:
        job_id = _api_create(app, user.email, criteria=MULTNOMAH)
        if "{cancelled}" in case.path:
            _set(app, job_id, status=JobStatus.CANCELLED, completed_at=utcnow())
    search_id = list_id = ""
    if "{search}" in case.path:
        search_id = _api_save(app, user.email)
    if "{list}" in case.path:
        with app.app_context():
            owner = db.session.get(User, user.id)
            list_id = suppression.create_list(
                db.session, owner, "Mine", ["P1A2B3C"], is_default=False
            ).list_id
    channel_id = ""
    if "{channel}" in case.path:
        with app.app_context():
            owner = db.session.get(User, user.id)
            channel_id = alerts.add_channel(
                db.session, owner, "email", "me@example.com", ["job.failed"]
            ).channel_id
    path = _url(case, job_id, user.id, search_id, list_id, channel_id)
    _sign_in_as(client, case.role)
    own = csrf_token_from(client.get("/auth/login", follow_redirects=True).text)
    foreign = csrf_token_from(app.test_client().get("/auth/login").text)
    value = {"missing": None, "foreign": foreign, "valid": own}[token]

    body = dict(case.body)
    if case.path == "/auth/login":
        body["email"] = user.email
    headers = dict(HX) if case.via == HTMX else {}
    kwargs: dict[str, Any] = {}
    if case.via == API:
        kwargs["json"] = body
        if value:
            headers["X-CSRFToken"] = value
    else:
        if value and case.via == HTMX:
            headers["X-CSRFToken"] = value  # what base.html's hx-headers sends
        elif value:
            body["csrf_token"] = value
        kwargs["data"] = body

    before = _state(app)
    response = client.post(path, headers=headers, **kwargs)
    signed_in = client.get("/jobs").status_code == 200

    if token == "valid":
        assert response.status_code == case.granted != 400
        return
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert "CSRF" in response.get_data(as_text=True)
    if case.via == API:
        assert response.json["error"].startswith("CSRF check failed")
    assert _state(app) == before
    # A forged sign-out leaves the user signed in; a forged sign-in signs no one in.
    assert signed_in == (case.role != "anonymous")


def test_a_bearer_header_does_not_exempt_a_cookie_session_from_csrf(app, client, user, token):
    AuthActions(client).login()
    for bearer in ("rdr_bogus", token + "x"):
        response = client.post(
            "/api/batch-jobs",
            json={"criteria": MULTNOMAH},
            headers={"Authorization": f"Bearer {bearer}"},
        )
        # Either the bogus token is refused (401) or the cookie call needs CSRF (400).
        assert response.status_code in (400, 401), response.status_code
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(BatchJob)) == 0


# ================================================================ (b) script injection

NAME = '"><script>alert(101)</script>'
CITY = "<script>alert(102)</script>"
ERROR = "PropertyRadar said: <img src=x onerror=alert(103)>"
LOGGED = "Request failed: <img src=x onerror=alert(104)>"
ZIP = "<script>alert(105)</script>"
EMAIL = '"><script>alert(106)</script>@example.com'
LEAD = "<img src=x onerror=alert(107)>"
# The live parts: none of these may reach an HTML response as markup.
MARKUP = ["<script>alert(", "<img src=x"]


def _assert_inert(response, *shown: str) -> None:
    """No payload is markup; each of `shown` is there, HTML-escaped."""
    assert response.status_code < 500
    assert response.mimetype == "text/html"
    text = response.get_data(as_text=True)
    for live in MARKUP:
        assert live not in text, f"unescaped {live!r} in {response.request.path}"
    for payload in shown:
        assert str(escape(payload)) in text, f"{payload!r} not shown in {response.request.path}"


@pytest.fixture
def poisoned(app, user, admin, run_worker) -> dict[str, str]:
    """Jobs whose every user-supplied or outside text is a script injection attempt."""
    # A real run, then a lead whose outside data is hostile.
    leads_job = _api_create(app, user.email, criteria=MULTNOMAH, max_records=5, name="Leads")
    run_worker()
    with app.app_context():
        prop = db.session.scalar(
            sa.select(Property)
            .join(JobProperty, JobProperty.property_id == Property.id)
            .join(BatchJob, BatchJob.id == JobProperty.batch_job_id)
            .where(BatchJob.job_id == leads_job)
            .order_by(JobProperty.position)
            .limit(1)
        )
        prop.owner_name = prop.address = prop.city = LEAD
        db.session.commit()
    # Name and criteria through the API, as a client would send them.
    criteria = [{"name": "State", "value": ["OR"]}, {"name": "City", "value": [CITY]}]
    failed = _api_create(app, user.email, criteria=criteria, name=NAME)
    stuck = _api_create(app, user.email, criteria=criteria, name=NAME)
    _set(
        app,
        stuck,
        status=JobStatus.PROCESSING,
        heartbeat_at=utcnow() - timedelta(hours=1),
        started_at=utcnow() - timedelta(hours=1),
    )
    make_user(app, EMAIL)
    return {"leads": leads_job, "failed": failed, "stuck": stuck}


def _fail(app: Flask, job_id: str) -> None:
    """The job fails the way the importer records it: error details and a log line."""
    _set(app, job_id, status=JobStatus.FAILED, error_details=ERROR, completed_at=utcnow())
    with app.app_context():
        job = db.session.scalar(sa.select(BatchJob).where(BatchJob.job_id == job_id))
        add_log(db.session, job.id, "ERROR", LOGGED)
        db.session.commit()


def test_injected_text_is_escaped_on_every_page_and_fragment(app, client, poisoned):
    failed, leads = poisoned["failed"], poisoned["leads"]
    AuthActions(client).login()
    # The first notification poll only starts the clock; the failure comes after it.
    assert client.get("/notifications", headers=HX).get_data() == b""
    _fail(app, failed)
    assert job_row(app, failed).error_details == ERROR

    pages = {
        "/jobs": [NAME, CITY],
        "/jobs?status=FAILED": [NAME, CITY],
        f"/jobs/{failed}": [NAME, CITY, ERROR, LOGGED],
        f"/jobs/{failed}/row": [NAME, CITY],
        f"/jobs/{failed}/progress": [ERROR],
        f"/jobs/{failed}/log": [LOGGED],
        f"/jobs/{leads}": [LEAD],
        f"/jobs/{leads}/leads": [LEAD],
        "/notifications": [NAME],
    }
    for path, shown in pages.items():
        _assert_inert(client.get(path, headers=HX if path == "/notifications" else {}), *shown)


def test_injected_text_is_escaped_on_admin_pages(app, client, poisoned, admin):
    _fail(app, poisoned["failed"])
    AuthActions(client).login(admin.email)
    _assert_inert(client.get("/admin/stuck"), NAME)
    _assert_inert(client.get("/admin/usage"), EMAIL)
    _assert_inert(client.get("/admin/"))
    # An admin looks at the owner's failed job.
    _assert_inert(client.get(f"/jobs/{poisoned['failed']}"), NAME, CITY, ERROR, LOGGED)
    _assert_inert(client.get("/jobs"), NAME, CITY)


def test_values_echoed_by_validation_are_escaped(app, client, user):
    AuthActions(client).login()
    form = {"city": CITY, "zips": ZIP, "name": NAME, "background": "y"}
    token = csrf_token_from(client.get("/search").text)
    page = client.post("/search", data={**form, "csrf_token": token})
    assert page.status_code == 400
    # The bad ZIP is quoted back in its error; the other inputs are kept in the form.
    _assert_inert(page, ZIP, CITY, NAME)
    preview = client.post("/search/preview", data=form, headers={**HX, "X-CSRFToken": token})
    assert preview.status_code == 422
    _assert_inert(preview, ZIP)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(BatchJob)) == 0


def test_the_api_returns_injected_text_as_json_data(app, client, poisoned, token):
    _fail(app, poisoned["failed"])
    api = {"Authorization": f"Bearer {token}"}

    def get(path: str):
        response = client.get(path, headers=api)
        assert response.status_code == 200
        assert response.mimetype == "application/json"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        return response.json

    job = get(f"/api/batch-jobs/{poisoned['failed']}")
    # Stored and returned exactly, as data: neither lost nor mangled into HTML entities.
    assert job["name"] == NAME and job["error_details"] == ERROR
    assert {"name": "City", "value": [CITY]} in job["criteria"]
    assert LOGGED in [
        e["message"] for e in get(f"/api/batch-jobs/{poisoned['failed']}/logs")["items"]
    ]
    assert LEAD in [
        lead["owner_name"] for lead in get(f"/api/batch-jobs/{poisoned['leads']}/leads")["items"]
    ]

    echoed = client.post(
        "/api/batch-jobs",
        json={"criteria": [{"name": "ZipFive", "value": [ZIP]}]},
        headers=api,
    )
    assert echoed.status_code == 400 and echoed.mimetype == "application/json"
    assert ZIP in echoed.json["fields"]["criteria[0].value"]


# ====================================================================== (c) headers


def _static(client: FlaskClient, path: str):
    response = client.get(path)
    response.close()
    return response


def _server_error(app: Flask, client: FlaskClient):
    def boom():
        raise RuntimeError("boom")

    app.view_functions["health.healthz"] = boom
    return client.get("/healthz")


# kind of response: (expected status, how to get it)
RESPONSES = {
    "html page": (200, lambda app, c, api: c.get("/auth/login")),
    "redirect": (302, lambda app, c, api: c.get("/jobs")),
    "json api": (200, lambda app, c, api: c.get("/api/batch-jobs", headers=api)),
    "json health": (200, lambda app, c, api: c.get("/healthz")),
    "openapi": (200, lambda app, c, api: c.get("/api/openapi.json")),
    "html 404": (404, lambda app, c, api: c.get("/no-such-page")),
    "json 404": (404, lambda app, c, api: c.get("/api/no-such-thing", headers=api)),
    "html 403": (403, lambda app, c, api: c.get("/admin/", headers=api)),
    "json 401": (401, lambda app, c, api: c.get("/api/batch-jobs")),
    "csrf 400": (400, lambda app, c, api: c.post("/auth/login", data={})),
    "html 500": (500, lambda app, c, api: _server_error(app, c)),
    "static js": (200, lambda app, c, api: _static(c, "/static/js/htmx-2.0.11.min.js")),
    "static css": (200, lambda app, c, api: _static(c, "/static/css/app.css")),
}


@pytest.mark.parametrize("kind", list(RESPONSES))
def test_security_headers_on_every_kind_of_response(app, client, token, kind):
    status, fetch = RESPONSES[kind]
    response = fetch(app, client, {"Authorization": f"Bearer {token}"})
    assert response.status_code == status

    csp = response.headers["Content-Security-Policy"]
    policy = {name: values for name, *values in (d.split() for d in csp.split(";"))}
    # Only our own files may run; nothing inline, nothing evaluated, no framing.
    assert policy["script-src"] == ["'self'"]
    assert policy["default-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert all("*" not in value for values in policy.values() for value in values)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"


def _cookies(response) -> dict[str, str]:
    return {c.split("=", 1)[0]: c for c in response.headers.getlist("Set-Cookie")}


def _sign_in(client: FlaskClient, **extra: str):
    token = csrf_token_from(client.get("/auth/login").text)
    data = {"email": "owner@example.com", "password": PASSWORD, "csrf_token": token, **extra}
    response = client.post("/auth/login", data=data)
    assert response.status_code == 302
    return response


def test_cookies_are_httponly_and_samesite_lax(client, user):
    anonymous = _cookies(client.get("/auth/login"))["session"]
    cookies = _cookies(_sign_in(client, remember="y"))
    for cookie in (anonymous, cookies["session"], cookies["remember_token"]):
        assert "; HttpOnly" in cookie and "; SameSite=Lax" in cookie
        assert "; Secure" not in cookie  # plain-HTTP development default


@pytest.fixture
def https_app(app_config, user):
    secure = create_app({**app_config, "SESSION_COOKIE_SECURE": True})
    yield secure
    with secure.app_context():
        db.engine.dispose()


def test_session_cookie_is_secure_when_configured_for_https(https_app):
    assert "; Secure" in _cookies(_sign_in(https_app.test_client()))["session"]


def test_remember_cookie_is_secure_when_configured_for_https(https_app):
    cookies = _cookies(_sign_in(https_app.test_client(), remember="y"))
    assert "; Secure" in cookies["remember_token"]


# ========================================================= (d) passwords and tokens


@pytest.mark.real_password_hash
def test_passwords_are_stored_with_a_modern_salted_kdf(app):
    runner = app.test_cli_runner()
    for email in ("a@example.com", "b@example.com"):
        result = runner.invoke(args=["users", "create", email, "--password", PASSWORD])
        assert result.exit_code == 0, result.output
    with app.app_context():
        hashes = db.session.scalars(sa.select(User.password_hash).order_by(User.id)).all()
        users = db.session.scalars(sa.select(User)).all()
        assert all(u.check_password(PASSWORD) and not u.check_password("wrong") for u in users)
    assert len(hashes) == 2
    for stored in hashes:
        assert stored.startswith("scrypt:"), stored  # Werkzeug's default, memory-hard
        assert PASSWORD not in stored
    assert hashes[0] != hashes[1]  # salted: the same password hashes differently


def _database_text(app: Flask) -> str:
    """Every value in every table, as text."""
    with app.app_context():
        return "\n".join(
            repr(row)
            for table in db.metadata.sorted_tables
            for row in db.session.execute(sa.select(table)).all()
        )


def test_api_tokens_are_stored_hashed_and_can_be_revoked(app, client, user):
    runner = app.test_cli_runner()
    issued = runner.invoke(args=["users", "token", user.email])
    assert issued.exit_code == 0, issued.output
    token = issued.output.strip().splitlines()[-1]
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/batch-jobs", headers=bearer).status_code == 200

    stored = _database_text(app)
    assert token not in stored and token.removeprefix("rdr_") not in stored
    with app.app_context():
        digest = db.session.scalar(sa.select(User.api_token_hash).where(User.id == user.id))
    assert digest == hashlib.sha256(token.encode()).hexdigest()

    revoked = runner.invoke(args=["users", "revoke-token", user.email])
    assert revoked.exit_code == 0, revoked.output
    response = client.get("/api/batch-jobs", headers=bearer)
    assert response.status_code == 401 and response.json == {"error": "Authentication required"}

    # A new token works; issuing it again revokes that one.
    first = runner.invoke(args=["users", "token", user.email]).output.strip().splitlines()[-1]
    second = runner.invoke(args=["users", "token", user.email]).output.strip().splitlines()[-1]
    auth = {"Authorization": f"Bearer {first}"}
    assert client.get("/api/batch-jobs", headers=auth).status_code == 401
    auth = {"Authorization": f"Bearer {second}"}
    assert client.get("/api/batch-jobs", headers=auth).status_code == 200


# ===================================================================== (e) redirects

OFFSITE = [
    "https://evil.example/",
    "//evil.example",
    "///evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "/\t/evil.example",
    "https:evil.example",
    "javascript:alert(1)",
]


def _as_a_browser_reads_it(location: str) -> tuple[str, str]:
    """(scheme, host) a browser would go to: it drops tabs and newlines and reads a
    backslash as a slash in http(s) URLs."""
    cleaned = location.replace("\t", "").replace("\n", "").replace("\r", "").replace("\\", "/")
    parts = urlsplit(cleaned)
    return parts.scheme, parts.netloc


@pytest.mark.parametrize("target", OFFSITE)
def test_sign_in_never_redirects_off_site(client, user, target):
    token = csrf_token_from(client.get("/auth/login").text)
    response = client.post(
        "/auth/login",
        query_string={"next": target},
        data={"email": user.email, "password": PASSWORD, "csrf_token": token},
    )
    assert response.status_code == 302
    assert _as_a_browser_reads_it(response.headers["Location"]) == ("", "")
    assert "evil.example" not in urlsplit(response.headers["Location"]).netloc


def test_sign_in_follows_a_same_site_next(client, user):
    token = csrf_token_from(client.get("/auth/login").text)
    response = client.post(
        "/auth/login?next=/jobs%3Fstatus%3DFAILED",
        data={"email": user.email, "password": PASSWORD, "csrf_token": token},
    )
    assert response.headers["Location"] == "/jobs?status=FAILED"


# ===================================================================== (f) rate limit


def test_sign_in_is_rate_limited_after_failed_attempts(app, client, user):
    app.config["LOGIN_RATE_LIMIT"] = "3 per minute"
    token = csrf_token_from(client.get("/auth/login").text)
    wrong = {"email": user.email, "password": "wrong password", "csrf_token": token}
    assert [client.post("/auth/login", data=wrong).status_code for _ in range(3)] == [401] * 3

    limited = client.post("/auth/login", data={**wrong, "password": PASSWORD})
    assert limited.status_code == 429  # even the right password waits
    assert int(limited.headers["Retry-After"]) > 0
    assert limited.headers["X-Frame-Options"] == "DENY"
    assert client.get("/jobs").status_code == 302  # not signed in
    assert client.get("/auth/login").status_code == 200  # the form itself is not limited


def _failed_sign_in(client: FlaskClient, email: str, address: str, password: str = "wrong"):
    environ = {"REMOTE_ADDR": address}
    token = csrf_token_from(client.get("/auth/login", environ_base=environ).text)
    return client.post(
        "/auth/login",
        data={"email": email, "password": password, "csrf_token": token},
        environ_base=environ,
    )


def _without_csrf(html: str) -> str:
    return re.sub(r'"X-CSRFToken": "[^"]+"', "", html)


def test_failed_sign_ins_per_account_are_limited_across_addresses(app, client, user, other_user):
    app.config["LOGIN_RATE_LIMIT"] = "100 per minute"  # the per-address limit stays out of it
    app.config["LOGIN_ACCOUNT_RATE_LIMIT"] = "5 per 15 minutes"
    addresses = [f"203.0.113.{n}" for n in range(1, 7)]  # one guess from each of 6 addresses
    codes = [_failed_sign_in(client, user.email, address).status_code for address in addresses]
    assert codes == [401] * 5 + [429]

    limited = _failed_sign_in(client, user.email.upper(), "198.51.100.7", password=PASSWORD)
    assert limited.status_code == 429  # the right password, from a new address, waits too
    assert "Too many failed sign-ins for this email address" in limited.text
    assert "15 minutes" in limited.text
    assert int(limited.headers["Retry-After"]) > 0
    assert client.get("/jobs").status_code == 302

    # An address without an account is limited alike, with the same words: the 429 does
    # not tell which addresses have accounts.
    unknown = [_failed_sign_in(client, "nobody@example.com", a).status_code for a in addresses]
    assert unknown == codes
    nobody = _failed_sign_in(client, "nobody@example.com", "198.51.100.7")
    assert (nobody.status_code, _without_csrf(nobody.text)) == (429, _without_csrf(limited.text))

    # Other accounts sign in as usual, from the same addresses.
    ok = _failed_sign_in(client, other_user.email, addresses[0], password=PASSWORD)
    assert ok.status_code == 302


def test_successful_sign_ins_do_not_count_against_the_account(app, client, user):
    app.config["LOGIN_RATE_LIMIT"] = "100 per minute"
    app.config["LOGIN_ACCOUNT_RATE_LIMIT"] = "2 per 15 minutes"
    for _ in range(4):
        assert _failed_sign_in(client, user.email, "203.0.113.1", PASSWORD).status_code == 302
        client.post("/auth/logout", data={"csrf_token": AuthActions(client).csrf_token()})


@pytest.mark.real_password_hash  # the costs compared are the real KDF's
def test_unknown_and_known_emails_take_as_long_to_refuse(app, client, user):
    """Timing must not tell which emails have an account (it was 8 ms against 153 ms)."""
    import time

    app.config["LOGIN_RATE_LIMIT"] = "1000 per minute"
    app.config["LOGIN_ACCOUNT_RATE_LIMIT"] = "1000 per minute"
    _failed_sign_in(client, "warm-up@example.com", "203.0.113.9")  # first hash of a process
    durations: dict[str, list[float]] = {"known": [], "unknown": []}
    for n in range(6):
        for kind, email in (("known", user.email), ("unknown", f"nobody{n}@example.com")):
            started = time.perf_counter()
            assert _failed_sign_in(client, email, "203.0.113.9").status_code == 401
            durations[kind].append(time.perf_counter() - started)
    known, unknown = (sorted(durations[k])[len(durations[k]) // 2] for k in ("known", "unknown"))
    assert 0.5 < unknown / known < 2.0, (
        f"known {known * 1000:.0f} ms, unknown {unknown * 1000:.0f} ms"
    )


@pytest.mark.parametrize("email", ["a\x00b@example.com", "owner@example.com\x00", "\x00"])
def test_a_nul_in_the_sign_in_email_is_a_400_with_a_field_error(client, user, email):
    token = csrf_token_from(client.get("/auth/login").text)
    response = client.post(
        "/auth/login", data={"email": email, "password": PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 400
    assert "Enter an email address like name@example.com" in response.text
    assert client.get("/jobs").status_code == 302


def test_a_nul_in_the_password_is_a_plain_failed_sign_in(client, user):
    token = csrf_token_from(client.get("/auth/login").text)
    response = client.post(
        "/auth/login",
        data={"email": user.email, "password": "correct\x00horse", "csrf_token": token},
    )
    assert response.status_code == 401
