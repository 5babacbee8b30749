"""The web UI: search, the Jobs tab, job pages and their htmx fragments."""

from flask import Blueprint

from radar_app.jobs import filters

bp = Blueprint("jobs", __name__)
bp.record_once(lambda state: filters.init_app(state.app))

from radar_app.jobs import routes  # noqa: E402,F401  (registers the views on bp)
