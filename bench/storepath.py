"""The store path against the database's own speed (issue 11, item 3).

`measure(database_url)` generates realistic leads with the simulator's dataset (no HTTP),
then stores the same rows twice, each time into a fresh schema:

  a. radar_app's store path as the importer uses it: 400-record chunks, store_page
     (coercion, upsert into properties, links into job_properties) and one commit per
     chunk;
  b. a hand-written raw DB-API upsert of the same records: one executemany per chunk of
     a tuple per record (each lead column read from the record as sent, the raw record
     as JSON) and one commit per chunk, no coercion and no links.

(b) is the floor a script could reach; the acceptance line is a/b ≥ 0.7.

The schema is scratch: a new SQLite file beside the given one, or a new PostgreSQL
schema in the given database, dropped afterwards. The given database is not touched.

    python -m bench.storepath [DATABASE_URL ...] [--records N]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
import sqlalchemy.orm as so
from sqlalchemy import event

from radar_app import jsoncodec
from radar_app.config import Config
from radar_app.extensions import db, sqlite_pragmas
from radar_app.leads import STORED_FIELDS, lead_columns
from radar_app.models import BatchJob, Property, User, utcnow
from radar_app.propertyradar.client import Page
from radar_app.store import store_page
from simulator.dataset import get_dataset

CHUNK = 400  # records per Purchase=1 request, as the importer buys them


def leads(records: int) -> list[dict[str, Any]]:
    """`records` leads as PropertyRadar sends them, from the simulator's dataset."""
    dataset = get_dataset(max(1.0, records / 100_000))
    step = max(1, len(dataset) // records)
    return [dataset.record(i * step) for i in range(records)]


def _pages(rows: list[dict[str, Any]]) -> list[Page]:
    return [
        Page(
            results=rows[start : start + CHUNK],
            result_count=len(rows[start : start + CHUNK]),
            total_result_count=len(rows),
            total_cost=None,
            request_id=None,
            start=start,
            limit=CHUNK,
        )
        for start in range(0, len(rows), CHUNK)
    ]


@contextmanager
def scratch_database(database_url: str) -> Iterator[sa.URL | str]:
    """A fresh, empty place for the tables: yields an engine URL whose tables live in a
    new SQLite file beside the given one, or a new schema of the given PostgreSQL
    database (through search_path); removed on exit."""
    url = sa.engine.make_url(database_url)
    tag = f"storepath_{uuid.uuid4().hex[:10]}"
    if url.get_backend_name() == "sqlite":
        base = Path(url.database or "") if url.database not in (None, "", ":memory:") else None
        folder = base.parent if base is not None else Path(os.environ.get("TMPDIR", "/tmp"))
        path = folder / f"{tag}.db"
        try:
            yield url.set(database=str(path))
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{tag}"'))
    try:
        query = dict(url.query)
        query["options"] = f"-csearch_path={tag}"
        yield url.set(query=query)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{tag}" CASCADE'))
        admin.dispose()


def _engine(url: sa.URL | str) -> sa.Engine:
    """An engine configured as the app's: its engine options (pool_pre_ping, the JSON
    encoder of its JSON columns) and SQLite's WAL, busy timeout and FKs."""
    engine = sa.create_engine(url, **Config.SQLALCHEMY_ENGINE_OPTIONS)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", sqlite_pragmas)
    return engine


def _fresh_schema(engine: sa.Engine) -> int:
    """Create the tables and the job to link to; returns the job's id."""
    db.metadata.drop_all(engine)
    db.metadata.create_all(engine)
    with so.Session(engine) as session:
        user = User(email="storepath@example.com", password_hash="-")
        session.add(user)
        session.flush()
        job = BatchJob(job_id=uuid.uuid4().hex, name="storepath", criteria=[], created_by=user.id)
        session.add(job)
        session.commit()
        return job.id


class _Clock:
    """Wall seconds, and CPU seconds of this process plus, on a local PostgreSQL, of the
    server backend serving `driver`: the CPU figure barely moves with the machine's load."""

    def __init__(self, driver: Any) -> None:
        pid = driver.info.backend_pid if isinstance(driver, psycopg.Connection) else None
        self.server_stat = Path(f"/proc/{pid}/stat") if pid else None
        self.wall, self.cpu = time.perf_counter(), self._cpu()

    def _cpu(self) -> float:
        seconds = time.process_time()
        if self.server_stat is not None and self.server_stat.exists():
            fields = self.server_stat.read_text().rsplit(")", 1)[1].split()
            seconds += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return seconds

    def stop(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, self._cpu() - self.cpu


def time_store_path(engine: sa.Engine, pages: list[Page]) -> tuple[float, float]:
    """(a): (wall, CPU) seconds for store_page + commit per chunk, as the importer stores
    a chunk."""
    job_id = _fresh_schema(engine)
    with so.Session(engine) as session:
        job = session.get_one(BatchJob, job_id)
        clock = _Clock(session.connection().connection.driver_connection)
        for page in pages:
            positions = {r["RadarID"]: page.start + i for i, r in enumerate(page.results)}
            store_page(session, job.id, page, utcnow(), positions)
            session.commit()
        return clock.stop()


_COLUMNS = [f.name for f in STORED_FIELDS]


def _raw_upsert_sql(placeholder: str) -> str:
    columns = [*_COLUMNS, "raw", "first_seen_at", "last_seen_at"]
    values = [placeholder] * len(columns)
    updates = ", ".join(
        f"{c} = excluded.{c}" for c in columns if c not in ("radar_id", "first_seen_at")
    )
    return (
        f"INSERT INTO properties ({', '.join(columns)}) VALUES ({', '.join(values)}) "
        f"ON CONFLICT (radar_id) DO UPDATE SET {updates}"
    )


def _raw_rows(page: Page, now: Any) -> list[tuple[Any, ...]]:
    """What a script must send for the same rows: each lead column typed as the column
    (PostgreSQL refuses "612000" for a bigint; the app's own parsers do it), the record
    as JSON text (by the encoder the app's engine uses, so both sides encode alike), and
    the timestamps."""
    dumps = jsoncodec.dumps
    return [(*lead_columns(record).values(), dumps(record), now, now) for record in page.results]


def time_raw_executemany(engine: sa.Engine, pages: list[Page]) -> tuple[float, float]:
    """(b): (wall, CPU) seconds for a hand-written DB-API executemany upsert + commit per
    chunk."""
    _fresh_schema(engine)
    # The DB-API connection of the engine's pool: same driver, same pragmas/search_path.
    connection = engine.raw_connection()
    try:
        driver: Any = connection.driver_connection
        if isinstance(driver, sqlite3.Connection):
            sql = _raw_upsert_sql("?")

            def now() -> Any:
                return utcnow().replace(tzinfo=None).isoformat(" ")

        elif isinstance(driver, psycopg.Connection):
            sql = _raw_upsert_sql("%s")
            now = utcnow
        else:
            raise RuntimeError(f"no raw path for {type(driver)}")
        clock = _Clock(driver)
        for page in pages:
            cursor = driver.cursor()
            cursor.executemany(sql, _raw_rows(page, now()))
            cursor.close()
            driver.commit()
        return clock.stop()
    finally:
        connection.close()


def _count(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(sa.select(sa.func.count()).select_from(Property)) or 0


def measure(database_url: str, records: int = 20_000, repeats: int = 3) -> dict[str, Any]:
    """Records/s of (a) radar_app's store path and (b) a raw DB-API executemany upsert of
    the same rows (see the module docstring), and the ratio a/b (the acceptance line:
    ≥ 0.7), also in CPU seconds (cpu_ratio).

    Each is run `repeats` times, alternating a and b, each time into a fresh schema; the
    figure is each one's fastest run (the machine is shared: the slower runs measure the
    neighbours). `*_runs_s` lists every run."""
    rows = leads(records)
    pages = _pages(rows)
    result: dict[str, Any] = {"records": records, "chunk": CHUNK}
    timers: list[tuple[str, Callable[[sa.Engine, list[Page]], tuple[float, float]]]] = [
        ("store_path", time_store_path),
        ("raw_executemany", time_raw_executemany),
    ]
    runs: dict[str, list[float]] = {name: [] for name, _timer in timers}
    cpu: dict[str, list[float]] = {name: [] for name, _timer in timers}
    for _ in range(repeats):
        for name, timer in timers:
            with scratch_database(database_url) as url:
                engine = _engine(url)
                try:
                    result["database"] = engine.dialect.name
                    wall, cpu_seconds = timer(engine, pages)
                    runs[name].append(wall)
                    cpu[name].append(cpu_seconds)
                    stored = _count(engine)
                    if stored != records:
                        raise RuntimeError(f"{name}: stored {stored:,} of {records:,} records")
                finally:
                    engine.dispose()
    for name, seconds in runs.items():
        result[f"{name}_records_per_s"] = round(records / min(seconds))
        result[f"{name}_runs_s"] = [round(s, 3) for s in seconds]
        result[f"{name}_cpu_s"] = round(min(cpu[name]), 3)
    result["ratio"] = round(min(runs["raw_executemany"]) / min(runs["store_path"]), 3)
    # The same ratio in CPU seconds (client + local server), steadier on a busy machine.
    result["cpu_ratio"] = round(min(cpu["raw_executemany"]) / min(cpu["store_path"]), 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database_url", nargs="*")
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    urls = args.database_url or [f"sqlite:///{os.environ.get('TMPDIR', '/tmp')}/storepath.db"]
    for url in urls:
        print(json.dumps(measure(url, args.records, args.repeats)))


if __name__ == "__main__":
    main()
