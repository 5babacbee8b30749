"""The API's requests and resources, declared once as marshmallow schemas.

Each schema both does and describes: the request schemas load the bodies and queries, the
response schemas dump the replies (the operations of radar_app.api.routes name which), and
radar_app.api.openapi turns the same schemas into the document with apispec's marshmallow
plugin, so a field added, renamed or made nullable here changes the server and the document
together. A lead's fields come from radar_app.leads (CSV, model columns and JSON share that
table); the criteria and the fields to buy are described from the criteria catalogue
(radar_app.api.criteria_schema), which validates them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import current_app
from marshmallow import EXCLUDE, Schema, ValidationError, fields, pre_dump
from marshmallow.validate import Length, OneOf, Range

from radar_app import bulk, jobsearch, leads, leadsearch, pace, services, timeline, waits
from radar_app.api.criteria_schema import CRITERIA_INPUT, JOB_FIELDS
from radar_app.defaults import JOB_NAME_MAX_LENGTH, MAX_RECORDS_LIMIT
from radar_app.models import BatchJob, JobPhase, JobStatus, LedgerEntry, utcnow
from radar_app.pagination import DEFAULT_PER_PAGE, MAX_PAGE, MAX_PER_PAGE
from radar_app.propertyradar.criteria import text_problem
from radar_app.propertyradar.wait import WaitKind

_COUNT = Range(min=0)


# ------------------------------------------------------------------------- requests


class _StrictInteger(fields.Integer):
    """An integer as JSON spells one: true is not 1, 1.0 and "1" are not integers."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class _StrictBoolean(fields.Boolean):
    """true or false, not 1, 0 or "yes"."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


def _storable_text(text: str) -> None:
    if problem := text_problem(text):
        raise ValidationError(problem[0].upper() + problem[1:])


_STATUSES = [s.value for s in JobStatus]
_MAX_RECORDS_PROBLEM = f"Must be a whole number between 1 and {MAX_RECORDS_LIMIT:,}"
_NAME_PROBLEM = f"Must be a string of at most {JOB_NAME_MAX_LENGTH} characters"


class SearchSchema(Schema):
    """A preview's body. Only its shape: the criteria catalogue
    (radar_app.propertyradar.criteria) validates the criteria themselves, every problem at
    once by path, and the document describes them from the same catalogue."""

    # An unknown key (the default: raise) is a typo the caller wants to hear about.
    error_messages = {"unknown": "Unknown field"}

    criteria = fields.Raw(
        required=True,
        error_messages={"required": "Required: a list of PropertyRadar criteria"},
        metadata=CRITERIA_INPUT,
    )
    max_records = _StrictInteger(
        allow_none=True,
        load_default=None,
        validate=Range(min=1, max=MAX_RECORDS_LIMIT, error=_MAX_RECORDS_PROBLEM),
        error_messages={"invalid": _MAX_RECORDS_PROBLEM, "null": _MAX_RECORDS_PROBLEM},
        metadata={"description": "Stop after this many records (default: all matches)."},
    )
    refresh_all = _StrictBoolean(
        load_default=False,
        error_messages={"invalid": "Must be true or false", "null": "Must be true or false"},
        metadata={
            "description": "Buy every match again that was stored before this request (one "
            "another job buys meanwhile is reused: it is as fresh)."
        },
    )
    suppression_list = fields.String(
        allow_none=True,
        load_default=None,
        validate=Length(max=32),
        metadata={
            "description": "The `id` of a suppression list of the caller's: its RadarIDs "
            "are never bought (the caller's default lists always apply)."
        },
    )


class JobCreateSchema(SearchSchema):
    """A new job's body."""

    name = fields.String(
        allow_none=True,
        load_default=None,
        validate=[Length(max=JOB_NAME_MAX_LENGTH, error=_NAME_PROBLEM), _storable_text],
        error_messages={"invalid": _NAME_PROBLEM},
        metadata={
            "description": "Defaults to a summary of the criteria.",
            "pattern": "^[^\\x00]*$",
        },
    )
    # Validated by the catalogue too (radar_app.propertyradar.criteria.validate_fields).
    fields_ = fields.Raw(
        data_key="fields",
        attribute="fields",
        allow_none=True,
        load_default=None,
        metadata=JOB_FIELDS,
    )


