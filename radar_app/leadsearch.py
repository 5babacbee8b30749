"""The leads browser's query (issue 12): every lead a user has across jobs, filtered,
sorted and cut into pages, for the page, the API and the CSV export alike.

A user "has" a lead when one of their jobs stored it (a job_properties link); an admin
has every lead, like every job. The filters are the table FILTERS, the orders the table
SORTS: the page's form, the API's query schema and the parser all read them, so a filter
exists everywhere or nowhere.

Pages are cut by keyset, not OFFSET: the next page starts after the last row's sort key
(an opaque cursor), so page 4,000 of a million leads costs what page 1 does. Every
order has its index (models.LEAD_INDEXES), and so has every equality filter together
with the default order; the other filters match enough leads that walking an order's
index finds a page quickly, or not (see the README's row k). The count is capped
(COUNT_CAP): "1,000+" is what a user acts on, and an exact count of a million filtered
rows is a full scan.

Needs no app or request: the bench and the tests call it with a plain session.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so
from sqlalchemy.sql.expression import ColumnElement

from radar_app import leads
from radar_app.fielderrors import FieldErrors
from radar_app.models import (
    BatchJob,
    DbSession,
    JobProperty,
    LeadKeys,
    Property,
    SavedSearch,
    User,
    lead_column,
)
from radar_app.pagination import DEFAULT_PER_PAGE, MAX_PER_PAGE
from radar_app.propertyradar.coerce import US_STATES, to_fips, to_state, to_zip
from radar_app.queryparams import DATE_SCHEMA, TEXT_SCHEMA, day
from radar_app.queryparams import text as free_text

# A count costs a probe per lead counted: 1,000 keeps it to milliseconds at a million
# leads ("1,000+" is what a page shows; at 10,000 it took 200-350 ms on PostgreSQL).
COUNT_CAP = 1_000


class InvalidLeadQuery(FieldErrors):
    """What is wrong with a leads query, by parameter."""


OWNER_KEY = LeadKeys.owner
ADDRESS_KEY = LeadKeys.address
VALUE_KEY = LeadKeys.value
EQUITY_KEY = LeadKeys.equity


@dataclass(frozen=True)
class Sort:
    key: str
    label: str
    expression: ColumnElement[Any] | so.InstrumentedAttribute[Any]
    # How a cursor's value is read back: the expression's Python type.
    decode: Callable[[Any], Any]
    descending: bool  # the natural direction; "-" in ?sort= flips it


def _datetime(value: Any) -> datetime:
    return datetime.fromisoformat(str(value))


SORTS: tuple[Sort, ...] = (
    Sort("last_seen", "Last seen", Property.last_seen_at, _datetime, True),
    Sort("value", "Value", VALUE_KEY, int, True),
    Sort("equity", "Equity %", EQUITY_KEY, float, True),
    Sort("owner", "Owner", OWNER_KEY, str, False),
    Sort("address", "Address", ADDRESS_KEY, str, False),
)
SORT_BY_KEY = {s.key: s for s in SORTS}
DEFAULT_SORT = SORTS[0]


@dataclass(frozen=True)
class Filter:
    """One query parameter: its label and help for the form and the API document, and
    how its value is read (raises ValueError with the message the user sees)."""

    key: str
    label: str
    help: str
    parse: Callable[[str], Any]
    # The values it takes, as the OpenAPI document states them (JSON Schema): every
    # value that fits is accepted.
    schema: Mapping[str, Any] = field(default_factory=lambda: TEXT_SCHEMA)
    choices: tuple[tuple[str, str], ...] = ()


def _state(value: str) -> str:
    state = to_state(value)
    if state is None:
        raise ValueError("a 2-letter state code, e.g. CA")
    return state


def _fips(value: str) -> str:
    fips = to_fips(value.strip())
    if fips is None:
        raise ValueError("a county FIPS code, e.g. 06037")
    return fips


def _zip(value: str) -> str:
    zip_code = to_zip(value.strip())
    if zip_code is None:
        raise ValueError("a 5-digit ZIP, e.g. 97204")
    return zip_code


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        value = value.strip().lower()
        if value not in allowed:
            raise ValueError("one of " + ", ".join(allowed))
        return value

    return parse


def _number(low: float, high: float, whole: bool) -> Callable[[str], float | int]:
    def parse(value: str) -> float | int:
        try:
            number: float | int = int(value) if whole else float(value)
        except ValueError:
            raise ValueError("a whole number" if whole else "a number") from None
        if not low <= number <= high:
            raise ValueError(f"between {low:,.0f} and {high:,.0f}")
        return number

    return parse


_BIG = 10**12  # dollars: more than any property is worth, less than a BigInteger holds
_STATES_SCHEMA = {"type": "string", "enum": sorted(set(US_STATES.values()))}
_FIPS_SCHEMA = {"type": "string", "pattern": r"^\d{4,5}$"}
_ZIP_SCHEMA = {"type": "string", "pattern": r"^\d{5}$"}
_EQUITY_SCHEMA = {"type": "number", "minimum": 0, "maximum": 100}
_VALUE_SCHEMA = {"type": "integer", "minimum": 0, "maximum": _BIG}

FILTERS: tuple[Filter, ...] = (
    Filter(
        "q",
        "Owner or address",
        "Starts with: an owner's name (last name first) or a street address",
        free_text,
    ),
    Filter("state", "State", "2-letter code", _state, _STATES_SCHEMA),
    Filter("county", "County FIPS", "e.g. 06037", _fips, _FIPS_SCHEMA),
    Filter("city", "City", "Exact name", free_text),
    Filter("zip", "ZIP", "5 digits", _zip, _ZIP_SCHEMA),
    Filter(
        "occupancy",
        "Occupancy",
        "Owner-occupied or absentee owner",
        _choice("owner", "absentee"),
        {"type": "string", "enum": ["owner", "absentee"]},
        (("owner", "Owner-occupied"), ("absentee", "Absentee")),
    ),
    Filter(
        "foreclosure",
        "Foreclosure",
        "In foreclosure or not",
        _choice("yes", "no"),
        {"type": "string", "enum": ["yes", "no"]},
        (("yes", "In foreclosure"), ("no", "Not in foreclosure")),
    ),
    Filter("min_equity", "Equity % from", "0-100", _number(0, 100, whole=False), _EQUITY_SCHEMA),
    Filter("max_equity", "Equity % to", "0-100", _number(0, 100, whole=False), _EQUITY_SCHEMA),
    Filter("min_value", "Value from", "Dollars (AVM)", _number(0, _BIG, whole=True), _VALUE_SCHEMA),
    Filter("max_value", "Value to", "Dollars (AVM)", _number(0, _BIG, whole=True), _VALUE_SCHEMA),
    Filter("job", "Job", "A job's id: the leads it brought", free_text),
    Filter("search", "Saved search", "A saved search's id: the leads its runs brought", free_text),
    Filter("first_seen_from", "First seen from", "YYYY-MM-DD (UTC)", day, DATE_SCHEMA),
    Filter("first_seen_to", "First seen to", "YYYY-MM-DD (UTC), inclusive", day, DATE_SCHEMA),
    Filter("last_seen_from", "Last seen from", "YYYY-MM-DD (UTC)", day, DATE_SCHEMA),
    Filter("last_seen_to", "Last seen to", "YYYY-MM-DD (UTC), inclusive", day, DATE_SCHEMA),
)
FILTER_BY_KEY = {f.key: f for f in FILTERS}


@dataclass(frozen=True)
class LeadQuery:
    """A parsed leads query: the filters given (by key, parsed), the order, the page."""

    filters: Mapping[str, Any] = field(default_factory=dict)
    sort: Sort = DEFAULT_SORT
    descending: bool = DEFAULT_SORT.descending
    per_page: int = DEFAULT_PER_PAGE
    after: tuple[Any, int] | None = None  # the cursor: the previous page's last key
    # Resolved from the job / search filters: their row ids (ownership checked).
    job_row_id: int | None = None
    search_row_id: int | None = None

    @property
    def sort_param(self) -> str:
        """The ?sort= value that gives this order."""
        flipped = self.descending != self.sort.descending
        return ("-" if flipped else "") + self.sort.key

    def args(self) -> dict[str, str]:
        """The query as URL parameters (without the cursor): links keep the filters."""
        out = {key: _arg(value) for key, value in self.filters.items()}
        if self.sort is not DEFAULT_SORT or self.descending != DEFAULT_SORT.descending:
            out["sort"] = self.sort_param
        if self.per_page != DEFAULT_PER_PAGE:
            out["per_page"] = str(self.per_page)
        return out


def _arg(value: Any) -> str:
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


# Bounds given as a pair: the upper one must not be below the lower.
_RANGES = (
    ("min_equity", "max_equity"),
    ("min_value", "max_value"),
    ("first_seen_from", "first_seen_to"),
    ("last_seen_from", "last_seen_to"),
)
# Filters that are one column's value.
_EQUALS = {"state": "state", "city": "city", "zip": "zip_code"}


def parse_query(
    session: DbSession,
    user: User,
    args: Mapping[str, str],
    *,
    per_page_default: int = DEFAULT_PER_PAGE,
) -> LeadQuery:
    """Read ?filters&sort=&per_page=&after= into a LeadQuery; every problem at once.

    Empty values are "no filter" (a form submits every field). A job or saved search
    the user may not see is reported like one that does not exist."""
    problems: dict[str, str] = {}
    filters: dict[str, Any] = {}
    for spec in FILTERS:
        raw = args.get(spec.key, "")
        if raw is None or not str(raw).strip():
            continue
        try:
            filters[spec.key] = spec.parse(str(raw))
        except ValueError as exc:
            problems[spec.key] = f"{spec.label}: {exc}"
    for low, high in _RANGES:
        if low in filters and high in filters and filters[low] > filters[high]:
            problems[high] = f"{FILTER_BY_KEY[high].label}: must not be below the lower bound"
    sort_arg = (args.get("sort") or "").strip()
    descending_flip = sort_arg.startswith("-")
    sort = SORT_BY_KEY.get(sort_arg.lstrip("-") or DEFAULT_SORT.key)
    if sort is None:
        problems["sort"] = "sort: one of " + ", ".join(s.key for s in SORTS) + " (- for reverse)"
        sort = DEFAULT_SORT
    per_page = per_page_default
    if per_page_arg := str(args.get("per_page") or "").strip():
        try:
            per_page = int(per_page_arg)
            if not 1 <= per_page <= MAX_PER_PAGE:
                problems["per_page"] = f"per_page must be between 1 and {MAX_PER_PAGE}"
        except ValueError:
            problems["per_page"] = "per_page must be a whole number"
    after = None
    if cursor := (args.get("after") or "").strip():
        after = decode_cursor(cursor, sort)
        if after is None:
            problems["after"] = "after: not a cursor of this order (start from the first page)"
    job_row_id = search_row_id = None
    if "job" in filters:
        job_row_id = _visible_id(session, user, BatchJob, BatchJob.job_id, filters["job"])
        if job_row_id is None:
            problems["job"] = "Job: you have no job with that id"
    if "search" in filters:
        search_row_id = _visible_id(
            session, user, SavedSearch, SavedSearch.search_id, filters["search"]
        )
        if search_row_id is None:
            problems["search"] = "Saved search: you have no saved search with that id"
    if problems:
        raise InvalidLeadQuery(problems)
    return LeadQuery(
        filters=filters,
        sort=sort,
        descending=sort.descending != descending_flip,
        per_page=per_page,
        after=after,
        job_row_id=job_row_id,
        search_row_id=search_row_id,
    )


def _visible_id(session: DbSession, user: User, model: Any, public: Any, value: str) -> int | None:
    row = session.execute(sa.select(model.id, model.created_by).where(public == value)).first()
    if row is None or (row.created_by != user.id and not user.is_admin):
        return None
    return int(row.id)


# --------------------------------------------------------------------------- cursor


def encode_cursor(sort: Sort, key: Any, row_id: int) -> str:
    value = key.isoformat() if isinstance(key, datetime) else key
    text = json.dumps([sort.key, value, row_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sort: Sort) -> tuple[Any, int] | None:
    """The (key, id) a cursor holds, or None if it is not one of this order's."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        sort_key, value, row_id = json.loads(base64.urlsafe_b64decode(padded))
        if sort_key != sort.key or not isinstance(row_id, int) or isinstance(row_id, bool):
            return None
        return sort.decode(value), row_id
    except (ValueError, TypeError, OverflowError):
        return None


