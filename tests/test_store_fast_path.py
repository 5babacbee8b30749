"""The store's fast path (issue 11, item 3) stores exactly what the SQLAlchemy path did.

The oracle below is the store path as it was before (Core upserts of lead_columns dicts
through the ORM's column types). Both store the same pages; what the database holds
afterwards is compared as the driver returns it without any type processing (SQLite:
each value and its storage class; PostgreSQL: each value's text form), and as the ORM
reads it back. Runs on PostgreSQL with TEST_DATABASE_URL.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.dialects import postgresql, sqlite

from radar_app.extensions import db
from radar_app.leads import LEAD_COLUMNS, lead_columns, lead_values
from radar_app.models import BatchJob, JobProperty, Property, SnapshotItem, User
from radar_app.propertyradar.client import Page
from radar_app.propertyradar.coerce import radar_id_of
from radar_app.store import (
    _statements,
    free_snapshot_rows,
    store_page,
    store_snapshot_items,
    upsert_records,
)
from simulator.dataset import get_dataset

# -- the store path before the fast path: the oracle ---------------------------------

_UPDATABLE = [
    c.name for c in Property.__table__.columns if c.name not in {"id", "radar_id", "first_seen_at"}
]


def dialect_insert(session: Any, table: sa.Table) -> Any:
    """The ORM path's INSERT of the dialect (the reference the fast path is held to)."""
    name = session.get_bind().dialect.name
    return postgresql.insert(table) if name == "postgresql" else sqlite.insert(table)


def _old_upsert_records(session: Any, page: Page, now: datetime) -> tuple[set[str], int]:
    rows: dict[str, dict[str, Any]] = {}
    missing_id = 0
    for record in page.results:
        columns = lead_columns(record)
        radar_id = columns["radar_id"]
        if radar_id is None:
            missing_id += 1
            continue
        columns.update(raw=record, first_seen_at=now, last_seen_at=now)
        rows[radar_id] = columns
    if rows:
        stmt = dialect_insert(session, Property.__table__)
        stmt = stmt.on_conflict_do_update(
            index_elements=[Property.__table__.c.radar_id],
            set_={name: stmt.excluded[name] for name in _UPDATABLE},
        )
        session.execute(stmt, list(rows.values()))
    return set(rows), missing_id


def _old_link(session: Any, job: BatchJob, positions: dict[str, int]) -> int:
    if not positions:
        return 0
    ids = dict(
        session.execute(
            sa.select(Property.radar_id, Property.id).where(Property.radar_id.in_(list(positions)))
        )
        .tuples()
        .all()
    )
    already = session.scalar(
        sa.select(sa.func.count())
        .select_from(JobProperty)
        .where(JobProperty.batch_job_id == job.id, JobProperty.property_id.in_(ids.values()))
    )
    links = [
        {"batch_job_id": job.id, "property_id": ids[rid], "position": positions[rid]}
        for rid in positions
        if rid in ids
    ]
    if links:
        session.execute(
            dialect_insert(session, JobProperty.__table__).on_conflict_do_nothing(), links
        )
    return len(links) - (already or 0)


def _old_store_page(
    session: Any, job: BatchJob, page: Page, now: datetime, positions: dict[str, int] | None
) -> tuple[int, int, set[str]]:
    link_positions: dict[str, int] = {}
    rows, missing_id = _old_upsert_records(session, page, now)
    for index, record in enumerate(page.results):
        radar_id = radar_id_of(record)
        if radar_id is not None:
            link_positions.setdefault(radar_id, (positions or {}).get(radar_id, page.start + index))
    return _old_link(session, job, link_positions), missing_id, rows


def _old_store_snapshot_items(session: Any, job: BatchJob, page: Page) -> tuple[int, int]:
    items: dict[str, int] = {}
    missing = 0
    for index, record in enumerate(page.results):
        radar_id = radar_id_of(record)
        if radar_id is None:
            missing += 1
            continue
        items.setdefault(radar_id, page.start + index)
    if not items:
        return 0, missing
    known = set(
        session.scalars(
            sa.select(SnapshotItem.radar_id).where(
                SnapshotItem.batch_job_id == job.id, SnapshotItem.radar_id.in_(list(items))
            )
        )
    )
    rows = [
        {"batch_job_id": job.id, "position": position, "radar_id": radar_id}
        for radar_id, position in items.items()
        if radar_id not in known
    ]
    if rows:
        session.execute(
            dialect_insert(session, SnapshotItem.__table__).on_conflict_do_nothing(), rows
        )
    return len(rows), missing


# -- the pages ---------------------------------------------------------------------------


