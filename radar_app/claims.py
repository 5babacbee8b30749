"""Cross-job purchase claims: two jobs never buy the same record at the same time.

Before a purchase is sent, the job claims the RadarIDs it is about to buy (all or none,
in a short transaction of their own). A job that finds a RadarID claimed by another
active job does not buy it: it waits until that job has stored the record, then reuses
it. A claim is released in the transaction that stores the record, or when the job ends.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

import sqlalchemy as sa

from radar_app import jsoncodec
from radar_app.models import (
    BatchJob,
    DbSession,
    JobStatus,
    PurchaseClaim,
    one_of_listed,
    rows_updated,
    utcnow,
)
from radar_app.prepared import Prepared

logger = logging.getLogger(__name__)

_TIME = PurchaseClaim.__table__.c.claimed_at


def claim_records(
    session: DbSession,
    job_id: int,
    radar_ids: list[str],
    *,
    claim_stale_after: float,
    heartbeat_stale_after: float,
) -> set[str]:
    """Claim these RadarIDs for the job, all or none. Returns those held by another active
    job: then nothing is claimed (the transaction is rolled back: a run never waits while
    holding claims, so two jobs cannot wait for each other). Otherwise the caller commits
    the claims, which must be visible before the purchase is sent.

    A claim is taken over when its job is no longer PROCESSING, its heartbeat is older
    than `heartbeat_stale_after`, or the claim is older than `claim_stale_after` seconds.
    """
    if not radar_ids:
        return set()
    now = utcnow()
    # Read before writing: a job waiting for another's purchase asks again and again, and
    # an INSERT that meets the other job's claims locks them (ON CONFLICT DO UPDATE locks
    # the row it conflicts with), so that job's release waited on each try, and a tried
    # and rolled back insert left its rows dead (4 identical searches on PostgreSQL:
    # 1,530 claim inserts at 24.7 ms each for 337 purchases).
    held = _held_by_others(session, job_id, radar_ids)
    if held and _take_over_stale(
        session, job_id, held, now, claim_stale_after, heartbeat_stale_after
    ):
        held = _held_by_others(session, job_id, radar_ids)
    if not held:
        # Those claimed by another job since the read are what the insert does not claim.
        held = set(radar_ids) - _insert_claims(session, job_id, sorted(radar_ids), now)
    if held:
        session.rollback()
    return held


def _take_over_stale(
    session: DbSession,
    job_id: int,
    held: set[str],
    now: datetime,
    claim_stale_after: float,
    heartbeat_stale_after: float,
) -> int:
    """Take over those of these claims whose job stopped or went quiet, or that are older
    than `claim_stale_after` seconds; returns how many."""
    live_jobs = sa.select(BatchJob.id).where(
        BatchJob.status == JobStatus.PROCESSING,
        BatchJob.heartbeat_at >= now - timedelta(seconds=heartbeat_stale_after),
    )
    taken_over = rows_updated(
        session,
        sa.update(PurchaseClaim)
        .where(
            PurchaseClaim.radar_id.in_(sorted(held)),
            sa.or_(
                PurchaseClaim.claimed_at < now - timedelta(seconds=claim_stale_after),
                PurchaseClaim.batch_job_id.not_in(live_jobs),
            ),
        )
        .values(batch_job_id=job_id, claimed_at=now)
        .execution_options(synchronize_session=False),
    )
    if taken_over:
        logger.info("took over %d claims of stopped jobs", taken_over)
    return taken_over


def _insert_claims(
    session: DbSession, job_id: int, radar_ids: list[str], now: datetime
) -> set[str]:
    """INSERT the claims, in sorted order: two transactions inserting overlapping RadarIDs
    in the same order cannot deadlock on PostgreSQL (one waits for the other's commit,
    then skips). A claim this job already holds (left by a run that died) is renewed, so
    that nobody takes it over as stale while this run buys. Returns the RadarIDs now
    claimed by this job: the others are held by another job. One statement for the
    chunk (this runs before every purchase), not an ORM insert of 400 rows."""
    connection = session.connection(bind_arguments={"mapper": PurchaseClaim})
    dialect = connection.dialect
    stamp = _TIME.type._cached_bind_processor(dialect)
    when = stamp(now) if stamp else now
    upsert = (
        "ON CONFLICT (radar_id) DO UPDATE SET claimed_at = excluded.claimed_at "
        "WHERE purchase_claims.batch_job_id = excluded.batch_job_id RETURNING radar_id"
    )
    if dialect.name == "postgresql":
        result = connection.exec_driver_sql(
            "INSERT INTO purchase_claims (radar_id, batch_job_id, claimed_at) "
            "SELECT r, %s, %s FROM unnest(%b::varchar[]) AS r ORDER BY r " + upsert,
            (job_id, when, radar_ids),
        )
    else:
        # The WHERE is what lets SQLite parse ON CONFLICT after an INSERT ... SELECT.
        result = connection.exec_driver_sql(
            "INSERT INTO purchase_claims (radar_id, batch_job_id, claimed_at) "
            "SELECT e.value, ?, ? FROM json_each(?) AS e WHERE true " + upsert,
            (job_id, when, jsoncodec.dumps(radar_ids)),
        )
    return set(result.scalars())


# Read before every claim (once per chunk bought): prepared, like the release below.
_HELD_BY_OTHERS = Prepared(
    lambda dialect: sa.select(PurchaseClaim.__table__.c.radar_id).where(
        one_of_listed(PurchaseClaim.radar_id, "radar_ids", dialect),
        PurchaseClaim.batch_job_id != sa.bindparam("job_id"),
    )
)


def _held_by_others(session: DbSession, job_id: int, radar_ids: list[str]) -> set[str]:
    connection = session.connection(bind_arguments={"mapper": PurchaseClaim})
    return set(_HELD_BY_OTHERS(connection, {"job_id": job_id, "radar_ids": radar_ids}).scalars())


_RELEASE = Prepared(
    lambda dialect: sa.delete(PurchaseClaim.__table__).where(
        one_of_listed(PurchaseClaim.radar_id, "radar_ids", dialect),
        PurchaseClaim.batch_job_id == sa.bindparam("job_id"),
    )
)


def release(session: DbSession, job_id: int, radar_ids: Iterable[str]) -> None:
    """Release the job's claims on these RadarIDs (no commit: the caller stores them in
    the same transaction). A prepared DELETE on the session's connection: the ORM's bulk
    delete cost more than the statement, once per chunk."""
    connection = session.connection(bind_arguments={"mapper": PurchaseClaim})
    _RELEASE(connection, {"job_id": job_id, "radar_ids": list(radar_ids)})


def release_all(session: DbSession, job_id: int) -> None:
    """Release every claim of a job that buys nothing more (no commit)."""
    session.execute(sa.delete(PurchaseClaim).where(PurchaseClaim.batch_job_id == job_id))
