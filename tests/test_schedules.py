"""Schedules (issue 12, item 2): a saved search runs by itself, daily, weekly or on a cron
expression in its time zone; each slot fires once (also with several checks at once and
after an outage, with real `rq cron` and worker processes); a run's cost cap holds."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from redis import Redis
from rq import Queue

from radar_app import schedules, searches
from radar_app.batches import QueueSettings
from radar_app.extensions import db
from radar_app.models import BatchJob, Schedule, ScheduledRun, User
from radar_app.queue import get_queue
from radar_app.schedules import InvalidSchedule, ScheduleSpec
from radar_app.searches import SearchSpec
from tests.conftest import ROOT, csrf_token_from, worker_env
from tests.helpers import MULTNOMAH, count_rows, wait_for

DAY = timedelta(days=1)
RQ = str(Path(sys.executable).parent / "rq")  # the venv's rq command


def make_schedule(
    app: Flask, user: User, spec: ScheduleSpec, *, created: datetime, **search: object
) -> int:
    """A saved search of `user`'s with this schedule, made at `created`; its id."""
    with app.app_context():
        owner = db.session.get(User, user.id)
        saved = searches.save(
            db.session,
            owner,
            SearchSpec(name="Weekly pull", criteria=MULTNOMAH, **search),  # type: ignore[arg-type]
        )
        schedule = schedules.save_schedule(db.session, saved, spec)
        schedule.created_at = created
        db.session.commit()
        return schedule.id


def fire(app: Flask, now: datetime) -> list[str]:
    with app.app_context():
        made = schedules.fire_due(
            db.session,
            get_queue(),
            QueueSettings.from_config(app.config),
            price_per_export=app.config["PRICE_PER_EXPORT"],
            now=now,
        )
        return [job.job_id for job in made]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# ------------------------------------------------------------------------ the rules


@pytest.mark.parametrize(
    ("spec", "cron"),
    [
        (ScheduleSpec("daily", "UTC", at="09:30"), "30 9 * * *"),
        (ScheduleSpec("weekly", "UTC", at="07:05", weekday=0), "5 7 * * 1"),
        (ScheduleSpec("weekly", "UTC", at="23:59", weekday=6), "59 23 * * 0"),
        (ScheduleSpec("cron", "UTC", cron=" 0  7 * *   1-5 "), "0 7 * * 1-5"),
    ],
)
def test_cadences_are_cron_expressions_and_read_back(spec: ScheduleSpec, cron: str):
    assert spec.cron_expression() == cron
    schedule = Schedule(cron=cron, timezone="UTC", max_cost=None, enabled=True)
    again = ScheduleSpec.of(schedule)
    assert again.cron_expression() == cron
    assert again.cadence == spec.cadence


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (ScheduleSpec("daily", "UTC", at="25:00"), "at"),
        (ScheduleSpec("weekly", "UTC", weekday=7), "weekday"),
        (ScheduleSpec("cron", "UTC", cron="every monday"), "cron"),
        (ScheduleSpec("cron", "UTC", cron="61 * * * *"), "cron"),
        (ScheduleSpec("daily", "Mars/Olympus"), "timezone"),
        (ScheduleSpec("daily", "UTC", max_cost=-5.0), "max_cost"),
        (ScheduleSpec("daily", "UTC", max_cost=float("nan")), "max_cost"),
        (ScheduleSpec("hourly", "UTC"), "cadence"),
    ],
)
def test_bad_schedules_name_the_field(spec: ScheduleSpec, field: str):
    with pytest.raises(InvalidSchedule) as raised:
        spec.cron_expression()
    assert field in raised.value.errors