def _page(results: list[Any], start: int = 0) -> Page:
    return Page(
        results=results,
        result_count=len(results),
        total_result_count=len(results),
        total_cost=None,
        request_id=None,
        start=start,
        limit=400,
    )


def _hard_records() -> list[Any]:
    """Realistic leads plus every kind of value the store has to get right."""
    dataset = get_dataset()
    records: list[Any] = [dataset.record(i * 97) for i in range(30)]
    records[1].update(
        Address="  Calle Peña 5, 東京 🏠  ",  # unicode, padding
        Owner="Ünal Öztürk",
        OwnerFirstName="",  # empty: NULL
        Owner2="n/a",
        AVM="$1,234,567",  # messy numbers
        EquityPercent="65.5%",
        Baths=2.25,
        Beds=None,
        isSameMailingOrExempt="Yes",
        inForeclosure=None,
        ZipFive=2134,  # leading zero lost on the wire
        Nested={"list": [1, 2.5, None, True, "ü"], "deep": {"x": 1e-7, "y": 10**20}},
    )
    records[2] = {"RadarID": "PONLYID1"}  # every other column NULL
    records[3]["OwnerAddress"] = "A" * 20_000  # oversize text is stored in full
    records[3]["Owner"] = "Ω" * 5_000
    records[4] = {**records[5], "Owner": "copy one"}  # the same RadarID twice: the last
    records[6] = {**records[5], "Owner": "copy two"}  # copy is stored, at the first place
    records[7] = {k: v for k, v in records[7].items() if k != "RadarID"}  # no RadarID
    records[8] = {**records[8], "RadarID": "X" * 40}  # unusable RadarID: too long
    records[9] = "not a record"
    records[10] = {**records[10], "RadarID": 12345678}  # a number: stored as its text
    records[11]["Latitude"] = 45.123456789012345
    return records


def _stored(app: Flask) -> dict[str, Any]:
    """Everything the tables hold, as the driver hands it over (no type processing)."""
    with app.app_context():
        engine = db.engine
        properties = Property.__table__
        names = [c.name for c in properties.columns if c.name != "id"]
        if engine.dialect.name == "sqlite":
            selected = ", ".join(f"{n}, typeof({n})" for n in names)
        else:
            selected = ", ".join(f"{n}::text" for n in names)
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(f"SELECT {selected} FROM properties").all()
            # Ids are compared by their order only (PostgreSQL's sequence does not restart).
            order = conn.exec_driver_sql("SELECT radar_id FROM properties ORDER BY id").all()
            links = conn.exec_driver_sql(
                "SELECT j.job_id, p.radar_id, l.position FROM job_properties l "
                "JOIN properties p ON p.id = l.property_id "
                "JOIN batch_jobs j ON j.id = l.batch_job_id"
            ).all()
            snapshot = conn.exec_driver_sql(
                "SELECT j.job_id, s.position, s.radar_id FROM job_snapshot_items s "
                "JOIN batch_jobs j ON j.id = s.batch_job_id"
            ).all()
        objects = {}
        for prop in db.session.scalars(sa.select(Property)):
            objects[prop.radar_id] = {c: getattr(prop, c) for c in names}
        db.session.remove()
    return {
        "rows": sorted(map(tuple, rows), key=repr),
        "order": [r[0] for r in order],
        "links": sorted(map(tuple, links)),
        "snapshot": sorted(map(tuple, snapshot)),
        "objects": objects,
    }


def _empty(app: Flask) -> None:
    with app.app_context():
        for model in (JobProperty, SnapshotItem, Property):
            db.session.execute(sa.delete(model))
        db.session.commit()


