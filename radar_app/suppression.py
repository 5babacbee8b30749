"""Suppression lists: RadarIDs a user must never buy (issue 12, item 4).

A job drops the suppressed RadarIDs of its snapshot before any Purchase=1 request, so
they are never billed; they count as `suppressed` on the job and in the preview. The
lists that apply to a job are its owner's default lists and the one list the job (or the
saved search it ran) names.

Lists hold RadarIDs: the free snapshot a job takes before buying lists only RadarIDs, so
a RadarID is what can be matched before paying for a record.
"""

from __future__ import annotations

import csv
import io
import re
import uuid

import sqlalchemy as sa

from radar_app.defaults import JOB_NAME_MAX_LENGTH
from radar_app.fielderrors import FieldErrors
from radar_app.models import DbSession, SuppressedRecord, SuppressionList, User
from radar_app.propertyradar.coerce import RADAR_ID_MAX_LENGTH
from radar_app.propertyradar.criteria import text_problem

# RadarIDs on one list: a do-not-contact list of a large operation fits many times over.
MAX_RECORDS_PER_LIST = 200_000
# Problems listed back to the user from one upload; the rest are counted.
MAX_PROBLEMS_SHOWN = 10
# RadarIDs as PropertyRadar writes them (e.g. "P8A0E18D"): letters and digits.
_RADAR_ID = re.compile(rf"[A-Za-z0-9]{{1,{RADAR_ID_MAX_LENGTH}}}")
_SEPARATORS = re.compile(r"[\s,;]+")
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
