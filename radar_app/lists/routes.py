"""Suppression lists' pages (issue 12): a list of RadarIDs is uploaded as a CSV (a
RadarID column, e.g. a leads export) or pasted; a default list applies to every job of
its owner, another can be chosen on the search form."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from redis.exceptions import RedisError
from werkzeug.wrappers import Response

from radar_app import services, suppression
from radar_app.extensions import db
from radar_app.jobs.routes import require_login
from radar_app.models import SuppressionList
from radar_app.propertyradar.errors import PropertyRadarError
from radar_app.suppression import MAX_PROBLEMS_SHOWN, InvalidList

bp = Blueprint("lists", __name__, url_prefix="/suppression-lists")
bp.before_request(require_login)

# An upload may be a whole leads export: more than the app's MAX_CONTENT_LENGTH.
UPLOAD_LIMIT = 16 * 1024 * 1024


@bp.url_value_preprocessor
def _allow_uploads(endpoint: str | None, _values: dict[str, object] | None) -> None:
    # Runs before every before_request function, so before the CSRF check reads the form.
    if endpoint == "lists.create":
        request.max_content_length = UPLOAD_LIMIT
        request.max_form_memory_size = UPLOAD_LIMIT


def _list_or_404(list_id: str) -> SuppressionList:
    found = suppression.find_list(db.session, current_user, list_id)
    if found is None:
        abort(404, description="There is no suppression list with that id, or it is not yours.")
    return found


def _page(errors: dict[str, str] | None = None, status: int = 200) -> tuple[str, int]:
    lists = db.session.scalars(suppression.visible_lists(current_user)).all()
    return render_template(
        "lists/index.html",
        lists=lists,
        sizes=suppression.sizes(db.session, list(lists)),
        errors=errors or {},
        entered=request.form if request.method == "POST" else {},
        max_records=suppression.MAX_RECORDS_PER_LIST,
    ), status


@bp.get("")
def index() -> tuple[str, int]:
    """The user's suppression lists, and the form for a new one."""
    return _page()


@bp.post("")
def create() -> Response | tuple[str, int]:
    """A new list from an uploaded CSV and/or pasted RadarIDs; nothing stored if any
    value cannot be read."""
    upload = request.files.get("file")
    text = request.form.get("values", "")
    if upload is not None and upload.filename:
        try:
            text = upload.read().decode("utf-8-sig") + "\n" + text
        except UnicodeDecodeError:
            return _page({"records": "The file is not UTF-8 text (save it as CSV UTF-8)"}, 400)
    entries, problems = suppression.parse_entries(text)
    if problems:
        shown = "; ".join(problems[:MAX_PROBLEMS_SHOWN])
        more = len(problems) - MAX_PROBLEMS_SHOWN
        suffix = f"; and {more:,} more" if more > 0 else ""
        return _page({"records": f"Nothing was saved. {shown}{suffix}"}, 400)
    if entries.lookups > suppression.MAX_LOOKUPS:
        limit = f"{suppression.MAX_LOOKUPS:,}"
        return _page({"records": f"Nothing was saved: at most {limit} APNs or addresses"}, 400)
    radar_ids = entries.radar_ids
    if entries.lookups:
        try:
            with services.client() as client:
                radar_ids = suppression.resolve(client, entries)
        except (PropertyRadarError, RedisError) as exc:
            message = f"Nothing was saved: PropertyRadar could not look the properties up ({exc})"
            return _page({"records": message}, 502)
        if not radar_ids:
            return _page({"records": "Nothing was saved: PropertyRadar found none of them"}, 400)
    try:
        created = suppression.create_list(
            db.session,
            current_user,
            request.form.get("name", ""),
            radar_ids,
            is_default=request.form.get("is_default") == "y",
        )
    except InvalidList as exc:
        return _page(exc.errors, 400)
    scope = "every job of yours" if created.is_default else "the searches you choose it for"
    looked_up = f" (from {entries.lookups:,} APNs or addresses)" if entries.lookups else ""
    flash(
        f"Saved “{created.name}”: {len(radar_ids):,} RadarIDs{looked_up}, skipped by {scope}.",
        "success",
    )
    return redirect(url_for("lists.index"))


@bp.post("/<list_id>/default")
def set_default(list_id: str) -> Response:
    """Make a list apply to every job of its owner, or stop it doing so."""
    found = _list_or_404(list_id)
    suppression.set_default(db.session, found, request.form.get("is_default") == "y")
    flash(
        f"“{found.name}” now applies to "
        + ("every job." if found.is_default else "the searches that choose it."),
        "success",
    )
    return redirect(url_for("lists.index"))


@bp.post("/<list_id>/delete")
def delete(list_id: str) -> Response:
    """Forget a list; jobs that used it keep their counts."""
    found = _list_or_404(list_id)
    name = found.name
    suppression.delete_list(db.session, found)
    flash(f"Deleted “{name}”.", "success")
    return redirect(url_for("lists.index"))
