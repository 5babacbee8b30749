"""/healthz, security headers, cookie flags and rate limits."""

from __future__ import annotations

from devstack import free_port
from radar_app import create_app
from radar_app.extensions import db
from tests.conftest import ApiClient
from tests.helpers import MULTNOMAH


def test_healthz_reports_database_and_redis(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json["status"] == "ok"
    assert response.json["checks"]["database"]["ok"] is True
    assert response.json["checks"]["redis"]["ok"] is True


def test_healthz_is_503_when_redis_is_down(app, app_config):
    broken = create_app({**app_config, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    response = broken.test_client().get("/healthz")
    with broken.app_context():
        db.engine.dispose()
    assert response.status_code == 503
    assert response.json["checks"]["redis"] == {"ok": False, "error": "ConnectionError"}
    assert response.json["checks"]["database"]["ok"] is True


def test_security_headers_on_pages_and_api(client, api):
    for response in (client.get("/auth/login"), api.get("/api/batch-jobs")):
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"


def test_session_cookie_is_httponly_and_samesite(client, auth, user):
    response = auth.login()
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie


def test_session_cookie_is_secure_when_configured(app_config, user):
    secure = create_app({**app_config, "SESSION_COOKIE_SECURE": True})
    client = secure.test_client()
    from tests.conftest import AuthActions

    cookie = AuthActions(client).login().headers["Set-Cookie"]
    with secure.app_context():
        db.engine.dispose()
    assert "Secure" in cookie


def test_job_creation_is_rate_limited_per_user(app, client, api, token):
    app.config["JOB_CREATE_RATE_LIMIT"] = "3 per minute"
    codes = [
        api.post("/api/batch-jobs", json={"criteria": MULTNOMAH}).status_code for _ in range(4)
    ]
    assert codes == [201, 201, 201, 429]
    limited = api.post("/api/batch-jobs", json={"criteria": MULTNOMAH})
    assert limited.json["error"]
    assert "Retry-After" in limited.headers
    assert ApiClient(client, token).get("/api/batch-jobs").status_code == 200