class SavedSearchSchemaIn(JobCreateSchema):
    """A saved search's body (create or replace): a job's, with a name it is kept by."""

    name = fields.String(
        required=True,
        validate=[
            Length(min=1, max=JOB_NAME_MAX_LENGTH, error=_NAME_PROBLEM),
            _storable_text,
        ],
        error_messages={"invalid": _NAME_PROBLEM, "required": "Required: the search's name"},
        metadata={"description": "Unique among the owner's searches.", "pattern": "^[^\\x00]*$"},
    )


class PageQuerySchema(Schema):
    """?page=&per_page= of a list endpoint (the pages parse the same bounds with
    radar_app.pagination.page_args)."""

    class Meta:
        # Other query keys (a cache-buster, say) are not the API's business.
        unknown = EXCLUDE

    page = fields.Integer(
        load_default=1,
        validate=Range(min=1, max=MAX_PAGE, error=f"page must be between 1 and {MAX_PAGE:,}"),
        error_messages={"invalid": "page must be a whole number"},
    )
    per_page = fields.Integer(
        load_default=DEFAULT_PER_PAGE,
        validate=Range(
            min=1, max=MAX_PER_PAGE, error=f"per_page must be between 1 and {MAX_PER_PAGE}"
        ),
        error_messages={"invalid": "per_page must be a whole number"},
    )


# The Jobs search's parameters, from radar_app.jobsearch's table; their values are read
# (and every problem reported) by jobsearch.parse_query, as the Jobs page's are.
JobQuerySchema = PageQuerySchema.from_dict(
    {
        f.key: fields.Raw(metadata={"description": f"{f.label}: {f.help}", **f.schema})
        for f in jobsearch.FILTERS
    },
    name="JobQuerySchema",
)


class _LeadQueryBase(Schema):
    """The leads browser's parameters, from radar_app.leadsearch's tables; their values
    are read (and every problem reported) by leadsearch.parse_query."""

    class Meta:
        unknown = EXCLUDE


LeadQuerySchema = _LeadQueryBase.from_dict(
    {
        **{
            # Raw: leadsearch.parse_query reads the values; the document states them.
            f.key: fields.Raw(metadata={"description": f"{f.label}: {f.help}", **f.schema})
            for f in leadsearch.FILTERS
        },
        "sort": fields.String(
            metadata={
                "description": "The order; a leading - reverses it",
                "enum": [p + s.key for s in leadsearch.SORTS for p in ("", "-")],
            }
        ),
        # The list endpoints' own parameter: the same bounds and messages.
        "per_page": PageQuerySchema._declared_fields["per_page"],
        "after": fields.String(
            metadata={
                "description": "The previous page's next_cursor, as it was given (a cursor "
                "the server did not issue for this order is a 400)"
            }
        ),
    },
    name="LeadQuerySchema",
)
PAGE_QUERY = PageQuerySchema()
LEAD_QUERY = LeadQuerySchema()
JOB_QUERY = JobQuerySchema()


JOB_CREATE = JobCreateSchema()
SAVED_SEARCH_IN = SavedSearchSchemaIn()
SEARCH = SearchSchema()


class _JobFilterSchema(Schema):
    """A Jobs search as an object: GET /api/batch-jobs's parameters (but the page's)."""

    error_messages = {"unknown": "Unknown field"}


JobFilterSchema = _JobFilterSchema.from_dict(
    {
        f.key: fields.String(metadata={"description": f"{f.label}: {f.help}", **f.schema})
        for f in jobsearch.FILTERS
    },
    name="JobFilterSchema",
)


