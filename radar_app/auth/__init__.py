from flask import Blueprint

bp = Blueprint("auth", __name__, url_prefix="/auth")

from radar_app.auth import routes  # noqa: E402,F401  (registers the views on bp)
