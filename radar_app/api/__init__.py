from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api")

# Imported for their side effect of registering views on bp.
from radar_app.api import openapi, routes  # noqa: E402,F401