def _jobs(app: Flask, user: User) -> list[str]:
    job_ids = [f"job-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    with app.app_context():
        for job_id in job_ids:
            db.session.add(BatchJob(job_id=job_id, name=job_id, criteria=[], created_by=user.id))
        db.session.commit()
    return job_ids


def _run(app: Flask, job_ids: list[str], old: bool) -> list[Any]:
    """The same sequence of stores a job's run makes, one transaction per chunk."""
    # The old functions took the job, the new ones take its id.
    store = _old_store_page if old else lambda s, job, *rest: store_page(s, job.id, *rest)
    upsert = _old_upsert_records if old else upsert_records
    snapshot = (
        _old_store_snapshot_items
        if old
        else lambda s, job, page: store_snapshot_items(s, job.id, page)
    )
    records = _hard_records()
    # Microseconds, and an offset that must come out as UTC.
    first = datetime(2026, 3, 4, 5, 6, 7, 89, tzinfo=timezone(timedelta(hours=-7)))
    later = datetime(2026, 3, 5, 0, 0, 0, 0, tzinfo=UTC)
    changed = [dict(r, Owner="Renamed Owner", AVM="999000") for r in records[:3]]
    results: list[Any] = []
    with app.app_context():
        session = db.session
        job_a, job_b = (
            session.scalar(sa.select(BatchJob).where(BatchJob.job_id == job_id))
            for job_id in job_ids
        )
        assert job_a is not None and job_b is not None
        ids = [{"RadarID": radar_id_of(r) or "", "x": 1} for r in records if isinstance(r, dict)]
        results.append(snapshot(session, job_a, _page(ids + [{"no": "id"}, ids[0]], start=0)))
        results.append(snapshot(session, job_a, _page(ids[5:] + [{"RadarID": "PNEW0001"}], 5000)))
        session.commit()
        positions = {radar_id_of(r): 100 + i for i, r in enumerate(records) if radar_id_of(r)}
        results.append(store(session, job_a, _page(records, start=0), first, positions))
        session.commit()
        # The same records again, some changed, for another job and for the first again.
        results.append(store(session, job_b, _page(changed + records[3:], start=400), later, None))
        results.append(store(session, job_a, _page(records[:5], start=0), later, positions))
        results.append(upsert(session, _page(changed[:1], start=0), later + timedelta(hours=1)))
        results.append(store(session, job_b, _page([], start=800), later, None))
        session.commit()
    return results


def test_the_fast_path_stores_exactly_what_the_orm_path_stored(app, user):
    job_ids = _jobs(app, user)
    old_results = _run(app, job_ids, old=True)
    before = _stored(app)
    _empty(app)
    new_results = _run(app, job_ids, old=False)
    after = _stored(app)

    assert new_results == old_results
    assert after["rows"] == before["rows"]  # every column, byte for byte as stored
    assert after["order"] == before["order"]  # new rows take their ids in page order
    assert after["links"] == before["links"]
    assert after["snapshot"] == before["snapshot"]
    assert after["objects"] == before["objects"]  # and the ORM reads the same objects back
    # The cases are really in there.
    objects = after["objects"]
    assert objects["PONLYID1"]["address"] is None and objects["PONLYID1"]["raw"] == {
        "RadarID": "PONLYID1"
    }
    assert "12345678" in objects
    assert len(objects) == 30 - 3 - 2  # no or unusable RadarID: 3; one RadarID thrice
    long_one = next(o for o in objects.values() if o["mail_address"] == "A" * 20_000)
    assert long_one["owner_name"] == "Ω" * 5_000
    unicode_one = next(o for o in objects.values() if o["owner_name"] == "Ünal Öztürk")
    assert unicode_one["address"] == "Calle Peña 5, 東京 🏠"
    assert unicode_one["raw"]["Nested"]["deep"] == {"x": 1e-7, "y": 10**20}
    assert unicode_one["zip_code"] == "02134" and unicode_one["avm"] == 1_234_567
    stamps = {o["first_seen_at"] for o in objects.values()}
    assert datetime(2026, 3, 4, 12, 6, 7, 89, tzinfo=UTC) in stamps
    assert all(o["last_seen_at"].tzinfo is not None for o in objects.values())


def test_a_record_bought_twice_links_once_and_counts_new_links_only(app, user):
    job_ids = _jobs(app, user)
    records = [get_dataset().record(i) for i in range(400)]
    now = datetime.now(UTC)
    with app.app_context():
        job = db.session.scalar(sa.select(BatchJob).where(BatchJob.job_id == job_ids[0]))
        linked, missing, stored = store_page(db.session, job.id, _page(records), now)
        db.session.commit()
        assert (linked, missing, len(stored)) == (400, 0, 400)
        # Half of them again, with 100 new: only the new ones are new links.
        more = records[200:] + [get_dataset().record(i) for i in range(400, 500)]
        linked, missing, stored = store_page(db.session, job.id, _page(more, start=200), now)
        db.session.commit()
        assert (linked, missing, len(stored)) == (100, 0, 300)
        count = db.session.scalar(
            sa.select(sa.func.count())
            .select_from(JobProperty)
            .where(JobProperty.batch_job_id == job.id)
        )
        assert count == 500


def test_numbers_no_column_can_hold_leave_it_empty_and_the_chunk_is_stored(app, user):
    """A garbled count or price must not fail a paid chunk: PostgreSQL refuses 3e9 for
    an INTEGER and 1e20 for a BIGINT (SQLite the second). The raw record keeps them."""
    job_ids = _jobs(app, user)
    odd = dict(get_dataset().record(7), SqFt=3_000_000_000, Beds="99999999999", AVM=10**20)
    fine = dict(get_dataset().record(8), SqFt=2_147_483_647, AVM=-(2**63))
    with app.app_context():
        job = db.session.scalar(sa.select(BatchJob).where(BatchJob.job_id == job_ids[0]))
        linked, missing, stored = store_page(
            db.session, job.id, _page([odd, fine]), datetime.now(UTC)
        )
        db.session.commit()
        assert (linked, missing, len(stored)) == (2, 0, 2)
        kept = db.session.scalar(sa.select(Property).where(Property.radar_id == odd["RadarID"]))
        assert kept is not None and (kept.sqft, kept.beds, kept.avm) == (None, None, None)
        assert kept.raw["SqFt"] == 3_000_000_000 and kept.raw["AVM"] == 10**20
        edge = db.session.scalar(sa.select(Property).where(Property.radar_id == fine["RadarID"]))
        assert edge is not None and (edge.sqft, edge.avm) == (2_147_483_647, -(2**63))


def test_lead_values_are_lead_columns_in_column_order():
    records: list[Any] = [get_dataset().record(i * 13) for i in range(200)]
    records += _hard_records() + [None, {}, {"County": "Multnomah", "FIPS": "41051"}]
    for record in records:
        assert lead_values(record) == tuple(lead_columns(record).values())
        assert tuple(lead_columns(record)) == LEAD_COLUMNS


@pytest.mark.empty_database
def test_the_store_bench_times_both_paths_and_leaves_the_database_as_it_was(database_url):
    from bench.storepath import measure

    result = measure(database_url, records=900, repeats=1)  # raises if a path lost records

    assert result["records"] == 900
    assert result["store_path_records_per_s"] > 0 and result["raw_executemany_records_per_s"] > 0
    assert result["ratio"] > 0 and result["cpu_ratio"] > 0
    engine = sa.create_engine(database_url)
    try:
        inspector = sa.inspect(engine)
        assert inspector.get_table_names() == []
        assert not [s for s in inspector.get_schema_names() if s.startswith("storepath_")]
        if engine.dialect.name == "sqlite":  # the scratch file beside it is gone too
            assert not list(Path(engine.url.database or "").parent.glob("storepath_*"))
    finally:
        engine.dispose()


def test_the_next_free_rows_are_read_in_order_not_sorted_out_of_the_whole_snapshot(app, user):
    """Planning a purchase reads about one chunk of snapshot rows, however big the job:
    the rows come from the (job, position) key in order, never from a read of all the
    job's rows and a sort. A running job's rows are newer than PostgreSQL's statistics,
    and a job taken for far fewer rows than it has was read whole for each chunk planned
    (28 ms a call in bench row e). Here PostgreSQL is told that reading by index is very
    dear, which tips its plan the same way."""
    job_ids = _jobs(app, user)
    rows = 20_000
    with app.app_context():
        job = db.session.scalar(sa.select(BatchJob).where(BatchJob.job_id == job_ids[0]))
        assert job is not None
        db.session.execute(
            sa.insert(SnapshotItem),
            [
                {"batch_job_id": job.id, "position": p, "radar_id": f"R{p}", "stored": p < 1_000}
                for p in range(rows)
            ],
        )
        db.session.commit()
        connection = db.session.connection()
        postgresql = connection.dialect.name == "postgresql"
        if postgresql:
            connection.exec_driver_sql("SET LOCAL random_page_cost = 1000")
            connection.exec_driver_sql("SET LOCAL max_parallel_workers_per_gather = 0")
            read = sa.text(
                "SELECT pg_stat_get_xact_tuples_returned(CAST(:t AS regclass)) "
                "+ pg_stat_get_xact_tuples_fetched(CAST(:t AS regclass))"
            ).bindparams(t="job_snapshot_items")
            before = connection.scalar(read)
        free = free_snapshot_rows(db.session, job.id, 0, 400)
        assert free == [(p, f"R{p}") for p in range(1_000, 1_400)]
        if postgresql:
            # The 1,000 stored rows before them are passed over in the key's order.
            assert connection.scalar(read) - before < 2_000
        else:
            sql = _statements(connection).free_rows_sql
            plan = " ".join(
                str(step[-1])
                for step in connection.exec_driver_sql(
                    f"EXPLAIN QUERY PLAN {sql}", (job.id, 0, 400)
                )
            )
            assert "TEMP B-TREE" not in plan and "job_snapshot_items" in plan
        db.session.rollback()
