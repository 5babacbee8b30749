"""Saved searches: a search a user keeps, to run again without rebuilding it (issue 12).

A saved search holds what a job is created from (criteria, fields, the cap, whether to
buy again what is stored); running it creates an ordinary batch job that remembers the
search. Ownership is the jobs' rule: the owner sees and changes their searches, an admin
sees everyone's, anyone else gets "no such search".

Each function owns its unit of work and commits it, like radar_app.batches.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from radar_app.defaults import JOB_NAME_MAX_LENGTH, MAX_RECORDS_LIMIT
from radar_app.fielderrors import FieldErrors
from radar_app.models import BatchJob, DbSession, SavedSearch, SuppressionList, User
from radar_app.propertyradar.criteria import resolve_fields, text_problem, validate_criteria
from radar_app.propertyradar.errors import CriteriaError


class InvalidSearch(FieldErrors):
    """What is wrong with a search, by field (name, criteria..., fields, max_records)."""


@dataclass(frozen=True)
class SearchSpec:
    """What a job is created from, as a saved search keeps it."""

    name: str
    criteria: list[dict[str, Any]]
    fields: list[str] | None = None
    max_records: int | None = None
    refresh_all: bool = False
    # A suppression list of the owner's to skip besides their default lists (its row id).
    suppression_list_id: int | None = None

    @classmethod
    def of(cls, source: SavedSearch | BatchJob) -> SearchSpec:
        return cls(
            name=source.name,
            criteria=source.criteria,
            fields=source.fields,
            max_records=source.max_records,
            refresh_all=source.refresh_all,
            suppression_list_id=source.suppression_list_id,
        )

    def job_arguments(self) -> dict[str, Any]:
        """The keyword arguments of batches.create_job for this search."""
        return {
            "criteria": self.criteria,
            "name": self.name,
            "max_records": self.max_records,
            "refresh_all": self.refresh_all,
            "fields": self.fields,
            "suppression_list_id": self.suppression_list_id,
        }

    def same_search(self, other: SearchSpec) -> bool:
        """The same records bought the same way (the name aside)."""
        return self._bought() == other._bought()

    def _bought(self) -> tuple[Any, ...]:
        return (
            self.criteria,
            self.fields,
            self.max_records,
            self.refresh_all,
            self.suppression_list_id,
        )


def checked(spec: SearchSpec) -> SearchSpec:
    """The spec normalized as a job would store it.

    Raises:
        InvalidSearch: every problem at once, keyed like the API's field errors.
    """
    errors: dict[str, str] = {}
    name = spec.name.strip()
    if not name:
        errors["name"] = "Give the search a name"
    elif len(name) > JOB_NAME_MAX_LENGTH:
        errors["name"] = f"At most {JOB_NAME_MAX_LENGTH} characters"
    elif problem := text_problem(name):
        errors["name"] = problem
    if spec.max_records is not None and not 1 <= spec.max_records <= MAX_RECORDS_LIMIT:
        errors["max_records"] = f"Between 1 and {MAX_RECORDS_LIMIT:,}"
    criteria: list[dict[str, Any]] = []
    fields: list[str] | None = None
    try:
        criteria = validate_criteria(spec.criteria)
    except CriteriaError as exc:
        errors.update(exc.errors)
    try:
        fields = resolve_fields(spec.fields)
    except CriteriaError as exc:
        errors.update(exc.errors)
    if errors:
        raise InvalidSearch(errors)
    return SearchSpec(
        name, criteria, fields, spec.max_records, spec.refresh_all, spec.suppression_list_id
    )


class NameTaken(InvalidSearch):
    """The owner already has a search of that name (a conflict, not bad input)."""

    def __init__(self) -> None:
        super().__init__({"name": NAME_TAKEN})


NAME_TAKEN = "You already have a search with this name"


def _check_list(session: DbSession, owner_id: int, spec: SearchSpec) -> None:
    if spec.suppression_list_id is None:
        return
    found = session.get(SuppressionList, spec.suppression_list_id)
    if found is None or found.created_by != owner_id:
        raise InvalidSearch({"suppression_list": "No such suppression list of yours"})


def save(session: DbSession, owner: User, spec: SearchSpec) -> SavedSearch:
    """Keep a new search for `owner`.

    Raises:
        InvalidSearch: the spec is invalid (NameTaken: the owner has a search of that name).
    """
    spec = checked(spec)
    _check_list(session, owner.id, spec)
    search = SavedSearch(search_id=uuid.uuid4().hex, created_by=owner.id)
    _assign(search, spec)
    session.add(search)
    _commit_unless_name_taken(session)
    return search


def update(session: DbSession, search: SavedSearch, spec: SearchSpec) -> SavedSearch:
    """Replace what the search holds (its jobs keep what they ran).

    Raises:
        InvalidSearch: the spec is invalid (NameTaken: another of the owner's searches has
            that name).
    """
    spec = checked(spec)
    _check_list(session, search.created_by, spec)
    _assign(search, spec)
    _commit_unless_name_taken(session)
    return search


def delete(session: DbSession, search: SavedSearch) -> None:
    """Forget the search; the jobs it ran stay, no longer linked to it."""
    session.delete(search)
    session.commit()


def _assign(search: SavedSearch, spec: SearchSpec) -> None:
    search.name = spec.name
    search.criteria = spec.criteria
    search.fields = spec.fields
    search.max_records = spec.max_records
    search.refresh_all = spec.refresh_all
    search.suppression_list_id = spec.suppression_list_id


def _commit_unless_name_taken(session: DbSession) -> None:
    # The unique constraint decides, so two saves racing for one name cannot both win.
    try:
        session.commit()
    except sa.exc.IntegrityError as exc:
        session.rollback()
        raise NameTaken() from exc


def free_name(session: DbSession, owner: User, wanted: str) -> str:
    """`wanted`, or "wanted (2)", "(3)"... : the first of them the owner has not used."""
    base = wanted.strip()[: JOB_NAME_MAX_LENGTH - 6] or "Saved search"
    taken = set(
        session.scalars(
            sa.select(SavedSearch.name).where(
                SavedSearch.created_by == owner.id, SavedSearch.name.startswith(base)
            )
        )
    )
    if wanted.strip() and wanted.strip() not in taken:
        return wanted.strip()
    number = 2
    while f"{base} ({number})" in taken:
        number += 1
    return f"{base} ({number})"


def visible_searches(user: User) -> sa.Select[tuple[SavedSearch]]:
    """Searches a user may see: their own, or everyone's for an admin. By name."""
    query = sa.select(SavedSearch).order_by(sa.func.lower(SavedSearch.name), SavedSearch.id)
    if not user.is_admin:
        query = query.where(SavedSearch.created_by == user.id)
    return query


def find_search(session: DbSession, user: User, search_id: str) -> SavedSearch | None:
    """The search with this public id if the user may see it; None otherwise (a 404 for
    both, so another user's ids cannot be probed)."""
    if "\x00" in search_id:  # PostgreSQL cannot compare text with a NUL
        return None
    search = session.scalar(sa.select(SavedSearch).where(SavedSearch.search_id == search_id))
    if search is None or (search.created_by != user.id and not user.is_admin):
        return None
    return search


def last_jobs(session: DbSession, search: SavedSearch, limit: int = 5) -> list[BatchJob]:
    """The newest jobs this search ran."""
    return list(
        session.scalars(
            sa.select(BatchJob)
            .where(BatchJob.saved_search_id == search.id)
            .order_by(BatchJob.created_at.desc(), BatchJob.id.desc())
            .limit(limit)
        )
    )
