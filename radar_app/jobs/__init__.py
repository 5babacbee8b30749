from flask import Blueprint

bp = Blueprint("jobs", __name__)

from radar_app.jobs import routes  # noqa: E402,F401  (registers the views on bp)