class BulkActionSchema(Schema):
    """A bulk retry or cancel: the jobs named by `ids`, or matching `filter`, or both (the
    named jobs the search matches); with neither, every job of the caller's."""

    error_messages = {"unknown": "Unknown field"}

    action = fields.String(
        required=True,
        validate=OneOf([a.value for a in bulk.Action], error="Must be retry or cancel"),
        error_messages={"required": "Required: retry or cancel"},
        metadata={
            "description": "retry: failed and cancelled jobs are queued again, resuming where "
            "they stopped; cancel: queued jobs are cancelled, running ones stop after their "
            "page in flight. Other jobs are skipped."
        },
    )
    ids = fields.List(
        fields.String(validate=Length(min=1, max=64)),
        load_default=None,
        validate=Length(min=1, max=bulk.BULK_LIMIT, error=f"From 1 to {bulk.BULK_LIMIT:,} job ids"),
        metadata={"description": "The jobs' `id`s; one the caller may not see is skipped"},
    )
    # Not nullable: apispec documents a nullable nested object as "or any object".
    filter = fields.Nested(
        JobFilterSchema,
        load_default=dict,
        metadata={
            "description": "A Jobs search, as GET /api/batch-jobs takes it: the newest "
            f"{bulk.BULK_LIMIT:,} matching jobs the action applies to (or, with `ids`, those "
            "of them it matches)"
        },
    )


BULK_ACTION = BulkActionSchema()


def field_problems(error: ValidationError) -> dict[str, str]:
    """marshmallow's messages as the API's ``fields``: one sentence per input key."""
    messages = error.messages if isinstance(error.messages, dict) else {"": error.messages}
    return {
        key: str(problem[0] if isinstance(problem, list) else problem)
        for key, problem in messages.items()
    }


# ------------------------------------------------------------------------ responses


class ResponseSchema(Schema):
    """A reply's body: dumped, never loaded. Every dump carries every field (null where
    nullable), so the document calls every property required."""


def _describe(text: str) -> dict[str, Any]:
    return {"description": text}


def _count(description: str | None = None, **kwargs: Any) -> fields.Integer:
    return fields.Integer(
        validate=_COUNT, metadata=_describe(description) if description else {}, **kwargs
    )


class CriterionSchema(ResponseSchema):
    """One stored (normalized) PropertyRadar criterion."""

    name = fields.String(required=True)
    value = fields.List(fields.Raw(), required=True)


class _JobAt:
    """A job with the figures that depend on the time, all taken at one instant."""

    def __init__(self, job: BatchJob, now: datetime) -> None:
        self._job = job
        self.records_per_second = job.records_per_second(now)
        # The same estimate as the job page: none until buying has a meaningful rate.
        self.eta_seconds = pace.purchase_pace(
            job, now, batch_size=current_app.config["PROPERTYRADAR_BATCH_SIZE"]
        ).seconds_left
        self.duration_seconds = job.duration_seconds(now)
        self.cost_total = round(job.cost_total, 2)
        self.created_by = job.owner.email
        self.matched = job.total_records
        self.waiting = services.job_waiting(job)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._job, name)


class WaitingSchema(ResponseSchema):
    """What a running job is waiting for right now (as its page says)."""

    kind = fields.String(
        validate=OneOf([*(k.value for k in WaitKind), waits.NO_HEARTBEAT]),
        metadata=_describe(
            "rate_limit: the shared request rate; backoff: after a 5xx, timeout or garbled "
            "answer; paused: PropertyRadar answered 429; no_heartbeat: its worker went "
            "silent and recovery will requeue it"
        ),
    )
    message = fields.String(
        metadata=_describe(
            'For people, e.g. "backing off after a 503, attempt 3 of 5, next in 8 s"'
        )
    )
    seconds = fields.Float(
        validate=Range(min=0),
        metadata=_describe("Seconds left to wait; for no_heartbeat, seconds since the last beat"),
    )


