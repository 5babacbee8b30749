"""Schedules: a saved search that runs by itself (issue 12, item 2).

A schedule is a five-field cron expression in the owner's time zone (daily and weekly are
written as one). RQ's cron scheduler (`rq cron radar_app/cron_config.py`) enqueues
radar_app.tasks.fire_schedules every minute; a worker runs it, and fire_due makes one
ordinary batch job for each schedule whose latest slot has not fired yet. The job buys
only new matches (the snapshot and reuse path), at most the run's cost cap, within the
owner's monthly budget.

Each slot fires once: its ScheduledRun row (unique per schedule and slot) is committed
with the job row, so two workers (or two queued fire_schedules jobs after an outage)
cannot both make it. Slots missed while nothing ran are not made up one by one: the
latest one fires once when the workers are back.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import sqlalchemy as sa
import sqlalchemy.orm as so
from croniter import CroniterBadCronError, croniter
from rq import Queue

from radar_app import batches
from radar_app.fielderrors import FieldErrors
from radar_app.models import BatchJob, DbSession, SavedSearch, Schedule, ScheduledRun, utcnow
from radar_app.propertyradar.errors import CriteriaError
from radar_app.searches import SearchSpec

logger = logging.getLogger(__name__)

CADENCES = {"daily": "Every day", "weekly": "Every week", "cron": "Cron expression"}
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_TIME = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
_DAILY = re.compile(r"(\d{1,2}) (\d{1,2}) \* \* \*")
_WEEKLY = re.compile(r"(\d{1,2}) (\d{1,2}) \* \* ([0-6])")


class InvalidSchedule(FieldErrors):
    """What is wrong with a schedule, by field (cadence, at, weekday, cron, timezone, max_cost)."""


@dataclass(frozen=True)
class ScheduleSpec:
    """A schedule as a person gives it."""

    cadence: str  # a key of CADENCES
    timezone: str
    at: str = "09:00"  # HH:MM, daily and weekly
    weekday: int = 0  # 0 = Monday, weekly
    cron: str = ""  # cron
    max_cost: float | None = None
    enabled: bool = True

    @classmethod
    def of(cls, schedule: Schedule) -> ScheduleSpec:
        """The spec that gives this schedule's cron expression back."""
        daily, weekly = _DAILY.fullmatch(schedule.cron), _WEEKLY.fullmatch(schedule.cron)
        common = {
            "timezone": schedule.timezone,
            "max_cost": schedule.max_cost,
            "enabled": schedule.enabled,
        }
        if daily:
            return cls("daily", at=_hhmm(daily), **common)  # type: ignore[arg-type]
        if weekly:
            weekday = (int(weekly.group(3)) - 1) % 7  # cron: 0 = Sunday
            return cls("weekly", at=_hhmm(weekly), weekday=weekday, **common)  # type: ignore[arg-type]
        return cls("cron", cron=schedule.cron, **common)  # type: ignore[arg-type]

    def cron_expression(self) -> str:
        """The five-field cron expression.

        Raises:
            InvalidSchedule: every problem, by field.
        """
        errors: dict[str, str] = {}
        expression = ""
        if self.cadence in ("daily", "weekly"):
            time = _TIME.fullmatch(self.at.strip())
            if time is None:
                errors["at"] = "A time like 09:30 (24-hour clock)"
            else:
                hour, minute = int(time.group(1)), int(time.group(2))
                expression = f"{minute} {hour} * * *"
                if self.cadence == "weekly":
                    if not 0 <= self.weekday <= 6:
                        errors["weekday"] = "Choose a day of the week"
                    expression = f"{minute} {hour} * * {(self.weekday + 1) % 7}"
        elif self.cadence == "cron":
            expression = " ".join(self.cron.split())
            if len(expression.split()) != 5 or not _valid_cron(expression):
                errors["cron"] = "Five fields: minute hour day-of-month month day-of-week"
        else:
            errors["cadence"] = "Choose daily, weekly or a cron expression"
        if not _valid_timezone(self.timezone):
            errors["timezone"] = "A time zone like America/Los_Angeles"
        if self.max_cost is not None and not (math.isfinite(self.max_cost) and self.max_cost > 0):
            errors["max_cost"] = "A positive amount of dollars, or empty for no cap"
        if errors:
            raise InvalidSchedule(errors)
        return expression


def _hhmm(match: re.Match[str]) -> str:
    return f"{int(match.group(2)):02d}:{int(match.group(1)):02d}"


def _valid_cron(expression: str) -> bool:
    try:
        croniter(expression)
    except (CroniterBadCronError, ValueError, KeyError):
        return False
    return True


def _valid_timezone(name: str) -> bool:
    if name not in available_timezones():
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def describe(schedule: Schedule) -> str:
    """The schedule in words, e.g. "Every Monday at 09:00 (America/Chicago)"."""
    spec = ScheduleSpec.of(schedule)
    zone = f"({schedule.timezone})"
    if spec.cadence == "daily":
        return f"Every day at {spec.at} {zone}"
    if spec.cadence == "weekly":
        return f"Every {WEEKDAYS[spec.weekday]} at {spec.at} {zone}"
    return f"Cron “{schedule.cron}” {zone}"


