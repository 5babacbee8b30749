"""Offline simulator of the PropertyRadar REST API, as a plain WSGI app.

Why it exists: the real API cannot be reached from the project's machines, and every
``Purchase=1`` row costs money. The client, the batch runner and the demo are therefore
built and tested against this simulator. It follows what is known of the real API
(query-string control parameters, a body holding
only ``Criteria``, the ``results``/``resultCount``/``totalResultCount``/``totalCost``
envelope, the ``error``/``eventid``/``message``/``messageTitle`` error body with the
``X-Radar-Request-Id`` header, mixed wire types, the 50-field cap, the 1000-row cap).
Where the notes say UNCONFIRMED the simulator makes the documented best guess:
``Start`` is a 0-based row offset, ``Limit`` defaults to 100 and is capped at
``max_limit`` (1000), a repeated ``Purchase=1`` of the same record is billed again.

It is dev and test tooling, outside the product: nothing in ``radar_app`` imports it
(import-linter holds that rule, see docs/architecture.md). It imports only the standard
library, Werkzeug and the two Flask-free product facts it must agree with: the one
configured price (``radar_app.config``) and the county table
(``radar_app.propertyradar.counties``). It runs in a thread inside a test, or on its own::

    python -m simulator --port 5001

Modules: ``tables`` (static tables), ``schema`` (fields, fieldsets, criteria, the 400
error), ``dataset`` (the synthetic records), ``config`` (the knobs and their validation),
``faults`` (record and body faults), ``app`` (the WSGI application), ``server`` (serving
it), ``__main__`` (the command line).

Dataset
-------
Synthetic and deterministic for a given ``(scale, seed)``. Records are stored state by
state and county by county, so "dataset index order" (the order every search returns)
groups by county. Exact record counts at ``scale=1.0`` (121,400 in total)::

    CA 40,000  06037 Los Angeles 16,000 | 06073 San Diego 9,000
               06059 Orange 8,000       | 06001 Alameda 7,000
    TX 30,000  48201 Harris 12,000      | 48113 Dallas 9,000
               48453 Travis 6,000       | 48029 Bexar 3,000
    FL 25,000  12086 Miami-Dade 10,000  | 12011 Broward 8,000 | 12095 Orange 7,000
    OR 10,000  41051 Multnomah 2,000    | 41067 Washington 3,500
               41005 Clackamas 2,500    | 41039 Lane 2,000
    AZ  8,000  04013 Maricopa 6,000     | 04019 Pima 2,000
    WA  6,000  53033 King 3,500         | 53053 Pierce 1,500 | 53061 Snohomish 1,000
    NV  2,000  32003 Clark 1,500        | 32031 Washoe 500
    ID    400  16001 Ada 300            | 16027 Canyon 100

With another ``scale`` a state holds ``round(count * scale)`` records, split over its
counties in the same proportions (largest remainder, so the county counts add up).

Every field used for filtering lives in a typed ``array`` column (about 10 MB in all);
display-only fields (names, mailing address, coordinates, ...) are derived on demand
from a hash of the record index, and a full record dict is only built for a row that is
actually returned. The list of matching indices per canonical criteria is kept in a
small LRU, so paging through one search costs O(page) after the first request.

Filter semantics worth knowing: items AND, values inside an item OR; ranges are
``[[min, max], ...]`` with ``null`` for an open end; for the "Including Unknowns"
criteria (Beds, Baths, SqFt, YearBuilt, LotSize, Units) a ``null`` minimum also matches
records whose value is unknown (vacant land has no beds, baths, sqft or year built);
for the other ranges unknown values (no loan -> no FirstRate, not listed -> no
DaysOnMarket) never match. Some known criteria (dates, listing status, lists, ...) are
accepted but do not filter; see ``IGNORED_CRITERIA``.

Fault injection (our own invention)
-----------------------------------
The real API's rate limits and error behaviour are UNCONFIRMED: no 429 or
``Retry-After`` has ever been observed. The faults below exist so that the client's
retry and billing-safety logic can be exercised; they are not a claim about the real
service. A fault is decided before the request is processed:

* ``429`` (with ``Retry-After``), ``500``, ``502`` (HTML gateway page), ``503``: the
  request is *not* processed and *not* billed.
* ``slow``: the request is processed and billed, then the answer is delayed by
  ``slow_seconds`` (a client with a shorter timeout never sees it, but paid for it).
* ``malformed``: processed and billed, but the 200 body is truncated, invalid JSON.

Faults come at random (``fault_rate`` / ``fault_kinds``, from a seeded RNG) or are
scripted (``scripted_faults``). ``total_drift`` makes the result set change while a job
pages through it: after each served search purchase, ``total_drift`` new records appear
at the front of every non-empty result set (clones of matching records with fresh
RadarIDs), or, when negative, that many records disappear from the front.

Standing fault modes (each off by default; set with ``configure`` or ``/_sim/config``):

* ``total_after_first=N``: once the first page (``Start=0``) of a search has been served,
  that search holds N records: later pages, and a repeated first page, report
  ``totalResultCount`` N and hold only records up to it (fewer: shrinking; more: growing,
  with clones of matching records under fresh RadarIDs).
* ``limit_cap=N``: at most N results per request whatever ``Limit`` asked for;
  ``totalResultCount`` is unchanged and only returned rows are billed.
* ``missing_radar_id_every=N``: in ``Purchase=1`` responses the N-th, 2N-th, ... record
  of the response has no ``RadarID`` key; it is billed all the same.
* ``oversize_field="APN"``, ``oversize_length=L``: in ``Purchase=1`` responses that field,
  where the response has it, holds exactly L characters (its value padded with "x").
* ``trickle_seconds=S``: the body of every API response is sent in small pieces spread
  evenly over S seconds, each within 0.1 s of the last, so no per-read timeout fires.
  The request is processed and billed before the first piece goes out.
* ``rotate_token_after=N``: after N further authenticated requests the token stops
  working: every API request gets the 401 of a bad token until ``configure(token=NEW)``
  (which also ends the rotation; ``reset()`` re-arms it).

Price: every billed record costs ``price_per_record`` (default: the app's
``Config.PRICE_PER_EXPORT``, so the demo's estimate and its bill agree); ``totalCost``
is that price times the rows billed, and ``/_sim/stats`` reports ``billed_records`` and
``billed_cost``.

Control endpoints (no auth, for tests and demos): ``GET /_sim/stats``,
``GET|POST /_sim/config``, ``POST /_sim/reset``, ``GET /_sim/health``.
"""

from simulator.app import Simulator
from simulator.config import FAULT_KINDS, SimulatorConfig
from simulator.dataset import Dataset, get_dataset
from simulator.schema import ALL_FIELDS, FIELDSETS, IGNORED_CRITERIA, CriteriaError
from simulator.server import serve, start_in_thread

__all__ = [
    "ALL_FIELDS",
    "FIELDSETS",
    "FAULT_KINDS",
    "IGNORED_CRITERIA",
    "CriteriaError",
    "Dataset",
    "Simulator",
    "SimulatorConfig",
    "get_dataset",
    "serve",
    "start_in_thread",
]
