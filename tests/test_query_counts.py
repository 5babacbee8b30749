"""No N+1: the list pages and fragments issue a fixed number of queries, whatever the size."""

from __future__ import annotations

import contextlib

import sqlalchemy as sa

from radar_app.extensions import db
from tests.helpers import MULTNOMAH


@contextlib.contextmanager
def counting(app):
    statements: list[str] = []

    def record(conn, cursor, statement, *args):  # noqa: ANN001 - SQLAlchemy event signature
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def make_jobs(api, n):
    return [api.post("/api/batch-jobs", json={"criteria": MULTNOMAH}).json["id"] for _ in range(n)]


def queries(app, client, path):
    with counting(app) as statements:
        response = client.get(path)
    assert response.status_code == 200, path
    return len(statements)


def test_jobs_page_and_api_list_do_not_grow_with_the_number_of_jobs(app, client, auth, api):
    app.config["JOB_CREATE_RATE_LIMIT"] = "1000 per minute"
    auth.login()
    make_jobs(api, 2)
    few = {p: queries(app, client, p) for p in ("/jobs", "/api/batch-jobs?per_page=50")}
    make_jobs(api, 20)
    many = {p: queries(app, client, p) for p in ("/jobs", "/api/batch-jobs?per_page=50")}
    assert many == few, (few, many)


def test_progress_fragment_and_job_page_are_a_few_fixed_queries(app, client, auth, api, run_worker):
    auth.login()
    job_id = make_jobs(api, 1)[0]
    run_worker()
    fragment = queries(app, client, f"/jobs/{job_id}/progress")
    # The signed-in user and the job (owner joined in): nothing per lead or per log line.
    assert fragment == 2, fragment
    page = queries(app, client, f"/jobs/{job_id}")
    # The user, the job, a page each of its log, leads and ledger (with their counts),
    # whether to poll for toasts, the charts' ledger rows, and a page of its state history
    # with its count: a fixed number whatever the job's size.
    assert page <= 11, page