def latest_slot(schedule: Schedule, now: datetime) -> datetime:
    """The schedule's most recent slot at or before `now`, in UTC."""
    local = now.astimezone(ZoneInfo(schedule.timezone))
    # croniter steps from a moment strictly after the slot it returns.
    slot = croniter(schedule.cron, local.replace(second=59, microsecond=999999)).get_prev(datetime)
    return slot.astimezone(UTC)


def next_slot(schedule: Schedule, now: datetime) -> datetime:
    """The schedule's next slot after `now`, in UTC."""
    local = now.astimezone(ZoneInfo(schedule.timezone))
    return croniter(schedule.cron, local).get_next(datetime).astimezone(UTC)


def save_schedule(session: DbSession, search: SavedSearch, spec: ScheduleSpec) -> Schedule:
    """Create or replace the search's schedule.

    Raises:
        InvalidSchedule: every problem with `spec`.
    """
    expression = spec.cron_expression()
    schedule = session.scalar(sa.select(Schedule).where(Schedule.saved_search_id == search.id))
    if schedule is None:
        schedule = Schedule(saved_search_id=search.id)
        session.add(schedule)
    schedule.cron = expression
    schedule.timezone = spec.timezone
    schedule.max_cost = spec.max_cost
    schedule.enabled = spec.enabled
    session.commit()
    return schedule


def delete_schedule(session: DbSession, schedule: Schedule) -> None:
    session.delete(schedule)
    session.commit()


def runs(session: DbSession, schedule: Schedule, limit: int = 10) -> list[ScheduledRun]:
    """The schedule's newest runs, with their jobs."""
    return list(
        session.scalars(
            sa.select(ScheduledRun)
            .where(ScheduledRun.schedule_id == schedule.id)
            .options(so.joinedload(ScheduledRun.job))
            .order_by(ScheduledRun.slot_at.desc())
            .limit(limit)
        )
    )


def fire_due(
    session: DbSession,
    queue: Queue,
    settings: batches.QueueSettings,
    *,
    price_per_export: float,
    now: datetime | None = None,
) -> list[BatchJob]:
    """Make the job of every enabled schedule whose latest slot has not fired; the jobs
    made. A slot before the schedule existed does not fire."""
    now = now or utcnow()
    made: list[BatchJob] = []
    due = session.scalars(
        sa.select(Schedule)
        .where(Schedule.enabled)
        .options(so.joinedload(Schedule.saved_search).joinedload(SavedSearch.owner))
        .order_by(Schedule.id)
    ).all()
    for schedule in due:
        slot = latest_slot(schedule, now)
        if slot < schedule.created_at:
            continue
        fired = session.scalar(
            sa.select(sa.func.max(ScheduledRun.slot_at)).where(
                ScheduledRun.schedule_id == schedule.id
            )
        )
        if fired is not None and fired >= slot:
            continue
        job = _fire(session, queue, settings, schedule, slot, price_per_export)
        if job is not None:
            try:
                batches.enqueue_job(queue, job, settings)
            except Exception:  # noqa: BLE001 - recovery requeues a PENDING job without an RQ job
                logger.exception("schedule %s: job %s made but not queued", schedule.id, job.job_id)
            made.append(job)
    session.commit()
    return made


def _fire(
    session: DbSession,
    queue: Queue,
    settings: batches.QueueSettings,
    schedule: Schedule,
    slot: datetime,
    price_per_export: float,
) -> BatchJob | None:
    """The slot's run and job, committed together; None if another process fired the
    slot first, or the search cannot run any more (the run row then says why)."""
    search = schedule.saved_search
    spec = SearchSpec.of(search)
    local = slot.astimezone(ZoneInfo(schedule.timezone)).strftime("%Y-%m-%d %H:%M")
    cap = (
        math.floor(schedule.max_cost / price_per_export + 1e-9)
        if schedule.max_cost is not None and price_per_export > 0
        else None
    )
    run = ScheduledRun(schedule_id=schedule.id, slot_at=slot)
    session.add(run)
    try:
        arguments = spec.job_arguments() | {"name": f"{spec.name} · {local}"[:200]}
        # Not queued here: the run row must commit with the job row (create_job commits).
        job = batches.create_job(
            session,
            queue,
            settings,
            owner=search.owner,
            saved_search=search,
            max_purchases=cap,
            enqueue=False,
            **arguments,
        )
    except sa.exc.IntegrityError:
        session.rollback()  # another process fired this slot
        return None
    except CriteriaError as exc:
        session.rollback()
        _record_error(session, schedule, slot, f"the search is no longer valid: {exc}")
        return None
    run.batch_job_id = job.id
    session.commit()
    logger.info("schedule %s fired for %s: job %s", schedule.id, slot.isoformat(), job.job_id)
    return job


def _record_error(session: DbSession, schedule: Schedule, slot: datetime, error: str) -> None:
    session.add(ScheduledRun(schedule_id=schedule.id, slot_at=slot, error=error))
    try:
        session.commit()
    except sa.exc.IntegrityError:
        session.rollback()
    logger.warning("schedule %s: slot %s not run: %s", schedule.id, slot.isoformat(), error)
