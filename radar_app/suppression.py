"""Suppression lists: RadarIDs a user must never buy (issue 12, item 4).

A job drops the suppressed RadarIDs of its snapshot before any Purchase=1 request, so
they are never billed; they count as `suppressed` on the job and in the preview. The
lists that apply to a job are its owner's default lists and the one list the job (or the
saved search it ran) names.

Lists hold RadarIDs: the free snapshot a job takes before buying lists only RadarIDs, so
a RadarID is what can be matched before paying for a record. An upload may name
properties by APN (with county FIPS and state) or by street address (with ZIP) instead:
those are turned into RadarIDs when the list is made, by free searches (Purchase=0,
Fields=RadarID) on the APN or Address criterion, grouped by county or ZIP
(:func:`resolve`).
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from radar_app.defaults import JOB_NAME_MAX_LENGTH
from radar_app.fielderrors import FieldErrors
from radar_app.models import DbSession, SuppressedRecord, SuppressionList, User
from radar_app.propertyradar.client import PropertyRadarClient
from radar_app.propertyradar.coerce import RADAR_ID_MAX_LENGTH, to_fips, to_state, to_zip
from radar_app.propertyradar.criteria import text_problem

# RadarIDs on one list: a do-not-contact list of a large operation fits many times over.
MAX_RECORDS_PER_LIST = 200_000
# Problems listed back to the user from one upload; the rest are counted.
MAX_PROBLEMS_SHOWN = 10
# RadarIDs as PropertyRadar writes them (e.g. "P8A0E18D"): letters and digits.
_RADAR_ID = re.compile(rf"[A-Za-z0-9]{{1,{RADAR_ID_MAX_LENGTH}}}")
_SEPARATORS = re.compile(r"[\s,;]+")
# RadarIDs per free lookup request (PROPERTYRADAR_SNAPSHOT_PAGE_SIZE's default).
_SNAPSHOT_PAGE = 1000
# Rows written to the database per INSERT.
_INSERT_BATCH = 1000


class InvalidList(FieldErrors):
    """What is wrong with a list, by field (name, records)."""


def parse_radar_ids(text: str) -> tuple[list[str], list[str]]:
    """The RadarIDs in an upload or a paste, in order without repeats, and what could not
    be read. A CSV with a header naming a RadarID column gives that column (so a leads
    export can be uploaded as it is); anything else is read as values separated by
    commas, semicolons, spaces or lines."""
    problems: list[str] = []
    values = _radar_id_column(text)
    if values is None:
        values = [
            (number, value)
            for number, line in enumerate(text.lstrip("\ufeff").splitlines(), 1)
            for value in _SEPARATORS.split(line)
        ]
    found: dict[str, None] = {}
    for line, value in values:
        value = value.strip().strip('"')
        if not value:
            continue
        if _RADAR_ID.fullmatch(value):
            found[value] = None
        else:
            problems.append(f"line {line}: {value[:40]!r} is not a RadarID")
    return list(found), problems


def _radar_id_column(text: str) -> list[tuple[int, str]] | None:
    first_line = text.lstrip("\ufeff").split("\n", 1)[0]
    header = [cell.strip().strip('"').lower() for cell in first_line.split(",")]
    if "radarid" not in header and "radar_id" not in header:
        return None
    column = header.index("radarid" if "radarid" in header else "radar_id")
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    next(reader)
    return [(number, row[column]) for number, row in enumerate(reader, 2) if len(row) > column]


@dataclass(frozen=True)
class Entries:
    """What an upload names: RadarIDs, and properties to look up by APN or address."""

    radar_ids: list[str]
    # (state, county FIPS) -> APNs; ZIP -> street addresses
    apns: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    addresses: dict[str, list[str]] = field(default_factory=dict)

    @property
    def lookups(self) -> int:
        return sum(map(len, self.apns.values())) + sum(map(len, self.addresses.values()))


# APN or address rows one upload may name: each group of them is a free search or more.
MAX_LOOKUPS = 5_000
# Values per criterion in one search (the criteria catalogue's limit).
_LOOKUP_BATCH = 1000


def _header(text: str) -> list[str]:
    first_line = text.lstrip("\ufeff").split("\n", 1)[0]
    return [cell.strip().strip('"').lower().replace(" ", "") for cell in first_line.split(",")]


def _column(header: list[str], *names: str) -> int | None:
    return next((header.index(name) for name in names if name in header), None)


def parse_entries(text: str) -> tuple[Entries, list[str]]:
    """An upload or paste as RadarIDs (see parse_radar_ids), or, for a CSV with an APN
    column (and County FIPS and State columns) or an Address column (and a ZIP column),
    the properties it names; and what could not be read."""
    header = _header(text)
    apn, address = _column(header, "apn"), _column(header, "address", "siteaddress")
    if _column(header, "radarid", "radar_id") is not None or (apn is None and address is None):
        radar_ids, unreadable = parse_radar_ids(text)
        return Entries(radar_ids), unreadable
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))[1:]
    problems: list[str] = []
    entries = Entries([])
    if apn is not None:
        county = _column(header, "countyfips", "county", "fips")
        state = _column(header, "state")
        if county is None or state is None:
            return entries, ["An APN column needs County FIPS and State columns beside it"]
        for number, row in enumerate(rows, 2):
            cells = [row[i].strip() if i < len(row) else "" for i in (apn, county, state)]
            if not any(cells):
                continue
            fips, code = to_fips(cells[1]), to_state(cells[2])
            if not cells[0] or fips is None or code is None or text_problem(cells[0]):
                problems.append(f"line {number}: needs an APN, a county FIPS code and a state")
                continue
            entries.apns.setdefault((code, fips), []).append(cells[0])
        return entries, problems
    zip_column = _column(header, "zip", "zipfive", "zipcode")
    if zip_column is None:
        return entries, ["An Address column needs a ZIP column beside it"]
    assert address is not None
    for number, row in enumerate(rows, 2):
        street = row[address].strip() if address < len(row) else ""
        zip_code = to_zip(row[zip_column].strip()) if zip_column < len(row) else None
        if not street and zip_column >= len(row):
            continue
        if not street or zip_code is None or text_problem(street):
            problems.append(f"line {number}: needs a street address and a 5-digit ZIP")
            continue
        entries.addresses.setdefault(zip_code, []).append(street)
    return entries, problems


def resolve(client: PropertyRadarClient, entries: Entries) -> list[str]:
    """Every RadarID the entries name: theirs, and those PropertyRadar's free searches
    find for their APNs and addresses (a prefix match, as PropertyRadar's criteria are:
    "12 Main St" also finds "12 Main St Apt 3"). Raises PropertyRadarError."""
    found: dict[str, None] = dict.fromkeys(entries.radar_ids)
    searches: list[list[dict[str, Any]]] = []
    for (state, fips), apns in entries.apns.items():
        for offset in range(0, len(apns), _LOOKUP_BATCH):
            searches.append([
                {"name": "State", "value": [state]}, {"name": "County", "value": [fips]},
                {"name": "APN", "value": apns[offset : offset + _LOOKUP_BATCH]},
            ])  # fmt: skip
    for zip_code, streets in entries.addresses.items():
        for offset in range(0, len(streets), _LOOKUP_BATCH):
            searches.append([
                {"name": "ZipFive", "value": [zip_code]},
                {"name": "Address", "value": streets[offset : offset + _LOOKUP_BATCH]},
            ])  # fmt: skip
    for criteria in searches:
        start = 0
        while True:
            page = client.radar_ids(criteria, start, _SNAPSHOT_PAGE)
            found.update(dict.fromkeys(str(r["RadarID"]) for r in page.results if r.get("RadarID")))
            start += len(page.results)
            if not page.results or start >= page.total_result_count:
                break
    return list(found)


def create_list(
    session: DbSession, owner: User, name: str, radar_ids: list[str], *, is_default: bool
) -> SuppressionList:
    """A new list of `owner`'s with these RadarIDs.

    Raises:
        InvalidList: no name, a name the owner already uses, no RadarIDs or too many.
    """
    name = name.strip()
    errors: dict[str, str] = {}
    if not name:
        errors["name"] = "Give the list a name"
    elif len(name) > JOB_NAME_MAX_LENGTH:
        errors["name"] = f"At most {JOB_NAME_MAX_LENGTH} characters"
    elif problem := text_problem(name):
        errors["name"] = problem
    if not radar_ids:
        errors["records"] = "Upload or paste at least one RadarID"
    elif len(radar_ids) > MAX_RECORDS_PER_LIST:
        errors["records"] = f"At most {MAX_RECORDS_PER_LIST:,} RadarIDs per list"
    if errors:
        raise InvalidList(errors)
    suppression = SuppressionList(
        list_id=uuid.uuid4().hex, name=name, is_default=is_default, created_by=owner.id
    )
    session.add(suppression)
    try:
        session.flush()
    except sa.exc.IntegrityError as exc:
        session.rollback()
        raise InvalidList({"name": "You already have a list with this name"}) from exc
    for offset in range(0, len(radar_ids), _INSERT_BATCH):
        session.execute(
            sa.insert(SuppressedRecord),
            [
                {"list_id": suppression.id, "radar_id": radar_id}
                for radar_id in radar_ids[offset : offset + _INSERT_BATCH]
            ],
        )
    session.commit()
    return suppression


def set_default(session: DbSession, suppression: SuppressionList, is_default: bool) -> None:
    suppression.is_default = is_default
    session.commit()


def delete_list(session: DbSession, suppression: SuppressionList) -> None:
    """Forget the list (jobs that used it keep their counts)."""
    session.execute(sa.delete(SuppressedRecord).where(SuppressedRecord.list_id == suppression.id))
    session.delete(suppression)
    session.commit()


def visible_lists(user: User) -> sa.Select[tuple[SuppressionList]]:
    """The lists a user may see: their own, or everyone's for an admin. By name."""
    query = sa.select(SuppressionList).order_by(
        sa.func.lower(SuppressionList.name), SuppressionList.id
    )
    if not user.is_admin:
        query = query.where(SuppressionList.created_by == user.id)
    return query