def test_slots_are_in_the_schedules_time_zone_through_daylight_saving():
    schedule = Schedule(cron="0 9 * * *", timezone="America/Los_Angeles")
    # 09:00 in Los Angeles is 17:00 UTC in winter (PST) and 16:00 UTC in summer (PDT).
    assert schedules.latest_slot(schedule, at("2026-12-03T18:00")) == at("2026-12-03T17:00")
    assert schedules.latest_slot(schedule, at("2026-12-03T16:59")) == at("2026-12-02T17:00")
    assert schedules.latest_slot(schedule, at("2026-07-01T16:00")) == at("2026-07-01T16:00")
    assert schedules.next_slot(schedule, at("2026-03-07T18:00")) == at("2026-03-08T16:00")


# ------------------------------------------------------------------------ firing


def test_each_slot_fires_once_and_missed_slots_fire_once(app, user, simulator):
    spec = ScheduleSpec("daily", "America/Chicago", at="09:00")  # 15:00 UTC in December
    schedule_id = make_schedule(app, user, spec, created=at("2026-11-30T16:00"))
    assert fire(app, at("2026-12-01T14:59")) == []  # 30 November's slot was before it
    [first] = fire(app, at("2026-12-01T15:00"))
    assert count_rows(app, BatchJob) == 1
    assert fire(app, at("2026-12-01T20:00")) == []  # the same slot: not again
    # Down for three days: the latest slot fires, once.
    assert len(fire(app, at("2026-12-04T16:00"))) == 1
    assert fire(app, at("2026-12-04T23:00")) == []
    with app.app_context():
        slots = db.session.scalars(
            sa.select(ScheduledRun.slot_at)
            .where(ScheduledRun.schedule_id == schedule_id)
            .order_by(ScheduledRun.slot_at)
        ).all()
        job = db.session.scalar(sa.select(BatchJob).where(BatchJob.job_id == first))
        assert job.saved_search_id is not None
        assert job.name == "Weekly pull · 2026-12-01 09:00"
    assert slots == [at("2026-12-01T15:00"), at("2026-12-04T15:00")]


def test_a_slot_before_the_schedule_existed_does_not_fire(app, user, simulator):
    spec = ScheduleSpec("daily", "UTC", at="09:00")
    make_schedule(app, user, spec, created=at("2026-12-01T10:00"))
    assert fire(app, at("2026-12-01T12:00")) == []  # 09:00 that day was before it
    assert len(fire(app, at("2026-12-02T09:00"))) == 1