class _SearchOutSchema(ResponseSchema):
    """What a job and a saved search both hold: the search and how to buy it."""

    name = fields.String()
    criteria = fields.List(fields.Nested(CriterionSchema))
    max_records = fields.Integer(allow_none=True)
    refresh_all = fields.Boolean()
    fields_ = fields.List(
        fields.String(),
        data_key="fields",
        attribute="fields",
        allow_none=True,
        metadata=_describe("Fields bought; null for the essentials"),
    )
    suppression_list = fields.Function(
        lambda found: found.suppression_list.list_id if found.suppression_list else None,
        allow_none=True,
        metadata=_describe("The suppression list chosen besides the owner's default lists"),
    )


class JobSchema(_SearchOutSchema):
    id = fields.String(
        attribute="job_id", metadata=_describe("Public job id, used in every job URL")
    )
    status = fields.String(validate=OneOf(_STATUSES))
    total_records = _count("Matches reported by PropertyRadar; null until known", allow_none=True)
    processed_records = _count()
    success_count = _count("Leads stored for this job")
    error_count = _count()
    progress_percent = fields.Float(validate=Range(min=0, max=100))
    records_per_second = fields.Float(
        allow_none=True, metadata=_describe("This run's rate; null before any record")
    )
    eta_seconds = fields.Float(
        allow_none=True, metadata=_describe("Only while PROCESSING with a known rate")
    )
    duration_seconds = fields.Float(allow_none=True, metadata=_describe("null until started"))
    pages_fetched = _count()
    next_start = _count("Checkpoint: offset of the next page")
    attempts = _count()
    phase = fields.String(
        validate=OneOf([p.value for p in JobPhase]),
        metadata=_describe(
            "SNAPSHOT: free listing of the matches; PURCHASE: buying those not stored yet"
        ),
    )
    matched = _count("Same as total_records", allow_none=True)
    snapshot_count = _count("RadarIDs listed by the snapshot")
    reused_count = _count("Matches already stored, not bought")
    suppressed_count = _count("Matches on a suppression list, not bought")
    purchased_count = _count("Records bought")
    vanished_count = _count("Listed, but gone when bought")
    unidentified_count = _count("Bought and billed, but returned without a RadarID: not stored")
    cost_total = fields.Float(metadata=_describe("Billed so far, dollars"))
    cancel_requested = fields.Boolean()
    error_details = fields.String(allow_none=True)
    warning = fields.String(
        allow_none=True,
        metadata=_describe(
            "Set when what was stored differs from what the search first reported, with the figures"
        ),
    )
    created_by = fields.String(metadata=_describe("Owner's email"))
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    completed_at = fields.DateTime(allow_none=True)
    waiting = fields.Nested(
        WaitingSchema,
        allow_none=True,
        metadata=_describe(
            "While PROCESSING: what it is waiting for (the rate limit, a backoff, a 429 "
            "pause, a silent worker); null when it is not held back"
        ),
    )

    @pre_dump
    def _at_one_instant(self, job: BatchJob, **_: Any) -> _JobAt:
        return _JobAt(job, utcnow())


class SavedSearchSchema(_SearchOutSchema):
    id = fields.String(
        attribute="search_id", metadata=_describe("Public id, used in the search's URLs")
    )
    created_by = fields.Function(
        lambda search: search.owner.email, metadata=_describe("Owner's email")
    )
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class LogEntrySchema(ResponseSchema):
    id = fields.Integer()
    created_at = fields.DateTime()
    level = fields.String(metadata=_describe("INFO, WARNING or ERROR"))
    page = fields.Integer(allow_none=True, metadata=_describe("Page the line is about, if any"))
    message = fields.String()


