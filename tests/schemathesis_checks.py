"""Schemathesis checks of our own, for the in-process run (tests/test_openapi.py) and the CLI
run (tests/test_schemathesis_live.py loads this module with SCHEMATHESIS_HOOKS).

positive_data_acceptance holds the document to the server in the other direction from the
response checks: a request the document calls valid must not be refused. One kind of refusal
is allowed: a 400 whose every field is a criterion's ``value`` (``criteria[0].value``) or a
repeated criterion name, for the rules the catalogue checks that JSON Schema cannot state (a
range's min <= max and one end at least, a date that exists, a from-date before its to-date,
each criterion at most once), or for PropertyRadar's own verdict on a preview's values (a
code the catalogue does not know to be closed); the document says so. A 400 on anything
else (the name, max_records, fields, refresh_all, the number of criteria or values, a query
parameter) fails the check; but for GET /api/leads an upper bound below its lower one, and
an `after` cursor the server did not issue.
"""

from __future__ import annotations

import json
import re

import schemathesis
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.specs.openapi.checks import positive_data_acceptance

_CRITERION_VALUE = re.compile(r"^criteria\[\d+\]\.value$")
_CRITERION_NAME = re.compile(r"^criteria\[\d+\]\.name$")


def _refused_for_criterion_values_only(response) -> bool:
    if response.status_code != 400:
        return False
    try:
        body = json.loads(response.content)
        fields = body.get("fields")
    except (ValueError, AttributeError):
        return False
    if body.get("error") == "PropertyRadar rejected the search":
        return True
    return bool(fields) and all(
        _CRITERION_VALUE.match(path)
        # GET /api/leads: an upper bound below its lower one; a cursor not the server's.
        or problem.endswith("must not be below the lower bound")
        or path == "after"
        or (_CRITERION_NAME.match(path) and problem.startswith("Duplicate criterion"))
        for path, problem in fields.items()
    )


@schemathesis.check
def positive_data_accepted(ctx, response, case) -> bool | None:
    """positive_data_acceptance, except for the criterion-value rules beyond JSON Schema."""
    try:
        return positive_data_acceptance(ctx, response, case)
    except RejectedPositiveData:
        if _refused_for_criterion_values_only(response):
            return None
        raise