# ---------------------------------------------------------------------------- query


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, UTC)


def _owned(user: User, query: LeadQuery, lead_id: Any) -> ColumnElement[bool] | None:
    """Whose leads: the job's or the saved search's (parse_query checked they are the
    user's), else the user's (an admin: every lead, so no condition)."""
    if query.job_row_id is not None:
        return lead_id.in_(
            sa.select(JobProperty.property_id).where(JobProperty.batch_job_id == query.job_row_id)
        )
    if query.search_row_id is not None:
        return lead_id.in_(
            sa.select(JobProperty.property_id)
            .join(BatchJob, BatchJob.id == JobProperty.batch_job_id)
            .where(BatchJob.saved_search_id == query.search_row_id)
        )
    if user.is_admin:
        return None
    return (
        sa.exists()
        .where(JobProperty.property_id == lead_id)
        .where(BatchJob.id == JobProperty.batch_job_id)
        .where(BatchJob.created_by == user.id)
    )


def _text_matches(
    query: LeadQuery, owner: ColumnElement[str], address: ColumnElement[str]
) -> ColumnElement[bool] | None:
    """The search box: the owner's name or the street address starts with it."""
    if not (text := query.filters.get("q")):
        return None
    prefix = text.lower()
    return sa.or_(_starts_with(owner, prefix), _starts_with(address, prefix))


