"""`schemathesis run` against the live app: a real HTTP server on a free port, the CLI as CI
would run it, every phase (examples, coverage, fuzzing, stateful links).

Passes when schemathesis finds no 5xx and no response that breaks /api/openapi.json
(undocumented status, content type or header, or a body off its schema), and no request the
document calls valid refused (tests/schemathesis_checks.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from tests.conftest import ApiClient
from tests.helpers import OREGON

REPO = str(Path(__file__).resolve().parent.parent)
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        # tests/schemathesis_checks.py, loaded by SCHEMATHESIS_HOOKS below.
        "positive_data_accepted",
    ]
)


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    # The run creates far more jobs than the production per-minute limit allows; a one-page
    # preview snapshot keeps the many generated previews quick.
    return {
        **app_config,
        "JOB_CREATE_RATE_LIMIT": "100000 per minute",
        "PREVIEW_SNAPSHOT_LIMIT": 1000,
    }


@pytest.fixture
def live_url(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    # Non-daemon request threads, so server_close() waits for requests still in flight:
    # otherwise one can return its DB connection after the app's engine is disposed.
    server.daemon_threads = False
    thread = threading.Thread(target=server.serve_forever, name="live-app", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@pytest.fixture
def seeded_job(api: ApiClient, simulator, run_worker) -> str:
    """A COMPLETED job with leads, so the {job_id} operations answer with real data."""
    response = api.post("/api/batch-jobs", json={"criteria": OREGON, "max_records": 20})
    assert response.status_code == 201, response.json
    run_worker()
    assert api.get(f"/api/batch-jobs/{response.json['id']}").json["status"] == "COMPLETED"
    return response.json["id"]


# Every operation, 20 examples each, through a live server: minutes on a loaded machine.
@pytest.mark.timeout(600)
def test_schemathesis_cli_finds_nothing(
    live_url: str, token: str, seeded_job: str, tmp_path: Path
) -> None:
    config = tmp_path / "schemathesis.toml"
    # Generated job ids would all be 404s; most cases use the seeded job instead.
    config.write_text(f'[parameters]\n"path.job_id" = "{seeded_job}"\n')
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "run",
        f"{live_url}/api/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        CHECKS,
        "--max-examples",
        "20",
        # One worker: with several threads, hypothesis' lambda descriptions (ast.parse) hit
        # CPython 3.11's "AST constructor recursion depth mismatch" (gh-106905).
        "--workers",
        "1",
        "--seed",
        "4",
        "--generation-database",
        "none",
        "--request-timeout",
        "10",
        "--no-color",
    ]
    result = subprocess.run(
        command,
        cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.schemathesis_checks", "PYTHONPATH": REPO},
        capture_output=True,
        text=True,
        timeout=540,  # a hung run fails here, before this test's pytest-timeout
        check=False,
    )
    output = result.stdout + result.stderr
    print(output)  # shown by pytest -s, or with the failure
    assert result.returncode == 0, output
    assert "No issues found" in output or "passed" in output, output
