"""The search form: plain fields in, PropertyRadar criteria out.

Users should never have to know the criteria JSON. The form validates what a person can
get wrong (a 3-digit FIPS code, min above max), then :meth:`SearchForm.criteria` builds
the criteria list and runs the catalogue's own ``validate_criteria`` so the form and the
API accept exactly the same searches.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from flask_login import current_user
from flask_wtf import FlaskForm

# SelectChoice is new in WTForms 3.3; the newest stub package (types-WTForms 3.2.1) lacks it.
from wtforms import (  # type: ignore[attr-defined]
    BooleanField,
    DecimalField,
    Field,
    HiddenField,
    IntegerField,
    RadioField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
)
from wtforms.validators import Length, NumberRange, Optional, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from radar_app import suppression
from radar_app.defaults import JOB_NAME_MAX_LENGTH, MAX_RECORDS_LIMIT
from radar_app.extensions import db
from radar_app.propertyradar.coerce import US_STATES
from radar_app.propertyradar.counties import CountyError, resolve_counties
from radar_app.propertyradar.criteria import (
    FORECLOSURE_STAGES,
    LEAD_FIELDS,
    MAX_FIELDS,
    PROPERTY_TYPES,
    describe_criteria,
    printable,
    resolve_fields,
    text_problem,
    validate_criteria,
)
from radar_app.propertyradar.errors import CriteriaError
from radar_app.searches import SearchSpec

# Characters in a box that takes a list (counties, ZIP codes), before it is split.
LIST_TEXT_MAX_LENGTH = 1000

# Code → display name, from the one table the client uses to read state names.
STATE_NAMES: dict[str, str] = dict(
    sorted(
        (code, " ".join(w if w == "of" else w.capitalize() for w in name.split()))
        for name, code in US_STATES.items()
    )
)

# Tri-state choices for yes/no criteria: "" leaves the criterion out of the search.
YES_NO_ANY = [SelectChoice("", "Any"), SelectChoice("1", "Yes"), SelectChoice("0", "No")]
OCCUPANCY = [
    SelectChoice("", "Any owner"),
    SelectChoice("1", "Owner-occupied"),
    SelectChoice("0", "Absentee owner"),
]

_SPLIT_RE = re.compile(r"[,;\s]+")


def split_list(text: str | None, *, on_whitespace: bool = True) -> list[str]:
    """Items of a comma-separated (and, unless told otherwise, space-separated) list."""
    if not text:
        return []
    pattern = _SPLIT_RE if on_whitespace else re.compile(r"[,;]+")
    return [item.strip() for item in pattern.split(text) if item.strip()]


def _list_of(pattern: str, message: str, *, limit: int = 50) -> Callable[[FlaskForm, Field], None]:
    regex = re.compile(pattern)

    def check(_form: FlaskForm, field: Field) -> None:
        items = split_list(field.data)
        bad = [item for item in items if not regex.fullmatch(item)]
        if bad:
            raise ValidationError(f"{message} (not {', '.join(printable(b) for b in bad[:3])})")
        if len(items) > limit:
            raise ValidationError(f"At most {limit} values")

    return check


MAX_COUNTIES = 50


def _counties(form: FlaskForm, field: Field) -> None:
    """County names are looked up in the chosen states; the search sends FIPS codes."""
    try:
        fips = resolve_counties(field.data, form.state.data or None)
    except CountyError as exc:
        raise ValidationError(str(exc)) from exc
    if len(fips) > MAX_COUNTIES:
        raise ValidationError(f"At most {MAX_COUNTIES} counties")


@dataclass(frozen=True)
class RangeSpec:
    """A min/max pair of form fields that becomes one ``[[min, max]]`` range criterion."""

    criterion: str
    key: str
    label: str
    unit: str = ""

    @property
    def min_field(self) -> str:
        return f"{self.key}_min"

    @property
    def max_field(self) -> str:
        return f"{self.key}_max"


RANGES: list[RangeSpec] = [
    RangeSpec("Beds", "beds", "Bedrooms"),
    RangeSpec("Baths", "baths", "Bathrooms"),
    RangeSpec("SqFt", "sqft", "Square feet"),
    RangeSpec("YearBuilt", "year_built", "Year built"),
    RangeSpec("AVM", "avm", "Estimated value (AVM)", "$"),
    RangeSpec("EquityPercent", "equity_percent", "Equity", "%"),
    RangeSpec("AvailableEquity", "available_equity", "Available equity", "$"),
]
# Groups shown as fieldsets; the template walks these to lay out the ranges.
PROPERTY_RANGES = RANGES[:4]
VALUE_RANGES = RANGES[4:]


def _between(lo: int, hi: int) -> list[Optional | NumberRange]:
    return [Optional(), NumberRange(min=lo, max=hi, message=f"Between {lo:,} and {hi:,}")]


def _no_nul(form: FlaskForm, field: Any) -> None:
    # PostgreSQL cannot store NUL in text, nor any database a lone surrogate; a browser
    # never sends either on purpose (the criteria catalogue checks its own values).
    if field.data and text_problem(str(field.data)):
        raise ValidationError("Contains a character that is not allowed.")


class FiniteDecimalField(DecimalField):
    """A DecimalField that refuses what Decimal reads but no person means: "NaN", "sNaN"
    and "Infinity". Left in, the range check compares them and a signalling NaN raises
    InvalidOperation (a 500) instead of failing validation."""

    def process_formdata(self, valuelist: list[Any]) -> None:
        super().process_formdata(valuelist)
        if self.data is not None and not self.data.is_finite():
            self.data = None
            raise ValueError("Enter a number, like 2.5")


class SearchForm(FlaskForm):
    """Every field is optional except that some location must be given."""

    # Location
    state = SelectMultipleField(
        "State",
        choices=[SelectChoice(code, f"{name} ({code})") for code, name in STATE_NAMES.items()],
        validate_choice=True,
        description="Hold Ctrl (⌘ on a Mac) to choose several",
    )
    county = StringField(
        "County",
        validators=[Length(max=LIST_TEXT_MAX_LENGTH), _counties],
        description="Names or 5-digit FIPS codes, e.g. Multnomah or 41051; separate with commas",
    )
    city = StringField(
        "City",
        validators=[Length(max=300)],
        description="Separate several cities with commas",
    )
    zips = StringField(
        "ZIP codes",
        validators=[
            Length(max=LIST_TEXT_MAX_LENGTH),
            _list_of(r"\d{5}", "ZIP codes have 5 digits", limit=200),
        ],
        description="Separate with commas or spaces",
    )

    # Property
    property_types = SelectMultipleField(
        "Property type",
        choices=[SelectChoice(code, label) for code, label in PROPERTY_TYPES.items()],
        widget=ListWidget(prefix_label=False),
        option_widget=CheckboxInput(),
        validate_choice=True,
    )
    beds_min = IntegerField("Min", validators=_between(0, 100))
    beds_max = IntegerField("Max", validators=_between(0, 100))
    baths_min = FiniteDecimalField("Min", places=None, validators=_between(0, 100))
    baths_max = FiniteDecimalField("Max", places=None, validators=_between(0, 100))
    sqft_min = IntegerField("Min", validators=_between(0, 1_000_000))
    sqft_max = IntegerField("Max", validators=_between(0, 1_000_000))
    year_built_min = IntegerField("Min", validators=_between(1600, 2100))
    year_built_max = IntegerField("Max", validators=_between(1600, 2100))

    # Owner
    occupancy = RadioField("Occupancy", choices=OCCUPANCY, default="")

    # Value and equity
    avm_min = IntegerField("Min", validators=_between(0, 1_000_000_000))
    avm_max = IntegerField("Max", validators=_between(0, 1_000_000_000))
    equity_percent_min = FiniteDecimalField("Min", places=None, validators=_between(-1000, 100))
    equity_percent_max = FiniteDecimalField("Max", places=None, validators=_between(-1000, 100))
    # Negative available equity means the owner owes more than the home is worth.
    available_equity_min = IntegerField("Min", validators=_between(-1_000_000_000, 1_000_000_000))
    available_equity_max = IntegerField("Max", validators=_between(-1_000_000_000, 1_000_000_000))

    # Distress
    in_foreclosure = SelectField("In foreclosure", choices=YES_NO_ANY, default="")
    foreclosure_stages = SelectMultipleField(
        "Foreclosure stage",
        choices=[SelectChoice(stage) for stage in FORECLOSURE_STAGES],
        widget=ListWidget(prefix_label=False),
        option_widget=CheckboxInput(),
        validate_choice=True,
    )
    tax_delinquent = SelectField("Tax delinquent", choices=YES_NO_ANY, default="")
    listed_for_sale = SelectField("Listed for sale", choices=YES_NO_ANY, default="")

    # Job
    name = StringField(
        "Job name",
        validators=[Length(max=JOB_NAME_MAX_LENGTH), _no_nul],
        description="Optional; defaults to a summary of the search",
    )
    max_records = IntegerField(
        "Max records",
        validators=[
            Optional(),
            NumberRange(
                min=1, max=MAX_RECORDS_LIMIT, message=f"Between 1 and {MAX_RECORDS_LIMIT:,}"
            ),
        ],
        description="Optional cap on how many records to buy",
    )
    background = BooleanField("Process in background", default=True)

    # What to buy (cost control): reuse stored leads unless told otherwise, and which fields.
    refresh_all = BooleanField("Refresh everything (buy again what was stored before this search)")
    field_set = RadioField(
        "Fields",
        choices=[SelectChoice("essentials", "Lead essentials"), SelectChoice("custom", "Custom")],
        default="essentials",
    )
    custom_fields = StringField(
        "Custom fields",
        validators=[Length(max=2000)],
        description=(
            f"Field names separated by commas, e.g. AnnualTaxes, EstimatedRent. The "
            f"{len(LEAD_FIELDS)} lead essentials are always included; at most {MAX_FIELDS} "
            "in all. The price per record is the same whatever the fields."
        ),
    )

    # A suppression list to skip besides the user's default lists (its public id);
    # the choices are the user's lists (see __init__).
    suppression_list = SelectField(
        "Suppression list", choices=[SelectChoice("", "None")], default="", validate_choice=True
    )

    # The saved search the form was opened from (its public id), if any: a job started
    # from the form unchanged is linked to it, and "Update saved search" replaces it.
    saved_search = HiddenField(validators=[Length(max=32)])

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        lists = (
            suppression.own_lists(db.session, current_user.id)
            if current_user.is_authenticated
            else []
        )
        self._list_ids = {found.list_id: found.id for found in lists}
        self.default_lists = [found.name for found in lists if found.is_default]
        self.suppression_list.choices = [SelectChoice("", "None")] + [
            SelectChoice(found.list_id, found.name) for found in lists if not found.is_default
        ]

    def suppression_list_id(self) -> int | None:
        """The chosen suppression list's row id (None: only the default lists)."""
        return self._list_ids.get(self.suppression_list.data or "")

    def choose_list(self, row_id: int | None) -> None:
        """Select the list with this row id (a stored search's), if it is still offered."""
        by_row = {value: key for key, value in self._list_ids.items()}
        self.suppression_list.data = by_row.get(row_id, "") if row_id is not None else ""

    def validate(self, extra_validators: Any = None) -> bool:
        valid = super().validate(extra_validators)
        for spec in RANGES:
            lo, hi = self[spec.min_field], self[spec.max_field]
            if lo.data is not None and hi.data is not None and lo.data > hi.data and not hi.errors:
                hi.errors.append("Must not be below the minimum")
                valid = False
        if not (self.state.data or self.county.data or self.city.data or self.zips.data):
            self.form_errors.append("Choose where to search: a state, county, city or ZIP code.")
            valid = False
        if self.field_set.data == "custom" and not self.custom_fields.errors:
            try:
                self.chosen_fields()
            except CriteriaError as exc:
                # The stubs type errors as a Sequence; validate() has just made it a list.
                cast(list[str], self.custom_fields.errors).append(
                    exc.errors.get("fields", str(exc))
                )
                valid = False
        if valid:
            try:
                self.criteria()
            except CriteriaError as exc:
                self._attach_criteria_errors(exc)
                valid = False
        return valid

    def spec(self) -> SearchSpec:
        """The search to keep or compare with a saved one; call after validate(). Without
        a name, the summary a job would be named by."""
        criteria = self.criteria()
        return SearchSpec(
            name=(self.name.data or "").strip()
            or describe_criteria(criteria)[:JOB_NAME_MAX_LENGTH],
            criteria=criteria,
            fields=resolve_fields(self.chosen_fields()),
            max_records=self.max_records.data,
            refresh_all=bool(self.refresh_all.data),
            suppression_list_id=self.suppression_list_id(),
        )

    def chosen_fields(self) -> list[str] | None:
        """The fields to buy, for ``create_job(fields=...)``: None means the lead essentials.

        Raises:
            CriteriaError: an unknown name, too many fields or none at all
                (``errors["fields"]`` says which).
        """
        if self.field_set.data != "custom":
            return None
        names = list(dict.fromkeys(split_list(self.custom_fields.data)))
        if not names:
            raise CriteriaError(
                {"fields": "List at least one field name, or choose Lead essentials"}
            )
        resolve_fields(names)  # the same check the API makes
        return names

    def _criteria_items(self) -> list[tuple[str, dict[str, Any]]]:
        """(form field, criterion) pairs, in the order the search lists them."""
        items: list[tuple[str, dict[str, Any]]] = []

        def add(field: str, name: str, value: list[Any]) -> None:
            items.append((field, {"name": name, "value": value}))

        if self.state.data:
            add("state", "State", list(self.state.data))
        if counties := self.county_fips():
            add("county", "County", counties)
        # City names contain spaces ("Lake Oswego"), so only commas separate them.
        if cities := split_list(self.city.data, on_whitespace=False):
            add("city", "City", cities)
        if zips := split_list(self.zips.data):
            add("zips", "ZipFive", zips)
        if self.property_types.data:
            ptype = {"name": "PType", "value": list(self.property_types.data)}
            add("property_types", "PropertyType", [ptype])
        for spec in PROPERTY_RANGES:
            self._add_range(spec, add)
        if self.occupancy.data in ("0", "1"):
            add("occupancy", "isSameMailingOrExempt", [int(self.occupancy.data)])
        for spec in VALUE_RANGES:
            self._add_range(spec, add)
        if self.in_foreclosure.data in ("0", "1"):
            add("in_foreclosure", "inForeclosure", [int(self.in_foreclosure.data)])
        if self.foreclosure_stages.data:
            add("foreclosure_stages", "ForeclosureStage", list(self.foreclosure_stages.data))
        if self.tax_delinquent.data in ("0", "1"):
            add("tax_delinquent", "inTaxDelinquency", [int(self.tax_delinquent.data)])
        if self.listed_for_sale.data in ("0", "1"):
            add("listed_for_sale", "isListedForSale", [int(self.listed_for_sale.data)])
        return items

    def county_fips(self) -> list[str]:
        """The County criterion's FIPS codes (names resolved); [] when none or invalid."""
        try:
            return resolve_counties(self.county.data, self.state.data or None)
        except CountyError:
            return []  # the field's validator has said why

    def _add_range(self, spec: RangeSpec, add: Any) -> None:
        lo, hi = _plain(self[spec.min_field].data), _plain(self[spec.max_field].data)
        if lo is not None or hi is not None:
            add(spec.min_field, spec.criterion, [[lo, hi]])

    def criteria(self) -> list[dict[str, Any]]:
        """The search as normalized PropertyRadar criteria.

        Raises:
            CriteriaError: the catalogue rejected a value (keys are criteria paths).
        """
        return validate_criteria([item for _, item in self._criteria_items()])

    def _attach_criteria_errors(self, exc: CriteriaError) -> None:
        fields = [field for field, _ in self._criteria_items()]
        for path, message in exc.errors.items():
            match = re.match(r"criteria\[(\d+)\]", path)
            index = int(match.group(1)) if match else -1
            if 0 <= index < len(fields):
                self[fields[index]].errors.append(message)
            else:
                self.form_errors.append(message)

    @property
    def all_errors(self) -> list[tuple[str, str]]:
        """(label, message) for every problem, for places that cannot show them inline."""
        out = [("", message) for message in self.form_errors]
        for field in self:
            if field.name == "csrf_token":
                continue
            label = _field_label(self, field.name)
            out.extend((label, message) for message in field.errors)
        return out


