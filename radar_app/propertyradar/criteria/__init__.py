"""PropertyRadar search criteria and fields: what may be asked, checked and summarized here.

One concept per module, in the order they depend on each other:

- :mod:`.catalogue`: the criteria PropertyRadar knows (names, value shapes by kind, the
  closed sets such as property types and foreclosure stages) and the input limits
  (``MAX_CRITERIA``, ``MAX_VALUES_PER_CRITERION``, ...). Data only, no checks.
- :mod:`.text`: whether a text can be stored and sent (``text_problem``) and how to quote
  a user's input safely in a message (``printable``); used by every check that quotes.
- :mod:`.validate`: a search checked against the catalogue and normalized, every problem
  at once as a ``CriteriaError`` keyed by field path (``criteria[2].value``).
- :mod:`.describe`: a search as a short human summary for lists and pages.
- :mod:`.fields`: the other half of a request, the Fields a purchase names: the lead
  essentials, the known field names and ``resolve_fields`` for a job's custom list.

The names other modules use are re-exported here, so callers import from
``radar_app.propertyradar.criteria`` without knowing the rooms.
"""

__all__ = [
    # catalogue
    "BOOLEAN",
    "CRITERIA",
    "DATE",
    "DATE_PRESETS",
    "FORECLOSURE_STAGES",
    "KINDS",
    "LIST",
    "LISTING_STATUSES",
    "MAX_CRITERIA",
    "MAX_RANGE_NUMBER",
    "MAX_RANGES_PER_CRITERION",
    "MAX_VALUE_LENGTH",
    "MAX_VALUES_PER_CRITERION",
    "MULTI",
    "OWNERSHIP_TYPES",
    "PREFIX",
    "PROPERTY_TYPE",
    "PROPERTY_TYPES",
    "RANGE",
    "CriterionSpec",
    "max_values",
    # text
    "printable",
    "text_problem",
    # validate
    "suggest_name",
    "validate_criteria",
    # describe
    "describe_criteria",
    # fields
    "FIELD_SETS",
    "KNOWN_FIELDS",
    "LEAD_FIELDS",
    "MAX_FIELDS",
    "resolve_fields",
]

from .catalogue import (
    BOOLEAN,
    CRITERIA,
    DATE,
    DATE_PRESETS,
    FORECLOSURE_STAGES,
    KINDS,
    LIST,
    LISTING_STATUSES,
    MAX_CRITERIA,
    MAX_RANGE_NUMBER,
    MAX_RANGES_PER_CRITERION,
    MAX_VALUE_LENGTH,
    MAX_VALUES_PER_CRITERION,
    MULTI,
    OWNERSHIP_TYPES,
    PREFIX,
    PROPERTY_TYPE,
    PROPERTY_TYPES,
    RANGE,
    CriterionSpec,
    max_values,
)
from .describe import describe_criteria
from .fields import FIELD_SETS, KNOWN_FIELDS, LEAD_FIELDS, MAX_FIELDS, resolve_fields
from .text import printable, text_problem
from .validate import suggest_name, validate_criteria