def own_lists(session: DbSession, owner_id: int) -> list[SuppressionList]:
    """The lists a user can attach to a search: their own (an admin's too: their own)."""
    return list(
        session.scalars(
            sa.select(SuppressionList)
            .where(SuppressionList.created_by == owner_id)
            .order_by(sa.func.lower(SuppressionList.name))
        )
    )


def find_list(session: DbSession, user: User, list_id: str) -> SuppressionList | None:
    """The list with this public id if the user may see it; None otherwise (a 404)."""
    if "\x00" in list_id:
        return None
    found = session.scalar(sa.select(SuppressionList).where(SuppressionList.list_id == list_id))
    if found is None or (found.created_by != user.id and not user.is_admin):
        return None
    return found


def sizes(session: DbSession, lists: list[SuppressionList]) -> dict[int, int]:
    """RadarIDs per list, by list id."""
    if not lists:
        return {}
    rows = session.execute(
        sa.select(SuppressedRecord.list_id, sa.func.count())
        .where(SuppressedRecord.list_id.in_([found.id for found in lists]))
        .group_by(SuppressedRecord.list_id)
    ).tuples()
    return dict(rows.all())


def _applying(owner_id: int, list_id: int | None) -> sa.ColumnElement[bool]:
    """The lists that apply to a job of `owner_id` naming `list_id`: the owner's default
    lists and that list, if it is the owner's."""
    mine = SuppressionList.created_by == owner_id
    chosen = SuppressionList.id == list_id if list_id is not None else sa.false()
    return sa.and_(mine, sa.or_(SuppressionList.is_default, chosen))


def suppressed_radar_ids(session: DbSession, owner_id: int, list_id: int | None) -> set[str]:
    """Every RadarID a job of `owner_id` naming suppression list `list_id` must not buy."""
    return set(
        session.scalars(
            sa.select(SuppressedRecord.radar_id)
            .join(SuppressionList, SuppressionList.id == SuppressedRecord.list_id)
            .where(_applying(owner_id, list_id))
        )
    )
