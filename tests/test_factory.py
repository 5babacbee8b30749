"""The application factory and the import rules it keeps."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import radar_app
from radar_app.app import create_app

ROOT = Path(__file__).resolve().parent.parent
VIEWS = [
    "radar_app/jobs/routes.py",
    "radar_app/jobs/search.py",
    "radar_app/api/routes.py",
    "radar_app/admin/routes.py",
    "radar_app/auth/routes.py",
    "radar_app/health.py",
]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_the_package_hands_out_the_factory():
    assert radar_app.create_app is create_app


def test_the_propertyradar_client_imports_without_flask():
    code = "import sys, radar_app.propertyradar.client; print('flask' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_views_import_services_never_the_rq_entry_module():
    for view in VIEWS:
        assert "radar_app.tasks" not in imported_modules(ROOT / view), view
    for view in VIEWS[:1] + VIEWS[2:4]:  # the views that need a job or a client
        assert "radar_app.services" in imported_modules(ROOT / view), view


def test_blueprints_are_registered_once_each(app):
    assert sorted(app.blueprints) == [
        "admin",
        "api",
        "auth",
        "channels",
        "dashboard",
        "health",
        "jobs",
        "jobstatus",
        "leadbrowser",
        "lists",
        "metrics",
        "saved",
    ]
    assert "/api/openapi.json" in {rule.rule for rule in app.url_map.iter_rules()}
