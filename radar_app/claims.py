"""Cross-job purchase claims: two jobs never buy the same record at the same time.

Before a purchase is sent, the job claims the RadarIDs it is about to buy (all or none,
in a short transaction of their own). A job that finds a RadarID claimed by another
active job does not buy it: it waits until that job has stored the record, then reuses
it. A claim is released in the transaction that stores the record, or when the job ends.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta

import sqlalchemy as sa

from radar_app.models import BatchJob, DbSession, JobStatus, PurchaseClaim, rows_updated, utcnow
from radar_app.store import dialect_insert

logger = logging.getLogger(__name__)


def claim_records(
    session: DbSession,
    job_id: int,
    radar_ids: list[str],
    *,
    claim_stale_after: float,
    heartbeat_stale_after: float,
) -> set[str]:
    """Claim these RadarIDs for the job, all or none, and commit (the claim must be
    visible before the purchase is sent). Returns those held by another active job (then
    nothing is claimed: a run never waits while holding claims, so two jobs cannot wait
    for each other).

    A claim is taken over when its job is no longer PROCESSING, its heartbeat is older
    than `heartbeat_stale_after`, or the claim is older than `claim_stale_after` seconds.
    """
    if not radar_ids:
        return set()
    now = utcnow()
    table = PurchaseClaim.__table__
    insert = dialect_insert(session, table)
    # Sorted: two transactions inserting overlapping RadarIDs in the same order cannot
    # deadlock on PostgreSQL (one waits for the other's commit, then skips). A claim
    # this job already holds (left by a run that died) is renewed, so that nobody
    # takes it over as stale while this run buys.
    session.execute(
        insert.on_conflict_do_update(
            index_elements=[table.c.radar_id],
            set_={"claimed_at": insert.excluded.claimed_at},
            where=table.c.batch_job_id == insert.excluded.batch_job_id,
        ),
        [{"radar_id": rid, "batch_job_id": job_id, "claimed_at": now} for rid in sorted(radar_ids)],
    )
    held = _held_by_others(session, job_id, radar_ids)
    if held:
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
            held = _held_by_others(session, job_id, radar_ids)
    if held:
        session.rollback()
    else:
        session.commit()
    return held


def _held_by_others(session: DbSession, job_id: int, radar_ids: list[str]) -> set[str]:
    return set(
        session.scalars(
            sa.select(PurchaseClaim.radar_id).where(
                PurchaseClaim.radar_id.in_(radar_ids),
                PurchaseClaim.batch_job_id != job_id,
            )
        )
    )


def release(session: DbSession, job_id: int, radar_ids: Iterable[str]) -> None:
    """Release the job's claims on these RadarIDs (no commit: the caller stores them in
    the same transaction)."""
    session.execute(
        sa.delete(PurchaseClaim).where(
            PurchaseClaim.radar_id.in_(list(radar_ids)),
            PurchaseClaim.batch_job_id == job_id,
        )
    )


def release_all(session: DbSession, job_id: int) -> None:
    """Release every claim of a job that buys nothing more (no commit)."""
    session.execute(sa.delete(PurchaseClaim).where(PurchaseClaim.batch_job_id == job_id))
