"""How fast a running job buys, and when it should be done: only from a meaningful rate.

The job row's own rate (``BatchJob.records_per_second``) counts from the start of the
run, free snapshot included, and from the first chunk on: a 49 s job once showed "6 min
45 s left". Here the rate is measured over the purchase phase of the current run only,
and there is no estimate at all ("estimating…") until that phase has run long enough and
done enough chunks for the rate to mean something.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from radar_app.models import BatchJob, JobPhase, JobStatus

# No estimate before this many seconds of buying...
MIN_SECONDS = 5.0
# ...nor before this many chunks are done (the first one includes connection set-up).
MIN_CHUNKS = 2


@dataclass(frozen=True)
class Pace:
    """The purchase rate and the time left; both None while estimating (or not running)."""

    records_per_second: float | None
    seconds_left: float | None
    estimating: bool


NOT_RUNNING = Pace(None, None, estimating=False)


def purchase_pace(job: BatchJob, now: datetime, *, batch_size: int) -> Pace:
    """The pace of a PROCESSING job's purchases in its current run, measured from
    job.purchase_started_at (the run's start when unknown, never anything earlier).

    Args:
        batch_size: records per purchase chunk.
    """
    if job.status != JobStatus.PROCESSING:
        return NOT_RUNNING
    if job.phase != JobPhase.PURCHASE or job.run_started_at is None or not job.total_records:
        return Pace(None, None, estimating=True)
    since = job.run_started_at
    if job.purchase_started_at is not None and job.purchase_started_at > since:
        since = job.purchase_started_at
    elapsed = (now - since).total_seconds()
    done = job.processed_records - job.run_start_processed
    remaining = max(0, job.total_records - job.processed_records)
    enough = min(MIN_CHUNKS * batch_size, done + remaining)
    if elapsed < MIN_SECONDS or done <= 0 or done < enough:
        return Pace(None, None, estimating=True)
    rate = done / elapsed
    return Pace(round(rate, 1), round(remaining / rate, 1), estimating=False)
