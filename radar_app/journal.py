"""The purchase journal: what a job has asked PropertyRadar to sell it and not stored yet.

Purchases are billed when PropertyRadar answers and are not refundable, so what was paid
for must survive a work horse killed at any moment:

1. a Purchase=1 request is written here (job, chunk, RadarIDs) and committed before it
   is sent;
2. its response body is committed here the moment it arrives, before it is parsed into
   leads, upserted or linked;
3. the transaction that stores the chunk deletes its rows, so the table only holds what
   is in flight.

A run that starts (a resume after a crash, a retry) settles what an earlier run left:
a row with a response is stored from here and never bought again; a row without one went
out and may have been billed, so it becomes a "possibly billed" ledger row for its
RadarIDs, which are then bought again.

The writes of 1 and 2 happen on the purchase threads, each in a short transaction of its
own on the engine (the run's session belongs to its main thread).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa

from radar_app.models import DbSession, JournaledPurchase, utcnow
from radar_app.propertyradar.client import Page
from radar_app.store import is_transient_db_error

logger = logging.getLogger(__name__)

T = TypeVar("T")

_TABLE = JournaledPurchase.__table__


class PurchaseJournal:
    """The journal rows of one job, written from any thread."""

    def __init__(self, engine: sa.Engine, batch_id: int, retry_for: float) -> None:
        self.engine, self.batch_id, self.retry_for = engine, batch_id, retry_for

    def sent(self, chunk: int, radar_ids: list[str]) -> int:
        """Write down a purchase about to be sent; returns its row id. Raises (and then
        the purchase is not sent) if the database stays unavailable."""
        row = {
            "batch_job_id": self.batch_id,
            "chunk": chunk,
            "radar_ids": radar_ids,
            "sent_at": utcnow(),
        }

        def insert() -> int:
            with self.engine.begin() as conn:
                result = conn.execute(sa.insert(_TABLE).returning(_TABLE.c.id), row)
                return int(result.scalar_one())

        return self._retrying("journal the purchase", insert)

    def received(self, entry_id: int, page: Page) -> None:
        """Keep a response the moment it arrives. A failure here is logged, not raised:
        the page is still in memory and is stored by the chunk's own transaction."""
        values = {
            "received_at": utcnow(),
            "response": (page.body or b"").decode("utf-8", "replace"),
            "request_id": page.request_id,
        }

        def update() -> None:
            with self.engine.begin() as conn:
                conn.execute(sa.update(_TABLE).where(_TABLE.c.id == entry_id).values(**values))

        try:
            self._retrying("journal the response", update)
        except sa.exc.SQLAlchemyError:
            logger.exception("could not journal response %s; storing it from memory", entry_id)

    def _retrying(self, what: str, work: Callable[[], T]) -> T:
        deadline = time.monotonic() + self.retry_for
        delay = 0.05
        while True:
            try:
                return work()
            except sa.exc.DBAPIError as exc:
                if not is_transient_db_error(exc) or time.monotonic() + delay > deadline:
                    raise
                logger.warning("%s: database busy or unreachable (%s); retrying", what, exc.orig)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)


def left_over(session: DbSession, batch_id: int) -> list[JournaledPurchase]:
    """The job's journal rows, oldest first: what an earlier run sent and never stored."""
    return list(
        session.scalars(
            sa.select(JournaledPurchase)
            .where(JournaledPurchase.batch_job_id == batch_id)
            .order_by(JournaledPurchase.id)
        )
    )


def unanswered(session: DbSession, batch_id: int, chunk: int) -> list[JournaledPurchase]:
    """The chunk's requests that went out and got no response."""
    return list(
        session.scalars(
            sa.select(JournaledPurchase).where(
                JournaledPurchase.batch_job_id == batch_id,
                JournaledPurchase.chunk == chunk,
                JournaledPurchase.received_at.is_(None),
            )
        )
    )


def discard(session: DbSession, batch_id: int, chunk: int) -> None:
    """Delete the chunk's rows (no commit: in the transaction that stores the chunk)."""
    session.execute(
        sa.delete(JournaledPurchase).where(
            JournaledPurchase.batch_job_id == batch_id, JournaledPurchase.chunk == chunk
        )
    )
