"""The synthetic, deterministic dataset, stored column-wise (see the package docstring
for its exact counts)."""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import threading
import time
from array import array
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from simulator.schema import (
    _BOOL_CRITERIA,
    _ENUM_CRITERIA,
    _RANGE_CRITERIA,
    IGNORED_CRITERIA,
    KNOWN_CRITERIA,
    CriteriaError,
    _bad_value,
)
from simulator.tables import (
    CITIES,
    CITY_FIRST,
    CORP_SUFFIXES,
    COUNTIES,
    COUNTY_BY_FIPS,
    FC_AUCTION_STAGES,
    FC_STAGES,
    FIRST_NAMES,
    LAST_NAMES,
    LOAN_TYPES,
    OWN_CORPORATE,
    OWN_TRUST,
    OWNERSHIP_TYPES,
    PT_CND,
    PT_MFR,
    PT_MH,
    PT_SFR,
    PT_VL,
    PTYPE_BY_CODE,
    PTYPES,
    REMOTE_MAIL,
    STATE_BY_NAME,
    STATE_INDEX,
    STATES,
    STREET_DIRS,
    STREET_NAMES,
    STREET_SUFFIXES,
    TODAY,
    TRANSFER_TYPES,
    XFER_FIRST,
    XFER_LAST,
)

_M64 = (1 << 64) - 1
_ID_BITS = 28  # 7 hex digits
_ID_MOD = 1 << _ID_BITS
_ID_MULT = 0x5DEECE5  # odd, so idx -> idx * MULT + ADD is a bijection mod 2**28
_ID_MULT_INV = pow(_ID_MULT, -1, _ID_MOD)


