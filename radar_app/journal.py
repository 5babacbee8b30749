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

The writes of 1 and 2 are short transactions made by the run's main thread (which also
stores the chunks): on SQLite, purchase threads writing them would queue for its write
lock anyway, in SQLite's busy handler that sleeps in ever longer steps. 1 shares its
commit with the chunk's purchase claims (write_sent); 2 is a transaction of its own on
the engine. A follow-up request (the rest of a capped chunk) is journaled by its
purchase thread (PurchaseJournal.sent).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import NamedTuple, TypeVar

import sqlalchemy as sa

from radar_app.models import DbSession, JournaledPurchase, one_of_listed, utcnow
from radar_app.prepared import Prepared
from radar_app.propertyradar.client import Page
from radar_app.store import is_transient_db_error

logger = logging.getLogger(__name__)

T = TypeVar("T")

_TABLE = JournaledPurchase.__table__
# Prepared (see radar_app.prepared): each is written for every purchase.
_SENT = Prepared(
    sa.insert(_TABLE).returning(_TABLE.c.id),
    keys=["batch_job_id", "chunk", "radar_ids", "sent_at", "client_request_id"],
)
_RECEIVED = Prepared(
    sa.update(_TABLE)
    .where(_TABLE.c.id == sa.bindparam("entry_id"))
    .values(
        received_at=sa.bindparam("received_at"),
        response=sa.bindparam("response"),
        request_id=sa.bindparam("request_id"),
    )
)
_DISCARD = Prepared(
    lambda dialect: sa.delete(_TABLE).where(
        one_of_listed(JournaledPurchase.id, "entry_ids", dialect)
    )
)


class SentRequest(NamedTuple):
    """A journaled purchase request: its row, and the id it is sent with
    (X-Client-Request-Id, copied to its ledger row)."""

    entry_id: int
    client_request_id: str | None  # None on rows journaled before these ids existed

    @classmethod
    def of(cls, row: JournaledPurchase) -> SentRequest:
        return cls(row.id, row.client_request_id)


class PurchaseJournal:
    """The journal rows of one job, written from any thread."""

    def __init__(self, engine: sa.Engine, batch_id: int, retry_for: float) -> None:
        self.engine, self.batch_id, self.retry_for = engine, batch_id, retry_for

    def sent(self, chunk: int, radar_ids: list[str]) -> SentRequest:
        """Write down a purchase about to be sent, in a transaction of its own. Raises (and
        then the purchase is not sent) if the database stays unavailable."""

        def insert() -> SentRequest:
            with self.engine.begin() as conn:
                return write_sent(conn, self.batch_id, chunk, radar_ids)

        return self._retrying("journal the purchase", insert)

    def received(self, responses: list[tuple[int, Page]]) -> None:
        """Keep responses that arrived (journal row id, page) in one short transaction,
        before anything is parsed into leads or stored. A failure here is logged, not
        raised: the pages are still in memory and the chunk's own transaction follows."""
        now = utcnow()
        values = [
            {
                "entry_id": entry_id,
                "received_at": now,
                "response": (page.body or b"").decode("utf-8", "replace"),
                "request_id": page.request_id,
            }
            for entry_id, page in responses
        ]

        def update() -> None:
            with self.engine.begin() as conn:
                _RECEIVED.many(conn, values)

        try:
            self._retrying("journal the responses", update)
        except sa.exc.SQLAlchemyError:
            logger.exception("could not journal responses; storing them from memory")

    def _retrying(self, what: str, work: Callable[[], T]) -> T:
        """Like store.retry_transaction, on a connection of its own."""
        deadline = time.monotonic() + self.retry_for
        delay, tries = 0.05, 0
        while True:
            try:
                result = work()
            except sa.exc.DBAPIError as exc:
                if not is_transient_db_error(exc) or time.monotonic() + delay > deadline:
                    raise
                tries += 1
                if tries == 1:
                    logger.warning(
                        "%s: database busy or unreachable (%s); retrying", what, exc.orig
                    )
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            if tries:
                logger.warning("%s: stored after %d database retries", what, tries)
            return result


def write_sent(
    connection: sa.Connection, batch_id: int, chunk: int, radar_ids: list[str]
) -> SentRequest:
    """Write down a purchase about to be sent, in the connection's transaction (no
    commit): the importer writes it with the chunk's claims, in one commit."""
    client_request_id = str(uuid.uuid4())
    row = {
        "batch_job_id": batch_id,
        "chunk": chunk,
        "radar_ids": radar_ids,
        "sent_at": utcnow(),
        "client_request_id": client_request_id,
    }
    return SentRequest(int(_SENT(connection, row).scalar_one()), client_request_id)


def left_over(session: DbSession, batch_id: int) -> list[JournaledPurchase]:
    """The job's journal rows, oldest first: what an earlier run sent and never stored."""
    return list(
        session.scalars(
            sa.select(JournaledPurchase)
            .where(JournaledPurchase.batch_job_id == batch_id)
            .order_by(JournaledPurchase.id)
        )
    )


def unanswered(session: DbSession, entry_ids: list[int]) -> list[JournaledPurchase]:
    """Those of these requests that went out and got no response."""
    return list(
        session.scalars(
            sa.select(JournaledPurchase).where(
                JournaledPurchase.id.in_(entry_ids), JournaledPurchase.received_at.is_(None)
            )
        )
    )


def discard(session: DbSession, entry_ids: list[int]) -> None:
    """Delete these rows (no commit: in the transaction that stores their chunk). On the
    session's connection: the ORM's bulk delete flushed the session first and cost more
    than the statement."""
    if entry_ids:
        connection = session.connection(bind_arguments={"mapper": JournaledPurchase})
        _DISCARD(connection, {"entry_ids": entry_ids})