def _column_filters(query: LeadQuery) -> list[ColumnElement[bool]]:
    """The filters on the lead's own columns (all but whose and the search box)."""
    f = query.filters
    where: list[ColumnElement[bool]] = []
    for key, name in _EQUALS.items():
        if key in f:
            where.append(lead_column(name) == f[key])
    if "county" in f:
        where.append(lead_column("county") == f["county"])  # both 5 digits (to_fips)
    if occupancy := f.get("occupancy"):
        where.append(lead_column("owner_occupied") == (occupancy == "owner"))
    if foreclosure := f.get("foreclosure"):
        # "= true", not "IS true": PostgreSQL reads only the former from an index.
        flag = lead_column("in_foreclosure")
        if foreclosure == "yes":
            where.append(flag == sa.true())
        else:
            where.append(sa.or_(flag == sa.false(), flag.is_(None)))
    # On the orders' keys, so a range is their index's (unknown is -1: below any bound,
    # and a max bound needs it kept out).
    if "min_equity" in f:
        where.append(EQUITY_KEY >= f["min_equity"])
    if "max_equity" in f:
        where.append(EQUITY_KEY.between(0, f["max_equity"]))
    if "min_value" in f:
        where.append(VALUE_KEY >= f["min_value"])
    if "max_value" in f:
        where.append(VALUE_KEY.between(0, f["max_value"]))
    seen: dict[str, so.InstrumentedAttribute[datetime]] = {
        "first_seen": Property.first_seen_at,
        "last_seen": Property.last_seen_at,
    }
    for prefix_key, column in seen.items():
        if (start := f.get(f"{prefix_key}_from")) is not None:
            where.append(column >= _day_start(start))
        if (end := f.get(f"{prefix_key}_to")) is not None and end < date.max:
            where.append(column < _day_start(end + timedelta(days=1)))
    return where


