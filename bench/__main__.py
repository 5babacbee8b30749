"""Import-pipeline benchmark: `python -m bench [--quick] [--database-url URL] [--json PATH]`.

Runs a real import (client → simulator over HTTP on loopback → bulk upsert into the
database) in this process, without RQ, and prints one table row per scenario:
records, wall time, records/s, page requests, the API-bound lower bound
(pages × simulated latency) and the overhead ratio (wall / bound).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from radar_app import create_app
from radar_app.extensions import db
from radar_app.importer import run_import
from radar_app.models import BatchJob, User
from radar_app.propertyradar.simulator import start_in_thread
from radar_app.tasks import build_client

SCENARIOS = {
    # name: (criteria, expected records, simulated latency ms)
    "10k, no latency": ([{"name": "State", "value": ["OR"]}], 10_000, 0),
    "40k, no latency": ([{"name": "State", "value": ["CA"]}], 40_000, 0),
    "10k, 100 ms latency": ([{"name": "State", "value": ["OR"]}], 10_000, 100),
}
QUICK = ["10k, no latency"]


def run_scenario(database_url: str, api_url: str, simulator, name: str) -> dict:
    criteria, expected, latency_ms = SCENARIOS[name]
    simulator.configure(latency_ms=latency_ms)
    simulator.reset()
    app = create_app(
        {
            "SECRET_KEY": "bench",
            "SQLALCHEMY_DATABASE_URI": database_url,
            "PROPERTYRADAR_API_URL": api_url,
            "PROPERTYRADAR_API_TOKEN": "bench-token",
            "REDIS_URL": "redis://127.0.0.1:1/0",  # not used: no queue, no rate limit
        }
    )
    with app.app_context():
        db.drop_all()
        db.create_all()
        user = User(email="bench@example.com")
        user.set_password("bench-password")
        db.session.add(user)
        db.session.flush()
        job = BatchJob(job_id="b" * 32, name=name, criteria=criteria, created_by=user.id)
        db.session.add(job)
        db.session.commit()
        client = build_client(app.config)
        started = time.perf_counter()
        status = run_import(db.session, client, job.id, batch_size=400)
        wall = time.perf_counter() - started
        stored = db.session.scalar(sa.select(BatchJob.success_count).where(BatchJob.id == job.id))
        db.session.remove()  # end the read transaction, or DROP TABLE waits on it forever
        db.drop_all()
        db.engine.dispose()
    stats = simulator.stats()
    pages = stats["purchase_requests"]
    bound = (pages + stats["count_requests"]) * latency_ms / 1000
    assert status == "COMPLETED" and stored == expected, (status, stored)
    return {
        "scenario": name,
        "database": sa.engine.make_url(database_url).get_backend_name(),
        "records": stored,
        "wall_s": round(wall, 2),
        "records_per_s": round(stored / wall),
        "page_requests": pages,
        "api_bound_s": round(bound, 2),
        "overhead": round(wall / bound, 2) if bound else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Only the small scenario (CI).")
    parser.add_argument("--database-url", action="append", help="Repeatable; default SQLite.")
    parser.add_argument("--json", type=Path, help="Also write the rows as JSON here.")
    args = parser.parse_args()

    simulator, api_url, shutdown = start_in_thread(port=0)
    simulator.configure(token="bench-token")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        urls = args.database_url or [f"sqlite:///{tmp}/bench.db"]
        try:
            for url in urls:
                for name in QUICK if args.quick else SCENARIOS:
                    rows.append(run_scenario(url, api_url, simulator, name))
        finally:
            shutdown()

    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print(
        f"machine: {platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.system()}"
    )
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in columns))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
