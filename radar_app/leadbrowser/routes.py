"""The leads browser (issue 12): every lead the user has, filtered, sorted and paged by
keyset; the filter's leads as CSV in the columns the user picks. The query itself is
radar_app.leadsearch's; these views only read the URL and render."""

from __future__ import annotations

from flask import Blueprint, abort, render_template, request
from flask_login import current_user
from werkzeug.wrappers import Response

from radar_app import leads, leadsearch
from radar_app.export import browser_download
from radar_app.extensions import db
from radar_app.jobs.routes import is_htmx, require_login
from radar_app.leadsearch import InvalidLeadQuery, LeadQuery

bp = Blueprint("leadbrowser", __name__, url_prefix="/leads")
bp.before_request(require_login)

# The columns a new export starts with: what a mail merge needs.
DEFAULT_COLUMNS = (
    "radar_id", "address", "city", "state", "zip_code", "owner_name", "mail_address",
    "mail_city", "mail_state", "mail_zip", "avm", "equity_percent",
)  # fmt: skip


@bp.get("")
def index() -> tuple[str, int]:
    """The page, or (for htmx) only its results as the filters change."""
    try:
        query = leadsearch.parse_query(db.session, current_user, request.args)
        errors: dict[str, str] = {}
    except InvalidLeadQuery as exc:
        query, errors = LeadQuery(), exc.errors
    found = leadsearch.page(db.session, current_user, query) if not errors else None
    context = {
        "query": query,
        "found": found,
        "errors": errors,
        "total": leadsearch.count(db.session, current_user, query) if found else 0,
        "cap": leadsearch.COUNT_CAP,
        "jobs": leadsearch.jobs_of(db.session, current_user, [p.id for p in found.items])
        if found
        else {},
        "entered": request.args,
        "filters": leadsearch.FILTERS,
        "sorts": leadsearch.SORTS,
        "fields": leads.FIELDS,
        "custom_fields": leadsearch.custom_field_choices(db.session, current_user),
        "default_columns": DEFAULT_COLUMNS,
        "first_page": "after" not in request.args,
    }
    if is_htmx():
        # 422: the fragment explaining the problem is swapped in (base.html's htmx-config).
        return render_template("leadbrowser/_results.html", **context), 422 if errors else 200
    return render_template("leadbrowser/index.html", **context), _status(errors)


def _status(errors: dict[str, str]) -> int:
    # A job or search id that names nothing of the user's is a 404, as in a path: the
    # answer is the same whether it is someone else's or no one's.
    if "job" in errors or "search" in errors:
        return 404
    return 400 if errors else 200


@bp.get("/export.csv")
def export() -> Response:
    """Every lead of the current filter, in its order, in the columns picked."""
    try:
        query = leadsearch.parse_query(db.session, current_user, request.args)
        essentials, custom = export_columns(request.args.getlist("columns"))
    except InvalidLeadQuery as exc:
        abort(
            _status(exc.errors), description="Nothing exported: " + "; ".join(exc.errors.values())
        )
    return browser_download(db.session, current_user, query, essentials, custom)


def export_columns(picked: list[str]) -> tuple[list[str], list[str]]:
    """The essentials (JSON names) and custom fields (PropertyRadar names) picked; every
    essential when none is. Raises InvalidLeadQuery for a column nobody bought."""
    names = {f.name for f in leads.FIELDS}
    custom_allowed = set(leadsearch.custom_field_choices(db.session, current_user))
    unknown = [c for c in picked if c not in names and c not in custom_allowed]
    if unknown:
        raise InvalidLeadQuery({"columns": f"Columns: no such column {', '.join(unknown[:5])}"})
    if not picked:
        return [f.name for f in leads.FIELDS], []
    return [c for c in picked if c in names], [c for c in picked if c not in names]
