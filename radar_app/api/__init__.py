from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api")

from radar_app.api import routes  # noqa: E402,F401  (registers the views on bp)