def _starts_with(key: ColumnElement[str], prefix: str) -> ColumnElement[bool]:
    """key starts with prefix, as an index range: [prefix, the next prefix)."""
    if not prefix:
        return sa.true()
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return sa.and_(key >= prefix, key < upper)


def _ordered(select: sa.Select[Any], query: LeadQuery) -> sa.Select[Any]:
    key = query.sort.expression
    if query.descending:
        return select.order_by(key.desc(), Property.id.desc())
    return select.order_by(key.asc(), Property.id.asc())


def _after(query: LeadQuery, key_value: Any, row_id: int) -> ColumnElement[bool]:
    # The first term alone is an index range; the OR inside it only breaks ties.
    key = query.sort.expression
    if query.descending:
        return sa.and_(key <= key_value, sa.or_(key < key_value, Property.id < row_id))
    return sa.and_(key >= key_value, sa.or_(key > key_value, Property.id > row_id))


def _owned_and_filtered(user: User, query: LeadQuery, *columns: Any) -> sa.Select[Any]:
    """SELECT columns of the user's leads that pass every filter but the search box."""
    select = sa.select(*columns).where(*_column_filters(query))
    if (owned := _owned(user, query, Property.id)) is not None:
        select = select.where(owned)
    return select


def filtered(user: User, query: LeadQuery, *columns: Any) -> sa.Select[Any]:
    """SELECT columns (default: Property) of the user's leads that pass the filters,
    unordered and uncut."""
    select = _owned_and_filtered(user, query, *(columns or (Property,)))
    if query.filters.get("q"):
        # The matches as a set of ids (each from its index) rather than an OR: with an
        # OR, SQLite's planner may walk the order's index instead and, for a rare
        # prefix, read the whole table (9 s for a second page at a million leads).
        select = select.where(Property.id.in_(_text_match_ids(query, Property.id)))
    return select


