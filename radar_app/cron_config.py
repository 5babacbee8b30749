"""What RQ's cron scheduler runs: `rq cron radar_app/cron_config.py -u $REDIS_URL`.

The schedules' check, every SCHEDULE_CHECK_SECONDS (default 60), and the planner's
statistics, hourly. They run on a worker like any job; the schedules themselves live in
the database (radar_app.schedules)."""

import os

from rq import cron

from radar_app.defaults import DEFAULT_QUEUE
from radar_app.tasks import fire_schedules, refresh_planner_statistics

cron.register(
    fire_schedules,
    os.environ.get("RQ_QUEUE", DEFAULT_QUEUE),
    interval=int(os.environ.get("SCHEDULE_CHECK_SECONDS", "60")),
    # While no worker runs, checks pile up in the queue: those older than ten intervals
    # expire (a later one does the same work), so an outage leaves a few, not thousands.
    ttl=int(os.environ.get("SCHEDULE_CHECK_SECONDS", "60")) * 10,
    job_timeout=300,
    result_ttl=600,
)

cron.register(
    refresh_planner_statistics,
    os.environ.get("RQ_QUEUE", DEFAULT_QUEUE),
    interval=3600,
    ttl=3600,
    job_timeout=600,
    result_ttl=600,
)
