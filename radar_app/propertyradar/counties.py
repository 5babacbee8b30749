"""US counties by name: investors know "Multnomah", PropertyRadar wants FIPS "41051".

The table (``us_counties.csv`` beside this module) is the US Census Bureau's 2020 list of
counties and county equivalents, public domain: state code, 5-digit FIPS code, name. It is
the one county table of the product; anything else that needs county names (the simulator
included) should read it from here.

:func:`resolve_counties` turns what a person types ("Multnomah", "Orange, FL", "41051")
into FIPS codes, within the states they chose, with a message a person can act on when a
name is unknown or ambiguous.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from radar_app.propertyradar.coerce import US_STATES

TABLE = Path(__file__).with_name("us_counties.csv")

# Words the Census puts after a name that people leave out ("Multnomah" for "Multnomah
# County"). "city" is not among them: in Virginia, Maryland and Missouri "Richmond city"
# and "Richmond County" are different places.
_SUFFIXES = ("county", "parish", "borough", "census area", "city and borough", "municipality")
_SUFFIX_RE = re.compile(r"\s+(?:" + "|".join(_SUFFIXES) + r")$")
_STATE_SUFFIX_RE = re.compile(
    r"^(?P<name>.+?)\s*(?:\((?P<paren>[A-Za-z]{2})\)|\s(?P<bare>[A-Za-z]{2}))$"
)
_FIPS_RE = re.compile(r"\d{4,5}")
_ITEM_SPLIT_RE = re.compile(r"[,;]+")


@dataclass(frozen=True)
class County:
    state: str  # 2-letter code
    fips: str  # 5 digits
    name: str  # as the Census writes it, e.g. "Multnomah County"

    @property
    def label(self) -> str:
        """ "Multnomah County, OR": what the search form suggests and accepts back."""
        return f"{self.name}, {self.state}"


class CountyError(ValueError):
    """What the user typed does not name exactly one county (the message says why)."""


def _key(text: str) -> str:
    """A name as compared: lower case, punctuation dropped, "Saint" spelled "st"."""
    words = re.sub(r"[^a-z0-9]+", " ", text.lower()).split()
    words = ["st" if w == "saint" else "ste" if w == "sainte" else w for w in words]
    return " ".join(words)


@cache
def _table() -> tuple[dict[str, County], dict[str, list[County]], dict[str, list[County]]]:
    """(by FIPS, by state, by name key), read once."""
    by_fips: dict[str, County] = {}
    by_state: dict[str, list[County]] = defaultdict(list)
    by_key: dict[str, list[County]] = defaultdict(list)
    with TABLE.open(newline="", encoding="utf-8") as handle:
        rows = csv.DictReader(line for line in handle if not line.startswith("#"))
        for row in rows:
            county = County(row["state"], row["fips"], row["name"])
            by_fips[county.fips] = county
            by_state[county.state].append(county)
            full = _key(county.name)
            base = _SUFFIX_RE.sub("", full)
            for key in {full, base}:
                by_key[key].append(county)
    return by_fips, dict(by_state), dict(by_key)


def by_fips(fips: str) -> County | None:
    """The county with this FIPS code ("6037" and "06037" alike), if the table has it."""
    return _table()[0].get(fips.strip().zfill(5))


def counties_in(states: list[str] | tuple[str, ...]) -> list[County]:
    """Every county of these states, by state then name."""
    table = _table()[1]
    return [county for state in sorted(set(states)) for county in table.get(state, [])]


def _choices(matches: list[County]) -> str:
    return ", ".join(sorted({c.state for c in matches}))


def _one(name: str, state: str | None, states: set[str]) -> County:
    """The county called `name` (in `state` if given, else in `states` if any)."""
    candidates = _table()[2].get(_SUFFIX_RE.sub("", _key(name)), [])
    candidates = candidates or _table()[2].get(_key(name), [])
    if state:
        if states and state not in states:
            raise CountyError(f"{name}, {state} is outside the chosen states ({_sorted(states)})")
        matches = [c for c in candidates if c.state == state]
    elif states:
        matches = [c for c in candidates if c.state in states]
    else:
        matches = candidates
    # "Baltimore" is both Baltimore County and Baltimore city: the county is meant.
    if len(matches) > 1:
        counties = [c for c in matches if not c.name.lower().endswith(" city")]
        if len({c.state for c in counties}) == len(counties) == 1:
            matches = counties
    if len(matches) == 1:
        return matches[0]
    where = f" in {state}" if state else f" in {_sorted(states)}" if states else ""
    if not matches:
        elsewhere = f" (found in {_choices(candidates)})" if candidates else ""
        raise CountyError(f"No county named {name!r}{where}{elsewhere}")
    example = sorted(matches, key=lambda c: c.state)[0]
    raise CountyError(
        f"{name!r} is a county in {_choices(matches)}: add the state, like "
        f"'{name}, {example.state}'"
    )


def _sorted(states: set[str]) -> str:
    return ", ".join(sorted(states))


_STATE_CODES = frozenset(US_STATES.values())


def _items(text: str) -> list[tuple[str, str | None, str | None]]:
    """(name or code, state or None, fallback) per item; a lone state code joins the item
    before it.

    So "Orange, FL, Multnomah County, OR" is Orange (FL) and Multnomah County (OR), and
    "Orange (FL)" or "Orange FL" mean the same as "Orange, FL". For "Orange FL" the
    fallback is the whole text, in case those two letters were part of the name.
    """
    items: list[tuple[str, str | None, str | None]] = []
    for raw in _ITEM_SPLIT_RE.split(text):
        part = " ".join(raw.split())
        if not part:
            continue
        if part.upper() in _STATE_CODES and items and items[-1][1] is None:
            items[-1] = (items[-1][0], part.upper(), None)
            continue
        match = _STATE_SUFFIX_RE.match(part)
        code = (match.group("paren") or match.group("bare") or "").upper() if match else ""
        if match and code in _STATE_CODES and not _FIPS_RE.fullmatch(match.group("name")):
            items.append((match.group("name"), code, part if match.group("bare") else None))
        else:
            items.append((part, None, None))
    return items


def resolve_counties(text: str | None, states: list[str] | None = None) -> list[str]:
    """FIPS codes for what was typed: county names or 4-5 digit FIPS codes, comma-separated.

    A name is looked up among the chosen `states` (every state when none is chosen). A FIPS
    code the table does not know is passed through (PropertyRadar may know counties newer
    than the table); one the table places outside the chosen states is refused, as that
    search could only match nothing.

    Raises:
        CountyError: an unknown or ambiguous name, a bad code, or a county outside the
            chosen states. The message names it and says how to fix it.
    """
    chosen = set(states or [])
    fips: list[str] = []
    for name, state, fallback in _items(text or ""):
        if name.isdigit():
            if not _FIPS_RE.fullmatch(name):
                raise CountyError(f"County FIPS codes have 4 or 5 digits, like 41051 (not {name})")
            known = by_fips(name)
            if known and chosen and known.state not in chosen:
                raise CountyError(
                    f"{name} is {known.label}, outside the chosen states ({_sorted(chosen)})"
                )
            code = name
        else:
            try:
                code = _one(name, state, chosen).fips
            except CountyError:
                if fallback is None:
                    raise
                code = _one(fallback, None, chosen).fips
        if code not in fips:
            fips.append(code)
    return fips
