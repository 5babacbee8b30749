"""What became of every record a job's search matched: the outcome file (issue 12).

Each snapshot row gets its outcome when its chunk is stored (radar_app.store.mark_stored,
in the chunk's transaction): bought, reused (already stored), suppressed (on a
suppression list) or vanished (asked for, not returned). A row never stored is pending
while the job runs and not bought once it stopped. The file has one CSV row per snapshot
record, in search order, streamed by keyset pages in constant memory.
"""

from __future__ import annotations

import csv
import enum
import io
from collections.abc import Iterator

import sqlalchemy as sa

from radar_app.models import BatchJob, DbSession, LedgerEntry, SnapshotItem


class Outcome(enum.IntEnum):
    BOUGHT = 1
    REUSED = 2
    SUPPRESSED = 3
    VANISHED = 4


# Label and reason of each outcome in the file.
_DESCRIBED = {
    Outcome.BOUGHT: ("bought", "bought in this job"),
    Outcome.REUSED: ("reused", "already stored and fresh: reused at no cost"),
    Outcome.SUPPRESSED: ("suppressed", "on a suppression list: never bought"),
    Outcome.VANISHED: (
        "vanished",
        "listed by the search but not returned when bought (no longer matches): not billed",
    ),
}
HEADER = ["position", "radar_id", "outcome", "reason", "chunk", "cost"]
# Rows per keyset page.
_PAGE = 5000


def _unit_costs(session: DbSession, job: BatchJob) -> dict[int, float]:
    """The price of one record bought in each chunk, from the ledger's billed rows."""
    rows = session.execute(
        sa.select(
            LedgerEntry.page,
            sa.func.sum(LedgerEntry.total_cost),
            sa.func.sum(LedgerEntry.result_count),
        )
        .where(LedgerEntry.batch_job_id == job.id, LedgerEntry.outcome == LedgerEntry.BILLED)
        .group_by(LedgerEntry.page)
    ).tuples()
    return {page: (cost or 0.0) / count for page, cost, count in rows if page and count}


def iter_outcomes_csv(session: DbSession, job: BatchJob, batch_size: int) -> Iterator[str]:
    """The job's outcome file, chunk of text by chunk of text."""
    costs = _unit_costs(session, job)
    stopped = not job.is_active
    unstored = (
        ("not bought", "the job stopped before buying it; a retry resumes here")
        if stopped
        else ("pending", "not bought yet: the job is running")
    )
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADER)
    yield buffer.getvalue()
    connection = session.connection()
    last = -1
    while True:
        rows = connection.execute(
            sa.select(SnapshotItem.position, SnapshotItem.radar_id, SnapshotItem.outcome)
            .where(SnapshotItem.batch_job_id == job.id, SnapshotItem.position > last)
            .order_by(SnapshotItem.position)
            .limit(_PAGE)
        ).all()
        if not rows:
            return
        buffer.seek(0)
        buffer.truncate()
        for position, radar_id, code in rows:
            chunk = position // batch_size + 1
            if code is None:
                label, reason = unstored
            else:
                label, reason = _DESCRIBED[Outcome(code)]
            cost = costs.get(chunk, 0.0) if code == Outcome.BOUGHT else 0.0
            writer.writerow([position + 1, radar_id, label, reason, chunk, f"{cost:.4f}"])
        yield buffer.getvalue()
        last = rows[-1][0]