class TransitionSchema(ResponseSchema):
    """One change of the job's state, or (event `create`, from_status null) its creation."""

    at = fields.DateTime()
    from_status = fields.String(allow_none=True, validate=OneOf(_STATUSES))
    to_status = fields.String(validate=OneOf(_STATUSES))
    event = fields.String(
        validate=OneOf(list(timeline.EVENT_WORDS)),
        metadata=_describe("What happened (radar_app.jobstate.Event, or create)"),
    )
    description = fields.String(attribute="what", metadata=_describe("What happened, for people"))
    actor = fields.String(
        metadata=_describe(
            'Who: a user\'s email, "admin:<email>", "worker", "recovery", "schedule" or "system"'
        )
    )
    actor_description = fields.String(attribute="who", metadata=_describe("Who, for people"))
    reason = fields.String()


class LedgerEntrySchema(ResponseSchema):
    """One purchase request of the job."""

    id = fields.Integer()
    created_at = fields.DateTime()
    page = fields.Integer(allow_none=True)
    outcome = fields.String(
        validate=OneOf([LedgerEntry.BILLED, LedgerEntry.POSSIBLY_BILLED]),
        metadata=_describe(
            "possibly_billed: the request may have been billed but its response was lost"
        ),
    )
    requested = _count("Records asked for")
    result_count = _count("Records the API billed", allow_none=True)
    total_cost = fields.Float(allow_none=True)
    request_id = fields.String(allow_none=True, metadata=_describe("PropertyRadar's request id"))
    client_request_id = fields.String(
        allow_none=True,
        metadata=_describe(
            "The id radar_app sent with the request (X-Client-Request-Id): what identifies "
            "a possibly billed request, which has no PropertyRadar id"
        ),
    )
    note = fields.String(allow_none=True)


class LedgerSchema(ResponseSchema):
    items = fields.List(fields.Nested(LedgerEntrySchema))
    purchased_records = _count()
    reused_records = _count()
    total_cost = fields.Float()
    possibly_billed_requests = _count()


class PreviewSchema(ResponseSchema):
    """What a search would match, reuse and cost, from free requests only."""

    matches = _count("Matching records (capped by max_records)")
    total_matches = _count("Matching records before the cap")
    pages = _count("Purchase requests needed")
    sampled = _count("RadarIDs looked at to count `owned`")
    owned = _count("Already stored and fresh: not bought again")
    owned_is_estimate = fields.Boolean(
        metadata=_describe("true when `owned` and `suppressed` are extrapolated from the sample")
    )
    suppressed = _count("On the caller's default suppression lists: never bought")
    to_buy = _count()
    estimated_cost = fields.Float(validate=Range(min=0))
    price_per_export = fields.Float(validate=Range(min=0))
    estimated_seconds = fields.Float(validate=Range(min=0))


class _PageSchema(ResponseSchema):
    """One page of a list resource, in the shape every list endpoint answers with."""

    page = fields.Integer(validate=Range(min=1))
    per_page = fields.Integer(validate=Range(min=1, max=MAX_PER_PAGE))
    total = _count()


class JobListSchema(_PageSchema):
    items = fields.List(fields.Nested(JobSchema))


class SavedSearchListSchema(_PageSchema):
    items = fields.List(fields.Nested(SavedSearchSchema))


class LogListSchema(_PageSchema):
    items = fields.List(fields.Nested(LogEntrySchema))


class TransitionListSchema(_PageSchema):
    items = fields.List(fields.Nested(TransitionSchema))


def _lead_field(lead_field: leads.LeadField) -> fields.Raw:
    # Raw: lead_json (radar_app.api.serializers) has already given each value its type.
    description = {"description": lead_field.description} if lead_field.description else {}
    return fields.Raw(
        allow_none=not lead_field.identifies,
        metadata={"type": lead_field.json_type, **description},
    )