def test_checks_at_the_same_moment_make_one_job(app, user, simulator):
    spec = ScheduleSpec("daily", "UTC", at="09:00")
    make_schedule(app, user, spec, created=at("2026-11-01T00:00"))
    made: list[list[str]] = []
    start = threading.Barrier(4)

    def check() -> None:
        start.wait()
        made.append(fire(app, at("2026-12-01T09:30")))

    threads = [threading.Thread(target=check) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(len(jobs) for jobs in made) == [0, 0, 0, 1]
    assert count_rows(app, BatchJob) == 1 and count_rows(app, ScheduledRun) == 1


def test_a_disabled_schedule_does_not_fire(app, user, simulator):
    spec = ScheduleSpec("daily", "UTC", at="09:00", enabled=False)
    make_schedule(app, user, spec, created=at("2026-11-01T00:00"))
    assert fire(app, at("2026-12-01T10:00")) == []


def test_a_runs_cost_cap_is_never_passed(app, user, run_worker, simulator):
    price = app.config["PRICE_PER_EXPORT"]
    batch = app.config["PROPERTYRADAR_BATCH_SIZE"]
    # Room for one chunk and a half: the first chunk is bought, the second would pass it.
    spec = ScheduleSpec("daily", "UTC", at="09:00", max_cost=price * batch * 1.5)
    make_schedule(app, user, spec, created=at("2026-11-01T00:00"), max_records=batch * 3)
    [job_id] = fire(app, at("2026-12-01T10:00"))
    run_worker()
    with app.app_context():
        job = db.session.scalar(sa.select(BatchJob).where(BatchJob.job_id == job_id))
        assert job.max_purchases == int(batch * 1.5)
        assert job.status == "FAILED" and "cost cap reached" in job.error_details
        assert job.purchased_count == batch  # one chunk: the next would have passed the cap
        assert job.cost_total <= spec.max_cost


# --------------------------------------------------------------------------- pages


def test_schedule_page_saves_shows_and_removes(app, client, auth, user, simulator):
    assert auth.login().status_code == 302
    with app.app_context():
        owner = db.session.get(User, user.id)
        saved = searches.save(db.session, owner, SearchSpec("Mondays", MULTNOMAH))
        search_id = saved.search_id
    page = client.get(f"/searches/{search_id}/schedule")
    assert page.status_code == 200 and "Run it by itself" in page.text
    token = csrf_token_from(page.text)
    bad = client.post(
        f"/searches/{search_id}/schedule",
        data={"csrf_token": token, "cadence": "weekly", "at": "9am", "timezone": "Nowhere"},
    )
    assert bad.status_code == 400 and "24-hour clock" in bad.text and "time zone like" in bad.text
    assert count_rows(app, Schedule) == 0
    good = {
        "csrf_token": token,
        "cadence": "weekly",
        "at": "07:30",
        "weekday": "0",
        "timezone": "America/New_York",
        "max_cost": "25",
        "enabled": "y",
    }
    response = client.post(f"/searches/{search_id}/schedule", data=good, follow_redirects=True)
    assert "Every Monday at 07:30 (America/New_York)" in response.text
    assert "next run" in response.text
    listing = client.get("/searches").text
    assert "Every Monday at 07:30" in listing
    client.post(f"/searches/{search_id}/schedule/delete", data={"csrf_token": token})
    assert count_rows(app, Schedule) == 0


def test_another_users_schedule_is_404(app, client, auth, user, other_user):
    with app.app_context():
        other = db.session.get(User, other_user.id)
        theirs = searches.save(db.session, other, SearchSpec("Theirs", MULTNOMAH)).search_id
    auth.login()
    token = auth.csrf_token()
    assert client.get(f"/searches/{theirs}/schedule").status_code == 404
    data = {"csrf_token": token, "cadence": "daily", "at": "09:00", "timezone": "UTC"}
    assert client.post(f"/searches/{theirs}/schedule", data=data).status_code == 404
    assert count_rows(app, Schedule) == 0


# ------------------------------------------------------- real processes: rq cron


def test_a_slot_passed_while_the_workers_were_down_fires_once_when_they_are_back(
    app, app_config, user, start_worker, redis_url, simulator, tmp_path: Path
):
    # Daily at a minute already past today, for a schedule made yesterday: due now.
    now = datetime.now(UTC)
    slot = (now - timedelta(minutes=2)).strftime("%H:%M")
    spec = ScheduleSpec("daily", "UTC", at=slot)
    make_schedule(app, user, spec, created=now - DAY)
    env = {**worker_env(app_config), "SCHEDULE_CHECK_SECONDS": "1"}
    log = open(tmp_path / "cron.log", "wb")  # noqa: SIM115
    cron = subprocess.Popen(
        [RQ, "cron", "radar_app/cron_config.py", "-u", redis_url],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    connection = Redis.from_url(redis_url)
    queue = Queue(app_config["RQ_QUEUE"], connection=connection)
    try:
        # No worker: the checks pile up in the queue, and nothing fires.
        wait_for(lambda: queue.count >= 3, timeout=60, what="three queued schedule checks")
        assert count_rows(app, BatchJob) == 0
        start_worker()  # back: every queued check runs; the slot fires once
        wait_for(lambda: count_rows(app, BatchJob) == 1, timeout=60, what="the scheduled job")
        wait_for(lambda: queue.count == 0, timeout=60, what="the queued checks to run")
        wait_for(
            lambda: _status(app) == "COMPLETED", timeout=120, what="the scheduled job to complete"
        )
        assert count_rows(app, BatchJob) == 1 and count_rows(app, ScheduledRun) == 1
    finally:
        cron.terminate()
        cron.wait(timeout=15)
        connection.close()


def _status(app: Flask) -> str | None:
    with app.app_context():
        return db.session.scalar(sa.select(BatchJob.status))