def _mix(x: int) -> int:
    """splitmix64 finaliser: a cheap, well-spread deterministic hash of an integer."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def _mdy(ordinal: int) -> str:
    """Format a date ordinal the way PropertyRadar does: M/D/YYYY without zero padding."""
    d = dt.date.fromordinal(ordinal)
    return f"{d.month}/{d.day}/{d.year}"


def _cumulative(weights: Iterable[float]) -> list[float]:
    total, out = 0.0, []
    for w in weights:
        total += w
        out.append(total)
    return [c / total for c in out]


def _allocate(total: int, weights: list[int]) -> list[int]:
    """Split ``total`` over ``weights`` proportionally; largest remainder keeps the sum."""
    wsum = sum(weights)
    if wsum == 0:
        return [0] * len(weights)
    raw = [total * w / wsum for w in weights]
    out = [math.floor(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - out[i]), i))
    for i in order[: total - sum(out)]:
        out[i] += 1
    return out


_UNK_B = -128  # unknown marker in 'b' columns
_UNK_H = -32768  # unknown marker in 'h' columns
_UNK_I = -(2**31)  # unknown marker in 'i' columns


class Dataset:
    """Deterministic synthetic property records, stored column-wise.

    Why columns: 121k dicts of ~70 fields would cost well over a gigabyte and make
    filtering slow; typed ``array`` columns cost about 10 MB and a filter is a list
    comprehension over ints. Records are materialised (``record(i)``) only when returned.
    """

    CACHE_SIZE = 64

    def __init__(self, scale: float = 1.0, seed: int = 42) -> None:
        if scale < 0:
            raise ValueError("scale must be >= 0")
        started = time.perf_counter()
        self.scale = scale
        self.seed = seed
        self._id_add = _mix(seed) % _ID_MOD
        self._hash_base = (seed & 0xFFFFFF) << 40
        self.state_counts: dict[str, int] = {}
        self.county_counts: dict[str, int] = {}
        county_n: list[int] = []
        for code, _pool, _tax in STATES:
            state_total = round(sum(c.count for c in COUNTIES if c.state == code) * scale)
            members = [c for c in COUNTIES if c.state == code]
            split = _allocate(state_total, [c.count for c in members])
            self.state_counts[code] = state_total
            for c, n in zip(members, split, strict=True):
                self.county_counts[c.fips] = n
        # Records are laid out county by county in COUNTIES order (states are contiguous).
        self._county_range: list[tuple[int, int]] = []
        pos = 0
        for c in COUNTIES:
            n = self.county_counts[c.fips]
            county_n.append(n)
            self._county_range.append((pos, pos + n))
            pos += n
        self.size = pos
        if self.size >= _ID_MOD // 2:
            raise ValueError("dataset too large for 7-hex-digit RadarIDs")
        self._state_range: dict[str, tuple[int, int]] = {}
        for ci, c in enumerate(COUNTIES):
            lo, hi = self._county_range[ci]
            prev = self._state_range.get(c.state)
            self._state_range[c.state] = (prev[0], hi) if prev else (lo, hi)
        self._build(county_n)
        self._cache: OrderedDict[str, array] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._cache_hits = 0
        self._cache_misses = 0
        self.build_seconds = time.perf_counter() - started

    # -- construction ------------------------------------------------------------------

    def _build(self, county_n: list[int]) -> None:
        rng = random.Random(self.seed)
        r = rng.random
        gauss = rng.gauss
        cols: dict[str, array] = {
            "county": array("B"),
            "city": array("H"),
            "zip": array("I"),
            "ptype": array("B"),
            "beds": array("b"),
            "baths2": array("b"),
            "sqft": array("i"),
            "lot": array("i"),
            "year": array("h"),
            "units": array("h"),
            "pool": array("B"),
            "own_type": array("B"),
            "same_mail": array("B"),
            "mail_vac": array("B"),
            "site_vac": array("B"),
            "avm": array("i"),
            "bal": array("i"),
            "avail": array("i"),
            "eqp": array("h"),
            "cltv": array("h"),
            "nloans": array("b"),
            "rate": array("h"),
            "loan_type": array("b"),
            "xfer_day": array("i"),
            "xfer_value": array("i"),
            "in_fc": array("B"),
            "fc_stage": array("b"),
            "in_tax": array("B"),
            "listed": array("B"),
            "dom": array("h"),
        }
        ptype_cum = _cumulative(s for _c, _d, s in PTYPES)
        own_cum = _cumulative(w for _n, w in OWNERSHIP_TYPES)
        loan_cum = _cumulative(w for _n, w in LOAN_TYPES)
        fc_cum = _cumulative(w for _n, w in FC_STAGES)
        ptype_factor = (1.0, 0.65, 1.35, 0.25, 0.30)
        xfer_span = XFER_LAST - XFER_FIRST
        a = {k: v.append for k, v in cols.items()}
        for ci, county in enumerate(COUNTIES):
            n = county_n[ci]
            _code, pool_p, _tax = STATES[STATE_INDEX[county.state]]
            first_city = CITY_FIRST[ci]
            n_cities = len(county.cities)
            for _ in range(n):
                # location: the first city of a county is the biggest
                u = r()
                k = 0 if (n_cities == 1 or u < 0.5) else 1 + int((u - 0.5) * 2 * (n_cities - 1))
                city = first_city + min(k, n_cities - 1)
                zips = CITIES[city][2]
                a["county"](ci)
                a["city"](city)
                a["zip"](zips[int(r() * len(zips))])
                # physical
                pt = bisect_right(ptype_cum, r())
                if pt == PT_SFR:
                    beds = 2 + int(r() * 4)
                    baths2 = max(2, beds * 2 - 2 + int(r() * 3))
                    sqft = 600 + beds * 350 + int(r() * 900)
                    lot = 3000 + int(r() * 9000)
                    year = 1920 + int(r() * 103)
                    units = 1
                elif pt == PT_CND:
                    beds = 1 + int(r() * 3)
                    baths2 = 2 + int(r() * 3)
                    sqft = 450 + beds * 300 + int(r() * 400)
                    lot = 0
                    year = 1960 + int(r() * 63)
                    units = 1
                elif pt == PT_MFR:
                    units = 2 + int(r() * 3)
                    beds = units * 2 + int(r() * 3) - 1
                    baths2 = units * 2 + int(r() * 3)
                    sqft = units * 800 + int(r() * 900)
                    lot = 4000 + int(r() * 8000)
                    year = 1900 + int(r() * 116)
                elif pt == PT_MH:
                    beds = 2 + int(r() * 2)
                    baths2 = 2 + int(r() * 3)
                    sqft = 800 + int(r() * 900)
                    lot = 2000 + int(r() * 6000)
                    year = 1965 + int(r() * 51)
                    units = 1
                else:  # vacant land: no building, so beds/baths/sqft/year are unknown
                    beds, baths2, sqft, year = _UNK_B, _UNK_B, _UNK_I, _UNK_H
                    lot = 5000 + int(r() * 195000)
                    units = 0
                a["ptype"](pt)
                a["beds"](beds)
                a["baths2"](baths2)
                a["sqft"](sqft)
                a["lot"](lot)
                a["year"](year)
                a["units"](units)
                a["pool"](1 if (pt != PT_VL and r() < pool_p) else 0)
                # owner
                own = bisect_right(own_cum, r())
                a["own_type"](own)
                absentee = r() < (0.85 if own == OWN_CORPORATE else 0.225)
                a["same_mail"](0 if absentee else 1)
                a["mail_vac"](1 if r() < 0.02 else 0)
                a["site_vac"](1 if r() < (0.25 if pt == PT_VL else 0.02) else 0)
                # value and loans
                avm = county.median_avm * ptype_factor[pt] * math.exp(gauss(0.0, 0.35))
                avm = max(20000, int(round(avm, -3)))
                in_fc = r() < 0.08
                u = r()
                nloans = 0 if u < 0.28 else (1 if u < 0.85 else 2)
                if in_fc and nloans == 0:
                    nloans = 1
                if nloans:
                    ltv = (0.75 + r() * 0.45) if in_fc else (0.12 + r() * 0.78 + 0.1 * (nloans - 1))
                    bal = int(round(avm * ltv, -2))
                    rate = 250 + int(r() * 500)
                    loan_type = bisect_right(loan_cum, r())
                else:
                    bal, rate, loan_type = 0, _UNK_H, _UNK_B
                a["avm"](avm)
                a["bal"](bal)
                a["avail"](avm - bal)
                a["eqp"](round(100 * (avm - bal) / avm))
                a["cltv"](round(100 * bal / avm))
                a["nloans"](nloans)
                a["rate"](rate)
                a["loan_type"](loan_type)
                # transfer
                frac = r()
                a["xfer_day"](XFER_FIRST + int(frac * xfer_span))
                a["xfer_value"](int(round(avm * (0.35 + 0.6 * frac) * (0.9 + r() * 0.2), -3)))
                # distress and listing
                a["in_fc"](1 if in_fc else 0)
                a["fc_stage"](bisect_right(fc_cum, r()) if in_fc else _UNK_B)
                a["in_tax"](1 if r() < 0.05 else 0)
                if r() < 0.06:
                    a["listed"](1)
                    a["dom"](1 + int(r() * 180))
                else:
                    a["listed"](0)
                    a["dom"](_UNK_H)
        self._cols = cols

    # -- identity ----------------------------------------------------------------------

    def __len__(self) -> int:
        return self.size

    def radar_id(self, idx: int) -> str:
        """RadarID for an index: ``P`` + 7 hex digits, a bijection of the index."""
        return f"P{(idx * _ID_MULT + self._id_add) % _ID_MOD:07X}"

    def index_of(self, radar_id: str) -> int | None:
        """Inverse of :meth:`radar_id`; returns the raw index even past ``size``
        (phantom records created by drift), or None if the id is malformed."""
        if not isinstance(radar_id, str) or len(radar_id) != 8 or radar_id[0] not in "Pp":
            return None
        try:
            h = int(radar_id[1:], 16)
        except ValueError:
            return None
        return ((h - self._id_add) * _ID_MULT_INV) % _ID_MOD

    def _h(self, idx: int, salt: int) -> int:
        return _mix(self._hash_base ^ (idx << 8) ^ salt)

    # -- materialising records ---------------------------------------------------------

    def address(self, idx: int) -> str:
        h = self._h(idx, 1)
        num = 100 + h % 19900
        h >>= 16
        name = STREET_NAMES[h % len(STREET_NAMES)]
        h >>= 8
        suffix = STREET_SUFFIXES[h % len(STREET_SUFFIXES)]
        h >>= 8
        direction = STREET_DIRS[h % len(STREET_DIRS)]
        return f"{num} {direction}{name} {suffix}"

    def apn(self, idx: int) -> str:
        ci = self._cols["county"][idx]
        style = COUNTIES[ci].apn_style
        if style == "R":
            return f"R{(idx * 7919 + ci * 101) % 10**6:06d}"
        digits = f"{(idx * 7919 + ci * 1_000_003) % 10**10:010d}"
        if style == "dash":
            return f"{digits[:4]}-{digits[4:7]}-{digits[7:]}"
        return digits

    def record(self, idx: int, radar_id: str | None = None) -> dict[str, Any]:
        """Build the full result object for one record, with the API's wire types."""
        c = self._cols
        ci = c["county"][idx]
        county = COUNTIES[ci]
        state = county.state
        _code, _pool_p, tax_rate = STATES[STATE_INDEX[state]]
        city_name = CITIES[c["city"][idx]][0]
        zip5 = c["zip"][idx]
        address = self.address(idx)
        pt = c["ptype"][idx]
        beds, baths2, sqft = c["beds"][idx], c["baths2"][idx], c["sqft"][idx]
        year, lot, units = c["year"][idx], c["lot"][idx], c["units"][idx]
        avm, bal, avail = c["avm"][idx], c["bal"][idx], c["avail"][idx]
        eqp, nloans, rate = c["eqp"][idx], c["nloans"][idx], c["rate"][idx]
        own, same_mail = c["own_type"][idx], c["same_mail"][idx]
        in_fc, stage = c["in_fc"][idx], c["fc_stage"][idx]
        in_tax, listed = c["in_tax"][idx], c["listed"][idx]
        xfer_day = c["xfer_day"][idx]

        h_geo, h_name, h_mail, h_misc = (self._h(idx, s) for s in (2, 3, 4, 5))
        lat = county.lat + ((h_geo & 0xFFFF) / 0xFFFF - 0.5) * 0.4
        lon = county.lon + (((h_geo >> 16) & 0xFFFF) / 0xFFFF - 0.5) * 0.5

        first = FIRST_NAMES[h_name % len(FIRST_NAMES)]
        last = LAST_NAMES[(h_name >> 8) % len(LAST_NAMES)]
        other_first = FIRST_NAMES[(h_name >> 16) % len(FIRST_NAMES)]
        other_last = LAST_NAMES[(h_name >> 24) % len(LAST_NAMES)]
        owner_first: str | None = first
        owner_last: str | None = last
        owner2: str | None = None
        if own == OWN_CORPORATE:
            owner = f"{last} {CORP_SUFFIXES[(h_name >> 32) % len(CORP_SUFFIXES)]}"
            owner_first = owner_last = None
        elif own == OWN_TRUST:
            owner = f"{last} Family Trust"
        else:
            owner = f"{last} {first}"
            if own == 1:  # couple
                owner2 = f"{last} {other_first}"
            elif own == 2:  # multiple owners
                owner2 = f"{other_last} {other_first}"

        if same_mail:
            m_addr, m_city, m_state, m_zip = address, city_name, state, zip5
        else:
            pick = h_mail % 100
            if pick < 50:  # same county
                k = (h_mail >> 8) % len(county.cities)
                m_city, m_zips = county.cities[k]
                m_state, m_zip = state, m_zips[(h_mail >> 16) % len(m_zips)]
            elif pick < 80:  # anywhere in the dataset
                m_city, mci, m_zips = CITIES[(h_mail >> 8) % len(CITIES)]
                m_state, m_zip = COUNTIES[mci].state, m_zips[(h_mail >> 16) % len(m_zips)]
            else:
                m_city, m_state, m_zip = REMOTE_MAIL[(h_mail >> 8) % len(REMOTE_MAIL)]
            if (h_mail >> 24) % 100 < 15:
                m_addr = f"PO Box {1 + (h_mail >> 32) % 9000}"
            else:
                m_addr = self.address(idx + 1_000_003)

        taxes = int(avm * tax_rate)
        first_amount = int(round(bal * (1.05 + (h_misc % 20) / 100), -3)) if nloans else None
        first_day = max(xfer_day, xfer_day + (h_misc >> 8) % 3000) if nloans else None
        if first_day is not None:
            first_day = min(first_day, TODAY - 30)
        fc_rec = TODAY - 1 - (h_misc >> 20) % 300 if in_fc else None
        auction = in_fc and stage in FC_AUCTION_STAGES
        return {
            "RadarID": radar_id or self.radar_id(idx),
            "PropertyKey": (idx * 2654435761 + self.seed) % 10**9 + 10**9,
            "APN": self.apn(idx),
            "FIPS": county.fips,
            "County": county.fips,
            "Address": address,
            "FullAddress": f"{address}, {city_name}, {state} {zip5:05d}",
            "City": city_name,
            "State": state,
            "ZipFive": zip5,
            "Latitude": round(lat, 6),
            "Longitude": round(lon, 6),
            "PType": PTYPES[pt][1],
            "Beds": None if beds == _UNK_B else beds,
            "Baths": None
            if baths2 == _UNK_B
            else (str(baths2 // 2) if baths2 % 2 == 0 else f"{baths2 / 2:.1f}"),
            "SqFt": None if sqft == _UNK_I else sqft,
            "LotSize": lot,
            "LotSizeAcres": round(lot / 43560, 2),
            "YearBuilt": None if year == _UNK_H else str(year),
            "Units": units,
            "Pool": c["pool"][idx],
            "Owner": owner,
            "Owner2": owner2,
            "OwnerFirstName": owner_first,
            "OwnerLastName": owner_last,
            "OwnershipType": OWNERSHIP_TYPES[own][0],
            "OwnerAddress": m_addr,
            "OwnerCity": m_city,
            "OwnerState": m_state,
            "OwnerZipFive": m_zip,
            "isSameMailingOrExempt": same_mail,
            "isSameMailing": same_mail,
            "isMailVacant": c["mail_vac"][idx],
            "isSiteVacant": c["site_vac"][idx],
            "PrimaryName": f"{first} {last}",
            "PrimaryFirstName": first,
            "PrimaryLastName": last,
            "PhoneAvailability": "available" if (h_misc >> 40) % 100 < 72 else "unavailable",
            "EmailAvailability": "available" if (h_misc >> 48) % 100 < 55 else "unavailable",
            "AVM": str(avm),
            "AVMPerSqFt": avm // sqft if sqft > 0 else None,
            "AssessedValue": int(avm * (0.6 + (h_misc >> 12) % 35 / 100)),
            "AvailableEquity": str(avail),
            "EquityPercent": str(eqp),
            "CLTV": c["cltv"][idx],
            "TotalLoanBalance": str(bal),
            "NumberLoans": nloans,
            "AnnualTaxes": taxes,
            "EstimatedRent": None if pt == PT_VL else int(round(avm * 0.0045, -1)),
            "isFreeAndClear": 1 if bal == 0 else 0,
            "isHighEquity": 1 if eqp >= 50 else 0,
            "FirstAmount": first_amount,
            "FirstRate": None if rate == _UNK_H else rate / 100,
            "FirstLoanType": None if nloans == 0 else LOAN_TYPES[c["loan_type"][idx]][0],
            "FirstPurpose": None
            if nloans == 0
            else ("Purchase" if first_day == xfer_day else "Refinance"),
            "FirstDate": None if first_day is None else _mdy(first_day),
            "LastTransferRecDate": _mdy(xfer_day),
            "LastTransferValue": c["xfer_value"][idx],
            "LastTransferType": TRANSFER_TYPES[(h_misc >> 28) % len(TRANSFER_TYPES)],
            "inForeclosure": in_fc,
            "ForeclosureStage": FC_STAGES[stage][0] if in_fc else None,
            "ForeclosureRecDate": None if fc_rec is None else _mdy(fc_rec),
            "DefaultAmount": int(bal * (0.03 + (h_misc >> 36) % 8 / 100)) if in_fc else None,
            "SaleDate": _mdy(TODAY + 7 + (h_misc >> 44) % 80) if auction else None,
            "inTaxDelinquency": in_tax,
            "DelinquentAmount": int(taxes * (1 + (h_misc >> 52) % 200 / 100)) if in_tax else None,
            "DelinquentYear": 2019 + (h_misc >> 56) % 5 if in_tax else None,
            "isListedForSale": listed,
            "ListingPrice": int(round(avm * (0.95 + (h_misc >> 24) % 17 / 100), -3))
            if listed
            else None,
            "DaysOnMarket": c["dom"][idx] if listed else None,
        }

    # -- searching ---------------------------------------------------------------------

    def cache_info(self) -> dict[str, int]:
        with self._cache_lock:
            return {
                "hits": self._cache_hits,
                "misses": self._cache_misses,
                "size": len(self._cache),
                "maxsize": self.CACHE_SIZE,
            }

    def match(self, criteria: Any) -> array:
        """Indices (ascending) of the records matching ``criteria``.

        Validates first (raising :class:`CriteriaError` for what the API would 400),
        then serves from the LRU keyed by the canonical JSON of the criteria.
        """
        filters = self._compile(criteria)
        key = json.dumps(criteria, sort_keys=True, separators=(",", ":"))
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                self._cache_hits += 1
                return hit
            self._cache_misses += 1
        result = array("I", self._run(filters))
        with self._cache_lock:
            self._cache[key] = result
            self._cache.move_to_end(key)
            while len(self._cache) > self.CACHE_SIZE:
                self._cache.popitem(last=False)
        return result

    def count(self, criteria: Any) -> int:
        return len(self.match(criteria))

    def _compile(self, criteria: Any) -> list[tuple[str, Any]]:
        """Validate criteria and turn them into (kind, argument) filter steps."""
        if not isinstance(criteria, list):
            raise CriteriaError("Criteria must be an array")
        steps: list[tuple[str, Any]] = []
        for item in criteria:
            if not isinstance(item, dict):
                raise CriteriaError("Invalid criterion: each item must be an object")
            for required in ("name", "value"):
                if required not in item:
                    raise CriteriaError(f"Missing required criterion field: {required}")
            name, values = item["name"], item["value"]
            if not isinstance(name, str) or name not in KNOWN_CRITERIA:
                raise CriteriaError(
                    f"Unexpected Criterion: {name}",
                    "One of your search criteria is not recognized.",
                )
            if not isinstance(values, list):
                raise CriteriaError(f"Criterion value must be an array: {name}")
            if not values:
                raise CriteriaError(f"Criterion has no values: {name}")
            if name in IGNORED_CRITERIA:
                continue
            steps.append(self._compile_one(name, values))
        return steps

    def _compile_one(self, name: str, values: list[Any]) -> tuple[str, Any]:
        if name == "State":
            ranges = []
            for v in values:
                if not isinstance(v, str):
                    raise _bad_value(name)
                code = STATE_BY_NAME.get(v.strip().upper(), v.strip().upper())
                if code in self._state_range:
                    ranges.append(self._state_range[code])
            return ("ranges", ranges)
        if name == "County":
            ranges = []
            for v in values:
                if isinstance(v, bool) or not isinstance(v, (int, str)):
                    raise _bad_value(name)
                text = str(v).strip()
                if not text.isdigit() or not 4 <= len(text) <= 5:
                    raise _bad_value(name)
                ci = COUNTY_BY_FIPS.get(text.zfill(5))
                if ci is not None:
                    ranges.append(self._county_range[ci])
            return ("ranges", ranges)
        if name == "RadarID":
            ids = set()
            for v in values:
                if not isinstance(v, str):
                    raise _bad_value(name)
                idx = self.index_of(v.strip().upper())
                if idx is not None and idx < self.size:
                    ids.add(idx)
            return ("ids", sorted(ids))
        if name == "City":
            if not all(isinstance(v, str) for v in values):
                raise _bad_value(name)
            wanted = {v.strip().upper() for v in values}
            return (
                "in",
                ("city", {i for i, (cn, _c, _z) in enumerate(CITIES) if cn.upper() in wanted}),
            )
        if name == "ZipFive":
            zips = set()
            for v in values:
                if isinstance(v, bool) or not isinstance(v, (int, str)):
                    raise _bad_value(name)
                try:
                    zips.add(int(str(v).strip()))
                except ValueError:
                    raise _bad_value(name) from None
            return ("in", ("zip", zips))
        if name in ("APN", "Address"):
            if not all(isinstance(v, str) and v for v in values):
                raise _bad_value(name)
            return ("prefix", (name, tuple(v.upper() for v in values)))
        if name == "PropertyType":
            codes = set()
            for v in values:
                if (
                    not isinstance(v, dict)
                    or v.get("name") != "PType"
                    or not isinstance(v.get("value"), list)
                ):
                    raise CriteriaError(
                        "Invalid value for criterion: PropertyType",
                        'PropertyType takes [{"name": "PType", "value": ["SFR", ...]}].',
                    )
                for code in v["value"]:
                    if not isinstance(code, str) or code.upper() not in PTYPE_BY_CODE:
                        raise CriteriaError(f"Invalid PType value: {code}")
                    codes.add(PTYPE_BY_CODE[code.upper()])
            return ("in", ("ptype", codes))
        if name in _BOOL_CRITERIA:
            column, inverted = _BOOL_CRITERIA[name]
            wanted = set()
            for v in values:
                if v in (1, "1"):  # also True, which == 1
                    wanted.add(0 if inverted else 1)
                elif v in (0, "0"):
                    wanted.add(1 if inverted else 0)
                else:
                    raise CriteriaError(f"Invalid yesno value for criterion: {name}")
            return ("in", (column, wanted))
        if name in _ENUM_CRITERIA:
            column, lookup = _ENUM_CRITERIA[name]
            codes = set()
            for v in values:
                if not isinstance(v, str) or v.strip().upper() not in lookup:
                    raise _bad_value(name)
                codes.add(lookup[v.strip().upper()])
            return ("in", (column, codes))
        # remaining: ranges
        column, mult, with_unknown = _RANGE_CRITERIA[name]
        unknown = {"b": _UNK_B, "h": _UNK_H, "i": _UNK_I}[self._cols[column].typecode]
        bounds = []
        for pair in values:
            if not isinstance(pair, list) or len(pair) != 2:
                raise CriteriaError(
                    f"Invalid range for criterion: {name}",
                    f"{name} takes ranges like [[min, max]].",
                )
            lo, hi = (self._number(name, x) for x in pair)
            lo_v = (-math.inf if with_unknown else unknown + 1) if lo is None else lo * mult - 1e-9
            hi_v = math.inf if hi is None else hi * mult + 1e-9
            bounds.append((lo_v, hi_v))
        return ("range", (column, bounds))

    @staticmethod
    def _number(name: str, x: Any) -> float | None:
        if x is None:
            return None
        if isinstance(x, bool):
            raise _bad_value(name)
        if isinstance(x, (int, float)):
            return float(x)
        if isinstance(x, str):
            try:
                return float(x.replace(",", "").strip())
            except ValueError:
                raise _bad_value(name) from None
        raise _bad_value(name)

    def _run(self, steps: list[tuple[str, Any]]) -> list[int]:
        # 1. Location ranges and RadarIDs give the starting candidates (cheap).
        spans: list[tuple[int, int]] = [(0, self.size)]
        for kind, arg in steps:
            if kind == "ranges":
                spans = [(max(a, c), min(b, d)) for a, b in spans for c, d in sorted(set(arg))]
                spans = [(a, b) for a, b in spans if a < b]
        cand: list[int] | range
        ids = [arg for kind, arg in steps if kind == "ids"]
        if ids:
            wanted = set(ids[0]).intersection(*ids[1:])
            cand = [i for i in sorted(wanted) if any(a <= i < b for a, b in spans)]
        elif len(spans) == 1:
            cand = range(*spans[0])
        else:
            cand = [i for a, b in sorted(spans) for i in range(a, b)]
        # 2. Column filters, then 3. string prefixes (slowest) last.
        order = {"in": 0, "range": 0, "prefix": 1}
        for kind, arg in sorted((s for s in steps if s[0] in order), key=lambda s: order[s[0]]):
            if kind == "in":
                col = self._cols[arg[0]]
                allowed = arg[1]
                if len(allowed) == 1:
                    (only,) = allowed
                    cand = [i for i in cand if col[i] == only]
                else:
                    cand = [i for i in cand if col[i] in allowed]
            elif kind == "range":
                col = self._cols[arg[0]]
                bounds = arg[1]
                if len(bounds) == 1:
                    lo, hi = bounds[0]
                    cand = [i for i in cand if lo <= col[i] <= hi]
                else:
                    cand = [i for i in cand if any(lo <= col[i] <= hi for lo, hi in bounds)]
            else:
                what, prefixes = arg
                getter = self.apn if what == "APN" else self.address
                cand = [i for i in cand if getter(i).upper().startswith(prefixes)]
        return list(cand)

    def approx_memory_bytes(self) -> int:
        """Bytes held by the columns (the bulk of the dataset's memory)."""
        return sum(col.itemsize * len(col) for col in self._cols.values())


_DATASETS: dict[tuple[float, int], Dataset] = {}
_DATASETS_LOCK = threading.Lock()


def get_dataset(scale: float = 1.0, seed: int = 42) -> Dataset:
    """Shared, lazily built dataset: it is immutable, so every simulator can reuse it."""
    with _DATASETS_LOCK:
        ds = _DATASETS.get((scale, seed))
        if ds is None:
            ds = _DATASETS[(scale, seed)] = Dataset(scale=scale, seed=seed)
        return ds