LeadSchema = ResponseSchema.from_dict(
    {
        **{f.name: _lead_field(f) for f in leads.FIELDS},
        leads.CUSTOM_FIELDS_KEY: fields.Dict(
            metadata=_describe(
                "The job's custom fields (its `fields` beyond the essentials), by "
                "PropertyRadar name, with the values PropertyRadar sent (null when it sent "
                "none). Empty for a job that bought the essentials."
            )
        ),
    },
    name="LeadSchema",
)


class LeadListSchema(_PageSchema):
    items = fields.List(fields.Nested(LeadSchema))


class BrowsedLeadSchema(LeadSchema):  # type: ignore[valid-type,misc]
    first_seen_at = fields.DateTime(metadata=_describe("When the app first stored the lead"))
    last_seen_at = fields.DateTime(metadata=_describe("When a job last stored or reused it"))
    job_ids = fields.List(
        fields.String(), metadata=_describe("The caller's jobs that brought it, newest first")
    )


class BrowsedLeadPageSchema(ResponseSchema):
    items = fields.List(fields.Nested(BrowsedLeadSchema))
    count = _count(
        f"Leads that pass the filters, counted up to {leadsearch.COUNT_CAP + 1:,} "
        "(see count_is_capped)"
    )
    count_is_capped = fields.Boolean(
        metadata=_describe(f"True when more than {leadsearch.COUNT_CAP:,} leads pass")
    )
    next_cursor = fields.String(
        allow_none=True,
        metadata=_describe("Pass as `after` for the next page; null on the last page"),
    )


class ErrorSchema(ResponseSchema):
    error = fields.String(metadata=_describe("What went wrong, for people"))


class ValidationErrorSchema(ErrorSchema):
    fields_ = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        data_key="fields",
        attribute="fields",
        metadata=_describe("Problem per input path, e.g. criteria[0].value"),
    )


class ConflictSchema(ErrorSchema):
    status = fields.String(
        validate=OneOf(_STATUSES), metadata=_describe("The job's status, which did not allow it")
    )


class BulkOutcomeSchema(ResponseSchema):
    """What became of one job."""

    id = fields.String(attribute="job_id", metadata=_describe("The job's `id`"))
    result = fields.String(validate=OneOf([r.value for r in bulk.Result]))
    reason = fields.String(
        allow_none=True,
        metadata=_describe(
            "Why a job was skipped: " + ", ".join(f"`{why}`" for why in bulk.SKIP_REASONS)
        ),
    )
    name = fields.String(allow_none=True, metadata=_describe("null for an id not the caller's"))
    status = fields.String(
        allow_none=True,
        validate=OneOf(_STATUSES),
        metadata=_describe("The job's status now; null for an id not the caller's"),
    )


class BulkSummarySchema(ResponseSchema):
    """What a bulk action did, job by job."""

    action = fields.String(validate=OneOf([a.value for a in bulk.Action]))
    results = fields.List(
        fields.Nested(BulkOutcomeSchema), attribute="outcomes", metadata=_describe("In order")
    )
    changed = _count("Jobs retried, cancelled or asked to stop")
    skipped = _count("Jobs skipped (see each one's reason)")
    matching = _count(
        "Jobs the filter matched that the action applies to (null when only ids were given)",
        allow_none=True,
    )
    left_over = _count("Matching jobs beyond the limit, left as they were")
    limit = _count("The most jobs one action changes")


JOB = JobSchema()
JOB_PAGE = JobListSchema()
BULK_SUMMARY = BulkSummarySchema()
SAVED_SEARCH = SavedSearchSchema()
SAVED_SEARCH_PAGE = SavedSearchListSchema()
LOG_PAGE = LogListSchema()
TRANSITION_PAGE = TransitionListSchema()
LEAD_PAGE = LeadListSchema()
BROWSED_LEAD_PAGE = BrowsedLeadPageSchema()
LEDGER = LedgerSchema()
PREVIEW = PreviewSchema()
ERROR = ErrorSchema()
VALIDATION_ERROR = ValidationErrorSchema()
CONFLICT = ConflictSchema()
