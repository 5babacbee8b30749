"""The charts of the pages: radar_app.activity's series drawn by radar_app.charts, with
the titles, colours and empty states the pages show. No Flask: the views render these."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup

from radar_app import activity, charts
from radar_app.activity import SystemActivity
from radar_app.models import BatchJob, DbSession


@dataclass(frozen=True)
class JobCharts:
    rate: Markup
    cost: Markup
    activity: activity.JobActivity


def job_charts(session: DbSession, job: BatchJob, now: datetime) -> JobCharts:
    """A job's records bought per second and its cost so far."""
    found = activity.job_activity(session, job, now)
    if job.reused_count and not found.bought:
        empty = "Nothing bought: every record so far was reused"
    elif job.is_active:
        empty = "No purchases yet"
    else:
        empty = "Nothing was bought"
    # The job's name says which job a saved or shared SVG file is about.
    named = f"Job “{job.name}”."
    reused = (
        f"Reused records ({job.reused_count:,}) cost nothing and are not counted."
        if job.reused_count
        else ""
    )
    rate = charts.line_chart(
        f"rate-{job.job_id}",
        "Records bought per second",
        found.rate,
        charts.PER_SECOND,
        colour=charts.PRIMARY,
        fill=charts.PRIMARY_SOFT,
        empty=empty,
        note=f"{named} {found.bought:,} records bought in all. {reused}".strip(),
    )
    cost = charts.line_chart(
        f"cost-{job.job_id}",
        "Cost so far",
        found.cost,
        charts.MONEY,
        colour=charts.OK,
        empty=empty,
        note=f"{named} {charts.MONEY.exact(found.spent)} spent in all.",
    )
    return JobCharts(Markup(rate), Markup(cost), found)


@dataclass(frozen=True)
class SystemCharts:
    activity: SystemActivity
    jobs: Markup
    records: Markup
    per: str  # "per hour", "per 6 hours"

    @property
    def title(self) -> str:
        return self.activity.window.name[:1].upper() + self.activity.window.name[1:]

    def total(self, name: str) -> float:
        values: list[float] = getattr(self.activity, name)
        return sum(values)


# The dashboard's charts, drawn once per distinct figures: drawing is most of a dashboard
# request once its settled buckets are kept, and operators polling it see the same jobs
# chart until a job is created or finishes (its arguments are hashable: tuples).
_bar_chart = functools.lru_cache(maxsize=256)(charts.bar_chart)


def system_charts(found: SystemActivity, key: str) -> SystemCharts:
    """Jobs created, completed and failed, and records bought, per bucket of a window."""
    per = f"per {charts.duration(found.step)}"
    starts = tuple(found.starts)
    jobs = _bar_chart(
        f"jobs-{key}",
        f"Jobs {per}",
        starts,
        found.step,
        (
            charts.Series("Created", tuple(found.created), charts.PRIMARY),
            charts.Series("Completed", tuple(found.completed), charts.OK),
            charts.Series("Failed", tuple(found.failed), charts.DANGER),
        ),
        charts.COUNT,
        empty=f"No jobs in the {found.window.name}",
    )
    spent = charts.MONEY.exact(sum(found.spent))
    records = _bar_chart(
        f"records-{key}",
        f"Records bought {per}",
        starts,
        found.step,
        (charts.Series("Bought", tuple(found.bought), charts.INFO),),
        charts.COUNT,
        empty=f"No records bought in the {found.window.name}",
        note=f"{spent} spent.",
    )
    return SystemCharts(found, Markup(jobs), Markup(records), per)


def dashboard(
    session: DbSession,
    now: datetime,
    owner_id: int | None,
    settled: activity.SettledBuckets | None = None,
) -> list[SystemCharts]:
    """Both windows' charts: of everyone (owner_id None) or of one user's jobs."""
    return [
        system_charts(activity.system_activity(session, window, now, owner_id, settled), key)
        for key, window in (("day", activity.DAY), ("week", activity.WEEK))
    ]
