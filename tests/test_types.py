"""mypy passes on the product: `python -m mypy` with the [tool.mypy] settings of
pyproject.toml (radar_app, worker.py, wsgi.py; check_untyped_defs, and complete
annotations in radar_app), so `make test` (and CI) fails on a type error."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def mypy(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_mypy_finds_no_errors():
    # The cache (.mypy_cache, git-ignored) makes later runs take about a second.
    result = mypy(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("Success: no issues found"), result.stdout


def test_a_type_error_fails_the_check(tmp_path: Path):
    # The check can fail: run on a copy with one wrong annotation, so the real tree is
    # never touched.
    shutil.copytree(ROOT / "radar_app", tmp_path / "radar_app")
    for name in ("worker.py", "wsgi.py", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "radar_app" / "typo.py").write_text('records: int = "four hundred"\n')
    result = mypy(tmp_path, "--cache-dir", str(tmp_path / "mypy-cache"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "radar_app/typo.py:1: error: Incompatible types in assignment" in result.stdout
    assert "Found 1 error in 1 file" in result.stdout
