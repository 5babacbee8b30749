"""What a search would cost before it runs: matches, already owned, to buy, estimated cost.

Everything here uses free Purchase=0 requests. Ownership is counted exactly from a
snapshot of up to `snapshot_limit` RadarIDs; past that, it is extrapolated from the
sample and marked as an estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

import sqlalchemy as sa

from radar_app.defaults import MAX_ROWS_PER_REQUEST
from radar_app.models import DbSession, Property, utcnow
from radar_app.propertyradar.client import PropertyRadarClient

SNAPSHOT_PAGE = MAX_ROWS_PER_REQUEST
# RadarIDs looked up per `IN (...)` query: well inside every database's parameter limit.
RADAR_IDS_PER_QUERY = 1000


@dataclass(frozen=True)
class Preview:
    matches: int  # after max_records
    total_matches: int  # before max_records
    pages: int
    sampled: int
    owned: int
    owned_is_estimate: bool
    suppressed: int  # on a suppression list: never bought (an estimate like owned)
    to_buy: int
    estimated_cost: float
    price_per_export: float
    estimated_seconds: float


@dataclass(frozen=True)
class PreviewSettings:
    batch_size: int
    snapshot_limit: int
    freshness: timedelta
    price_per_export: float
    seconds_per_page: float

    @classmethod
    def from_config(cls, config: Any) -> PreviewSettings:
        return cls(
            batch_size=config["PROPERTYRADAR_BATCH_SIZE"],
            snapshot_limit=config["PREVIEW_SNAPSHOT_LIMIT"],
            freshness=timedelta(days=config["LEAD_FRESHNESS_DAYS"]),
            price_per_export=config["PRICE_PER_EXPORT"],
            seconds_per_page=config["ESTIMATED_SECONDS_PER_PAGE"],
        )


def preview_search(
    session: DbSession,
    client: PropertyRadarClient,
    criteria: list[dict[str, Any]],
    settings: PreviewSettings,
    *,
    max_records: int | None,
    refresh_all: bool = False,
    suppressed: frozenset[str] | set[str] = frozenset(),
) -> Preview:
    """Count, sample and price a search without buying anything. `suppressed`: the
    RadarIDs the job would skip (radar_app.suppression)."""
    batch_size, snapshot_limit = settings.batch_size, settings.snapshot_limit
    freshness, price_per_export = settings.freshness, settings.price_per_export
    seconds_per_page = settings.seconds_per_page
    first = client.radar_ids(criteria, 0, min(SNAPSHOT_PAGE, max(1, snapshot_limit)))
    matches = total_matches = first.total_result_count
    if max_records:
        matches = min(matches, max_records)
    radar_ids = [r["RadarID"] for r in first.results if isinstance(r, dict) and r.get("RadarID")]
    start = len(first.results)
    wanted = min(matches, snapshot_limit)
    while start < wanted:
        page = client.radar_ids(criteria, start, min(SNAPSHOT_PAGE, wanted - start))
        if not page.results:
            break
        radar_ids += [
            r["RadarID"] for r in page.results if isinstance(r, dict) and r.get("RadarID")
        ]
        start += len(page.results)
    sample = radar_ids[:wanted]
    suppressed_in_sample = sum(radar_id in suppressed for radar_id in sample)
    # Suppressed records are skipped before anything is reused or bought.
    buyable = [radar_id for radar_id in sample if radar_id not in suppressed]
    owned_in_sample = 0
    if buyable and not refresh_all:
        fresh_since = utcnow() - freshness
        for offset in range(0, len(buyable), RADAR_IDS_PER_QUERY):
            # COUNT(*) returns exactly one row, so the scalar is never None.
            owned_in_sample += cast(
                int,
                session.scalar(
                    sa.select(sa.func.count()).where(
                        Property.radar_id.in_(buyable[offset : offset + RADAR_IDS_PER_QUERY]),
                        Property.last_seen_at >= fresh_since,
                    )
                ),
            )
    is_estimate = len(sample) < matches
    owned, suppressed_count = (
        (
            round(owned_in_sample * matches / len(sample)),
            round(suppressed_in_sample * matches / len(sample)),
        )
        if is_estimate and sample
        else (owned_in_sample, suppressed_in_sample)
    )
    to_buy = max(0, matches - owned - suppressed_count)
    pages = math.ceil(to_buy / batch_size) if to_buy else 0
    snapshot_pages = math.ceil(matches / SNAPSHOT_PAGE) if matches else 0
    return Preview(
        matches=matches,
        total_matches=total_matches,
        pages=pages,
        sampled=len(sample),
        owned=owned,
        owned_is_estimate=is_estimate,
        suppressed=suppressed_count,
        to_buy=to_buy,
        estimated_cost=round(to_buy * price_per_export, 2),
        price_per_export=price_per_export,
        estimated_seconds=round((pages + snapshot_pages) * seconds_per_page, 1),
    )
