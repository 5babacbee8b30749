from __future__ import annotations

from flask import render_template
from flask_login import login_required

from radar_app import batches
from radar_app.extensions import db
from radar_app.jobs import bp


@bp.get("/")
@login_required
def index() -> str:
    """The signed-in user's jobs, newest first."""
    from flask_login import current_user

    jobs = db.session.scalars(batches.visible_jobs(current_user).limit(50)).all()
    return render_template("jobs/index.html", jobs=jobs)