def _text_match_ids(query: LeadQuery, column: Any) -> sa.CompoundSelect:
    """``column`` of every lead whose owner or address starts with the search box's text,
    read from their two indexes."""
    prefix = query.filters["q"].lower()
    return sa.union_all(
        *(
            sa.select(column).select_from(Property).where(_starts_with(key, prefix))
            for key in (OWNER_KEY, ADDRESS_KEY)
        )
    )


# A search-box prefix as common as a surname ("smith": 15,000 of a million leads) is
# quick to find in its index, but a page of it then fetches, checks and sorts every
# match (100-200 ms on SQLite, 250-500 ms on PostgreSQL). Walking the order's index
# and keeping the matches finds such a page in the first few thousand leads: a walk of
# WALK_ROWS leads that fills the page has found it, since every lead past them comes
# later in the order. A walk that does not fill it (a rarer prefix) cost a few
# milliseconds, and the page is then read from the matches.
WALK_ROWS = 5_000
# Below this many matches (of anyone's leads) a walk would rarely fill a page, and
# reading the page from the matches costs no more than the walk.
WALK_MIN_MATCHES = 1_000


def _walk_first(session: DbSession, query: LeadQuery) -> bool:
    """Is the search box's text common enough to walk the order for it? Counted in its
    indexes alone, up to WALK_MIN_MATCHES."""
    if not query.filters.get("q"):
        return False
    matches = _text_match_ids(query, sa.literal(1)).limit(WALK_MIN_MATCHES).subquery()
    found = session.scalar(sa.select(sa.func.count()).select_from(matches)) or 0
    return found >= WALK_MIN_MATCHES


def _walked(user: User, query: LeadQuery, limit: int) -> sa.Select[Any]:
    """The first ``limit`` (id, sort_key) of the page among the next WALK_ROWS leads in
    order that pass the column filters."""
    key = query.sort.expression
    ahead = sa.select(
        Property.id, key.label("sort_key"), OWNER_KEY.label("owner"), ADDRESS_KEY.label("address")
    ).where(*_column_filters(query))
    if query.after is not None:
        ahead = ahead.where(_after(query, *query.after))
    window = _ordered(ahead, query).limit(WALK_ROWS).subquery()
    text = _text_matches(query, window.c.owner, window.c.address)
    assert text is not None  # walked only for a search box's text (_walk_first)
    select = sa.select(window.c.id, window.c.sort_key).where(text)
    if (owned := _owned(user, query, window.c.id)) is not None:
        select = select.where(owned)
    if query.descending:
        order = (window.c.sort_key.desc(), window.c.id.desc())
    else:
        order = (window.c.sort_key.asc(), window.c.id.asc())
    return select.order_by(*order).limit(limit)


@dataclass
class LeadPage:
    items: list[Property]
    next_cursor: str | None


