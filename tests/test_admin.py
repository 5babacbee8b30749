"""Admin tools: queue health, stuck jobs with requeue / mark failed. Admins only."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from redis import Redis

from devstack import RedisServer
from radar_app import create_app
from radar_app.extensions import db
from radar_app.models import BatchJob, JobStatus, User, utcnow
from radar_app.security import redact_url
from tests.conftest import AuthActions, csrf_token_from
from tests.helpers import MULTNOMAH, job_row


def create(api):
    return api.post("/api/batch-jobs", json={"criteria": MULTNOMAH}).json["id"]


def strand(app, job_id, seconds_silent=600):
    """Make a job look like its worker died: PROCESSING with an old heartbeat."""
    with app.app_context():
        db.session.execute(
            sa.update(BatchJob)
            .where(BatchJob.job_id == job_id)
            .values(
                status=JobStatus.PROCESSING,
                heartbeat_at=utcnow() - timedelta(seconds=seconds_silent),
            )
        )
        db.session.commit()


def test_non_admins_get_403_and_anonymous_sign_in(client, auth, user):
    assert client.get("/admin/").status_code == 302
    auth.login()
    for path in ("/admin/", "/admin/stuck"):
        response = client.get(path)
        assert response.status_code == 403
        assert "administrators" in response.text
    token = auth.csrf_token()
    assert client.post("/admin/jobs/x/requeue", data={"csrf_token": token}).status_code == 403


def test_queue_health_matches_rq(client, app, api, admin):
    create(api)
    create(api)
    AuthActions(client).login(admin.email)
    page = client.get("/admin/")
    assert page.status_code == 200
    assert 'id="registries"' in page.text
    assert '<td class="num">2</td>' in page.text  # two queued
    assert "No worker is listening" in page.text
    assert "PENDING" in page.text


def test_stuck_job_can_be_requeued_and_completes(client, app, api, admin, run_worker):
    job_id = create(api)
    run_worker()
    assert job_row(app, job_id).status == JobStatus.COMPLETED
    job_id = create(api)
    strand(app, job_id)
    AuthActions(client).login(admin.email)
    page = client.get("/admin/stuck")
    assert job_id in page.text and "Running, but silent" in page.text
    token = csrf_token_from(page.text)
    response = client.post(
        f"/admin/jobs/{job_id}/requeue", data={"csrf_token": token}, follow_redirects=True
    )
    assert "Requeued" in response.text
    assert job_row(app, job_id).status == JobStatus.PENDING
    run_worker()
    job = job_row(app, job_id)
    assert job.status == JobStatus.COMPLETED and job.success_count == 2000


def test_stuck_job_can_be_marked_failed_then_retried(client, app, api, admin):
    job_id = create(api)
    strand(app, job_id)
    AuthActions(client).login(admin.email)
    token = csrf_token_from(client.get("/admin/stuck").text)
    response = client.post(
        f"/admin/jobs/{job_id}/fail", data={"csrf_token": token}, follow_redirects=True
    )
    assert "Marked" in response.text
    job = job_row(app, job_id)
    assert (
        job.status == JobStatus.FAILED and "Marked failed by admin@example.com" in job.error_details
    )
    assert api.post(f"/api/batch-jobs/{job_id}/retry").status_code == 202


def test_admin_forms_need_csrf(client, api, admin):
    job_id = create(api)
    AuthActions(client).login(admin.email)
    assert client.post(f"/admin/jobs/{job_id}/requeue").status_code == 400


def test_usage_shows_purchases_per_user_and_sets_budgets(client, app, api, admin, run_worker, user):
    create(api)
    run_worker()
    AuthActions(client).login(admin.email)
    page = client.get("/admin/usage")
    assert page.status_code == 200
    assert "owner@example.com" in page.text and "2,000" in page.text
    token = csrf_token_from(page.text)
    response = client.post(
        f"/admin/users/{user.id}/budget",
        data={"csrf_token": token, "budget": "5,000"},
        follow_redirects=True,
    )
    assert "5,000 records" in response.text
    with app.app_context():
        assert db.session.get(User, user.id).monthly_export_budget == 5000
    bad = client.post(
        f"/admin/users/{user.id}/budget", data={"csrf_token": token, "budget": "lots"}
    )
    assert bad.status_code == 400


@pytest.mark.parametrize(
    "budget",
    ["²", "٣", "１２", "1" * 400, "-5", "NaN", "nan", "inf", "1e5", "12.5", "5 000", "100000001",
     "1,00", "0x10", "\x00", "7\x00"],
)  # fmt: skip
def test_bad_budgets_are_a_400_with_a_field_error_and_store_nothing(
    client, app, admin, user, budget
):
    AuthActions(client).login(admin.email)
    token = csrf_token_from(client.get("/admin/usage").text)
    assert (
        client.post(
            f"/admin/users/{user.id}/budget", data={"csrf_token": token, "budget": "7"}
        ).status_code
        == 302
    )
    response = client.post(
        f"/admin/users/{user.id}/budget", data={"csrf_token": token, "budget": budget}
    )
    assert response.status_code == 400
    assert "Enter a whole number of records from 0 to 100,000,000" in response.text
    assert f'aria-describedby="budget-error-{user.id}"' in response.text
    with app.app_context():
        assert db.session.get(User, user.id).monthly_export_budget == 7


def test_budget_of_an_unknown_or_absurd_user_id_is_a_404(client, admin):
    AuthActions(client).login(admin.email)
    token = csrf_token_from(client.get("/admin/usage").text)
    for user_id in ("999999", "9" * 40):
        response = client.post(
            f"/admin/users/{user_id}/budget", data={"csrf_token": token, "budget": "5"}
        )
        assert response.status_code == 404


REDIS_PASSWORD = "s3cret-redis-pass"


@pytest.fixture
def redis_with_password() -> Iterator[str]:
    with RedisServer() as server:
        Redis.from_url(server.url).config_set("requirepass", REDIS_PASSWORD)
        yield f"redis://:{REDIS_PASSWORD}@127.0.0.1:{server.port}/0"


def test_admin_pages_never_show_the_redis_password(app_config, app, admin, redis_with_password):
    secured = create_app({**app_config, "REDIS_URL": redis_with_password})
    client = secured.test_client()
    AuthActions(client).login(admin.email)
    pages = {path: client.get(path) for path in ("/admin/", "/admin/stuck", "/admin/usage")}
    pages["/healthz"] = client.get("/healthz")
    with secured.app_context():
        db.engine.dispose()
    assert pages["/admin/"].status_code == 200  # Redis answered, with the password
    assert pages["/healthz"].status_code == 200
    assert "rq info -u redis://:***@127.0.0.1" in pages["/admin/"].text
    for path, response in pages.items():
        assert REDIS_PASSWORD not in response.text, path


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
        ("rediss://default:pw@h:6380/1", "rediss://default:***@h:6380/1"),
        ("redis://pw@h/0", "redis://***@h/0"),
        ("redis://h:6379/0?password=pw&db=2", "redis://h:6379/0?password=***&db=2"),
        ("unix:///run/redis.sock?db=0&password=pw", "unix:///run/redis.sock?db=0&password=***"),
        ("postgresql+psycopg://radar:pw@db:5432/radar", "postgresql+psycopg://radar:***@db:5432/radar"),
        ("redis://:p%40w@h/0", "redis://:***@h/0"),
        ("sqlite:////srv/radar/instance/radar.db", "sqlite:////srv/radar/instance/radar.db"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ],
)  # fmt: skip
def test_urls_are_shown_without_their_credentials(url, shown):
    assert redact_url(url) == shown
