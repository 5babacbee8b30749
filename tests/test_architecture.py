"""The house rules of docs/architecture.md hold: `lint-imports` (import-linter) checks the
contracts in pyproject.toml against the real import graph of radar_app, simulator,
devstack and bench, so `make test` (and CI) fails when a module breaks one."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def contract_ids() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return [contract["id"] for contract in config["tool"]["importlinter"]["contracts"]]


def lint_imports(*ids: str) -> subprocess.CompletedProcess[str]:
    args = [str(LINT_IMPORTS), "--no-logo", "--no-cache"]
    for contract in ids:
        args += ["--contract", contract]
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_every_contract_is_kept():
    enforced = contract_ids()
    assert "product-never-imports-tooling" in enforced
    result = lint_imports(*enforced)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(enforced)} kept, 0 broken." in result.stdout


def test_a_broken_rule_fails_the_check(tmp_path: Path):
    # The check can fail: a product module importing the simulator breaks the first rule.
    # Run on a copy, so the real tree is never touched.
    for package in ("radar_app", "simulator", "devstack", "bench"):
        subprocess.run(["cp", "-r", str(ROOT / package), str(tmp_path)], check=True)
    (tmp_path / "pyproject.toml").write_text(
        (ROOT / "pyproject.toml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    (tmp_path / "radar_app" / "leak.py").write_text("import simulator  # noqa: F401\n")
    result = subprocess.run(
        [
            str(LINT_IMPORTS),
            "--no-logo",
            "--no-cache",
            "--contract",
            "product-never-imports-tooling",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout
    assert "radar_app.leak -> simulator" in result.stdout