def page(session: DbSession, user: User, query: LeadQuery) -> LeadPage:
    """One page of leads from the query's cursor; ``next_cursor`` is None on the last."""
    limit = query.per_page + 1  # one more: is there a next page?
    keys: Sequence[sa.Row[Any]] = ()
    if _walk_first(session, query):
        keys = session.execute(_walked(user, query, limit)).all()
    if len(keys) < limit:
        select = filtered(user, query, Property.id, query.sort.expression.label("sort_key"))
        if query.after is not None:
            select = select.where(_after(query, *query.after))
        keys = session.execute(_ordered(select, query).limit(limit)).all()
    # The page's rows are read once it is known which: sorting ids and keys rather than
    # whole rows (each with its raw record) kept SQLite's sorter small.
    shown = keys[: query.per_page]
    rows = session.scalars(sa.select(Property).where(Property.id.in_([k.id for k in shown])))
    by_id = {lead.id: lead for lead in rows}
    next_cursor = None
    if len(keys) > query.per_page:
        last = shown[-1]
        next_cursor = encode_cursor(query.sort, last.sort_key, last.id)
    return LeadPage([by_id[k.id] for k in shown], next_cursor)


def count(session: DbSession, user: User, query: LeadQuery, cap: int = COUNT_CAP) -> int:
    """How many leads pass the filters, counted up to ``cap + 1`` (more is "cap+")."""
    # The search box as an OR here, not filtered()'s set of ids: with no order to keep,
    # both databases read the two index ranges as one stream and stop at the cap, where
    # the set is gathered whole first (PostgreSQL: 90 ms against 30 for "smith").
    select = _owned_and_filtered(user, query, Property.id)
    if (text := _text_matches(query, OWNER_KEY, ADDRESS_KEY)) is not None:
        select = select.where(text)
    limited = select.limit(cap + 1).subquery()
    return int(session.scalar(sa.select(sa.func.count()).select_from(limited)) or 0)


def iter_keyset(
    session: DbSession, user: User, query: LeadQuery, columns: Sequence[Any], chunk: int
) -> Iterator[list[Sequence[Any]]]:
    """Every row of ``columns`` that passes the filters, in the query's order, read by
    keyset and yielded ``chunk`` rows at a time (the CSV export: constant memory)."""
    key = query.sort.expression
    connection = session.connection()
    after = None
    while True:
        select = filtered(user, query, *columns, key.label("sort_key"), Property.id.label("row_id"))
        if after is not None:
            select = select.where(_after(query, *after))
        rows = connection.execute(_ordered(select, query).limit(chunk)).all()
        if rows:
            yield [row[:-2] for row in rows]
        if len(rows) < chunk:
            return
        after = (rows[-1][-2], rows[-1][-1])


def custom_field_choices(session: DbSession, user: User) -> list[str]:
    """The fields the user's jobs bought beyond the essentials, for the column picker."""
    jobs = sa.select(BatchJob.fields).where(BatchJob.fields.is_not(None))
    if not user.is_admin:
        jobs = jobs.where(BatchJob.created_by == user.id)
    seen: dict[str, None] = {}
    for fields in session.scalars(jobs):
        for name in leads.custom_fields(fields):
            seen.setdefault(name, None)
    return sorted(seen)


def jobs_of(
    session: DbSession, user: User, property_ids: Sequence[int]
) -> dict[int, list[BatchJob]]:
    """For a page of leads: the user's jobs that brought each, newest first."""
    if not property_ids:
        return {}
    select = (
        sa.select(JobProperty.property_id, BatchJob)
        .join(BatchJob, BatchJob.id == JobProperty.batch_job_id)
        .where(JobProperty.property_id.in_(property_ids))
        .order_by(BatchJob.created_at.desc(), BatchJob.id.desc())
    )
    if not user.is_admin:
        select = select.where(BatchJob.created_by == user.id)
    found: dict[int, list[BatchJob]] = {}
    for property_id, job in session.execute(select):
        found.setdefault(property_id, []).append(job)
    return found


def refresh_statistics(session: DbSession) -> str:
    """ANALYZE: the planner's statistics, for SQLite (which keeps none of its own) and
    PostgreSQL (whose autovacuum may lag a bulk of new leads). What was done.

    On SQLite a full ANALYZE, not a sampled one (analysis_limit): sampled statistics misled
    the planner into sorting a state's 400,000 leads for one page (1 s instead of 5 ms).
    It takes 1.8 s at a million leads, once an hour, and writers wait it out
    (busy_timeout); open connections see it when they are recycled (pool_recycle).
    """
    session.execute(sa.text("ANALYZE"))
    session.commit()
    return f"{session.get_bind().dialect.name}: ANALYZE"