def _field_label(form: SearchForm, name: str) -> str:
    for spec in RANGES:
        if name == spec.min_field:
            return f"{spec.label} (min)"
        if name == spec.max_field:
            return f"{spec.label} (max)"
    return str(form[name].label.text)


def _plain(value: Decimal | int | None) -> int | float | None:
    """Decimal fields give Decimal; criteria want plain JSON numbers."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


# Criterion name -> the form field that shows it, for the yes/no and list criteria; the
# ranges come from RANGES. The inverse of SearchForm._criteria_items.
_FLAG_FIELDS = {
    "isSameMailingOrExempt": "occupancy",
    "inForeclosure": "in_foreclosure",
    "inTaxDelinquency": "tax_delinquent",
    "isListedForSale": "listed_for_sale",
}
_RANGE_BY_CRITERION = {spec.criterion: spec for spec in RANGES}


def prefill(spec: SearchSpec) -> tuple[dict[str, Any], list[str]]:
    """The search form's data for a search as stored (a job's or a saved search's
    normalized criteria), and the names of the criteria the form has no field for (a
    search made through the API can use any of PropertyRadar's): those are left out.

    ``SearchForm(formdata=None, data=...)`` shows it; submitting it unchanged gives back
    the same search."""
    data: dict[str, Any] = {
        "name": spec.name,
        "max_records": spec.max_records,
        "refresh_all": spec.refresh_all,
    }
    if spec.fields:
        data["field_set"] = "custom"
        data["custom_fields"] = ", ".join(spec.fields)
    unshown: list[str] = []
    for criterion in spec.criteria:
        key, value = criterion.get("name"), criterion.get("value") or []
        if key == "State":
            data["state"] = list(value)
        elif key == "County":
            data["county"] = ", ".join(str(code) for code in value)
        elif key == "City":
            data["city"] = ", ".join(str(city) for city in value)
        elif key == "ZipFive":
            data["zips"] = ", ".join(f"{int(zip_code):05d}" for zip_code in value)
        elif key == "PropertyType" and all(
            isinstance(item, dict) and item.get("name") == "PType" for item in value
        ):
            data["property_types"] = [code for item in value for code in item.get("value", [])]
        elif key == "ForeclosureStage":
            data["foreclosure_stages"] = list(value)
        elif key in _FLAG_FIELDS and value in ([0], [1]):
            data[_FLAG_FIELDS[key]] = str(value[0])
        elif key in _RANGE_BY_CRITERION and len(value) == 1 and len(value[0]) == 2:
            pair = _RANGE_BY_CRITERION[key]
            data[pair.min_field], data[pair.max_field] = value[0]
        else:
            unshown.append(str(key))
    return data, unshown
