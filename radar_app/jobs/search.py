"""Preview and submit a search: count and price it for free, then queue it.

No request or app context needed: the routes hand in what it uses, so the rules ("a
one-page search is waited for, a bigger one is followed on its job page") live in one
place.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError
from rq import Queue

from radar_app import batches
from radar_app.models import BatchJob, DbSession, SavedSearch, User
from radar_app.preview import Preview, PreviewSettings, preview_search
from radar_app.propertyradar.client import PropertyRadarClient


@dataclass(frozen=True)
class Estimate:
    """What a search would cost in time: matches, the records a job would buy, pages."""

    matches: int
    records: int
    pages: int
    batch_size: int
    seconds: float

    @property
    def capped(self) -> bool:
        return self.records < self.matches


def estimate(
    client: PropertyRadarClient,
    criteria: list[dict[str, Any]],
    *,
    max_records: int | None,
    batch_size: int,
    seconds_per_page: float,
) -> Estimate:
    """Count the matches with the free ``Purchase=0`` call and size the job.

    Raises:
        PropertyRadarError: the count failed (after the client's own retries).
        RedisError: the client's shared rate limiter could not reach Redis.
    """
    matches = client.count(criteria)
    records = min(matches, max_records) if max_records else matches
    pages = math.ceil(records / batch_size)
    return Estimate(matches, records, pages, batch_size, round(pages * seconds_per_page, 1))


@dataclass(frozen=True)
class CostPreview:
    """The preview of what a job would buy and cost, and the match count before the cap."""

    preview: Preview
    batch_size: int

    @property
    def total_matches(self) -> int:
        return self.preview.total_matches

    @property
    def capped(self) -> bool:
        return self.preview.matches < self.preview.total_matches


def preview_cost(
    session: DbSession,
    client: PropertyRadarClient,
    criteria: list[dict[str, Any]],
    settings: PreviewSettings,
    *,
    max_records: int | None,
    refresh_all: bool,
    suppressed: frozenset[str] | set[str] = frozenset(),
) -> CostPreview:
    """Matches, already owned, to buy and estimated cost, from free requests only.

    Raises:
        PropertyRadarError: a free request failed (after the client's own retries).
        RedisError: the client's shared rate limiter could not reach Redis.
    """
    result = preview_search(
        session,
        client,
        criteria,
        settings,
        max_records=max_records,
        refresh_all=refresh_all,
        suppressed=suppressed,
    )
    return CostPreview(result, settings.batch_size)


def fingerprint(
    criteria: list[dict[str, Any]],
    *,
    fields: list[str] | None,
    max_records: int | None,
    refresh_all: bool,
    suppression_list_id: int | None = None,
) -> str:
    """Everything that decides what a job buys, as one digest.

    A confirmation names the digest of the search it priced, so the job it starts is
    exactly the search the user saw the cost of: change any of these and it is priced
    (and confirmed) again.
    """
    spec = {
        "criteria": criteria,
        "fields": fields,
        "max_records": max_records,
        "refresh_all": refresh_all,
        "suppression_list_id": suppression_list_id,
    }
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


class Mode(enum.StrEnum):
    BACKGROUND = "background"  # the user asked for it
    WAIT = "wait"  # one page: queued, and the request waits a moment for it (wait_briefly)
    TOO_BIG = "too_big"  # the user asked to wait, but it needs more than one page


@dataclass(frozen=True)
class Submitted:
    job: BatchJob
    mode: Mode
    estimate: Estimate | None = None


def submit(
    session: DbSession,
    queue: Queue,
    settings: batches.QueueSettings,
    *,
    client_factory: Callable[[], PropertyRadarClient],
    owner: User,
    criteria: list[dict[str, Any]],
    name: str | None,
    max_records: int | None,
    background: bool,
    batch_size: int,
    seconds_per_page: float,
    refresh_all: bool = False,
    fields: list[str] | None = None,
    saved_search: SavedSearch | None = None,
    suppression_list_id: int | None = None,
) -> Submitted:
    """Create and queue a batch job for the search.

    Every job runs on a worker (with its heartbeat and crash recovery). When the user
    unticked "Process in background", the search is counted first: one that fits in a
    page is returned as Mode.WAIT, for the caller to wait a moment for it.

    Raises:
        CriteriaError: the criteria or the fields are invalid (nothing is stored).
        PropertyRadarError: counting failed (only when not in the background; nothing
            is stored).
        batches.QueueUnavailable: Redis is down (nothing is stored).
    """
    create: dict[str, Any] = dict(
        owner=owner,
        criteria=criteria,
        name=name,
        max_records=max_records,
        refresh_all=refresh_all,
        fields=fields,
        saved_search=saved_search,
        suppression_list_id=suppression_list_id,
    )
    if background:
        return Submitted(batches.create_job(session, queue, settings, **create), Mode.BACKGROUND)

    with client_factory() as client:
        try:
            sized = estimate(
                client,
                criteria,
                max_records=max_records,
                batch_size=batch_size,
                seconds_per_page=seconds_per_page,
            )
        except RedisError as exc:  # the shared rate limiter lives in Redis too
            raise batches.QueueUnavailable(batches.QUEUE_DOWN) from exc
    job = batches.create_job(session, queue, settings, **create)
    return Submitted(job, Mode.TOO_BIG if sized.records > batch_size else Mode.WAIT, sized)


def wait_briefly(
    session: DbSession,
    job: BatchJob,
    seconds: float,
    *,
    poll_interval: float = 0.1,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Wait up to ``seconds`` for a worker to finish the job; whether it has.

    The job row is read again on every poll, each in its own transaction, so the worker's
    commits are seen on every database and isolation level.
    """
    deadline = clock() + seconds
    while True:
        session.rollback()  # nothing to keep: end the read snapshot, expire the row
        session.refresh(job)
        if not job.is_active:
            return True
        if clock() >= deadline:
            return False
        sleep(poll_interval)
