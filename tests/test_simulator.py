"""Tests for the offline PropertyRadar simulator.

Most tests talk HTTP to one shared threaded server (``start_in_thread``), the way the
client and the workers will; a few drive the WSGI app directly with Werkzeug's client.
Every test resets the simulator's config and statistics first, so order does not matter.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from werkzeug.test import Client

from radar_app.config import Config
from simulator import (
    ALL_FIELDS,
    FIELDSETS,
    Dataset,
    Simulator,
    SimulatorConfig,
    get_dataset,
    start_in_thread,
)
from simulator.__main__ import parse_args

TOKEN = "demo-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RID_RE = re.compile(r"^[0-9a-f]{3}-[0-9a-f]{3}-[0-9a-f]{3}$")
RADAR_ID_RE = re.compile(r"^P[0-9A-F]{7}$")
MDY_RE = re.compile(r"^\d{1,2}/\d{1,2}/\d{4}$")

STATE_COUNTS = {
    "CA": 40000,
    "TX": 30000,
    "FL": 25000,
    "OR": 10000,
    "AZ": 8000,
    "WA": 6000,
    "NV": 2000,
    "ID": 400,
}
COUNTY_COUNTS = {
    "06037": 16000,
    "06073": 9000,
    "06059": 8000,
    "06001": 7000,
    "48201": 12000,
    "48113": 9000,
    "48453": 6000,
    "48029": 3000,
    "12086": 10000,
    "12011": 8000,
    "12095": 7000,
    "41051": 2000,
    "41067": 3500,
    "41005": 2500,
    "41039": 2000,
    "04013": 6000,
    "04019": 2000,
    "53033": 3500,
    "53053": 1500,
    "53061": 1000,
    "32003": 1500,
    "32031": 500,
    "16001": 300,
    "16027": 100,
}
OR = [{"name": "State", "value": ["OR"]}]


# -- fixtures and helpers ---------------------------------------------------------------


@pytest.fixture(scope="module")
def server():
    sim, url, stop = start_in_thread()
    yield sim, url
    stop()


@pytest.fixture
def sim(server):
    """The shared simulator with default config and empty statistics."""
    simulator, url = server
    simulator.configure(**dataclasses.asdict(SimulatorConfig()))
    simulator.reset()
    yield simulator, url
    simulator.configure(**dataclasses.asdict(SimulatorConfig()))
    simulator.reset()


def post(
    url,
    criteria,
    purchase=0,
    limit=None,
    start=None,
    fields=None,
    headers=AUTH,
    body=None,
    timeout=10,
):
    params = {"Purchase": purchase}
    if limit is not None:
        params["Limit"] = limit
    if start is not None:
        params["Start"] = start
    if fields is not None:
        params["Fields"] = fields
    payload = body if body is not None else {"Criteria": criteria}
    return requests.post(
        f"{url}/v1/properties", params=params, json=payload, headers=headers, timeout=timeout
    )


def total(url, criteria):
    resp = post(url, criteria, purchase=0, limit=1, fields="RadarID")
    assert resp.status_code == 200, resp.text
    return resp.json()["totalResultCount"]


def purchase_rows(url, criteria, limit=200, fields="All", start=0):
    resp = post(url, criteria, purchase=1, limit=limit, start=start, fields=fields)
    assert resp.status_code == 200, resp.text
    return resp.json()["results"]


def assert_error(resp, status, error_fragment):
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error", "eventid", "message", "messageTitle"}
    assert error_fragment in body["error"]
    assert RID_RE.match(resp.headers["X-Radar-Request-Id"])
    assert body["eventid"] == resp.headers["X-Radar-Request-Id"]


# -- dataset ----------------------------------------------------------------------------


def test_dataset_exact_counts_and_memory():
    ds = get_dataset()
    assert len(ds) == 121_400 == sum(STATE_COUNTS.values())
    assert ds.state_counts == STATE_COUNTS
    assert ds.county_counts == COUNTY_COUNTS
    assert ds.build_seconds < 30  # generous: it must build, not race
    assert ds.approx_memory_bytes() < 150 * 1024 * 1024
    # Real allocation measured on a 5% build; memory grows linearly with the scale.
    tracemalloc.start()
    try:
        small = Dataset(scale=0.05, seed=7)
        current, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(small) == sum(round(n * 0.05) for n in STATE_COUNTS.values())
    assert current * 20 < 150 * 1024 * 1024


def test_dataset_scaled_counts_add_up():
    ds = Dataset(scale=0.013, seed=3)
    assert ds.state_counts == {k: round(v * 0.013) for k, v in STATE_COUNTS.items()}
    for state, n in ds.state_counts.items():
        in_state = [
            f
            for f in COUNTY_COUNTS
            if ds._state_range[state][0]
            <= ds._county_range[list(COUNTY_COUNTS).index(f)][0]
            < ds._state_range[state][1]
        ]
        assert sum(ds.county_counts[f] for f in in_state) == n


def test_radar_ids_unique_well_formed_and_reversible():
    ds = get_dataset()
    ids = [ds.radar_id(i) for i in range(len(ds))]
    assert len(set(ids)) == len(ds)
    assert all(RADAR_ID_RE.match(r) for r in ids[::997])
    assert all(ds.index_of(ids[i]) == i for i in range(0, len(ds), 1231))
    assert Dataset(scale=0.01, seed=1).radar_id(0) != Dataset(scale=0.01, seed=2).radar_id(0)


def test_dataset_is_deterministic():
    a, b = Dataset(scale=0.02, seed=5), Dataset(scale=0.02, seed=5)
    assert [a.record(i) for i in range(0, len(a), 50)] == [
        b.record(i) for i in range(0, len(b), 50)
    ]


def test_dataset_proportions_are_realistic():
    ds = get_dataset()
    n = len(ds)
    share = {
        name: sum(ds._cols[col]) / n
        for name, col in [("fc", "in_fc"), ("tax", "in_tax"), ("listed", "listed")]
    }
    absentee = 1 - sum(ds._cols["same_mail"]) / n
    assert 0.07 < share["fc"] < 0.09
    assert 0.04 < share["tax"] < 0.06
    assert 0.05 < share["listed"] < 0.07
    assert 0.27 < absentee < 0.33


def test_search_results_are_cached():
    ds = Dataset(scale=0.02, seed=11)
    crit = [{"name": "State", "value": ["CA"]}, {"name": "Beds", "value": [[3, None]]}]
    before = ds.cache_info()
    first = ds.match(crit)
    second = ds.match(json.loads(json.dumps(crit)))  # equal but not the same object
    after = ds.cache_info()
    assert second is first
    assert after["misses"] == before["misses"] + 1
    assert after["hits"] == before["hits"] + 1


# -- counts and paging ------------------------------------------------------------------


def test_state_and_county_counts_over_http(sim):
    _sim, url = sim
    for state, n in STATE_COUNTS.items():
        assert total(url, [{"name": "State", "value": [state]}]) == n
    assert total(url, [{"name": "County", "value": ["41051"]}]) == 2000
    assert total(url, [{"name": "County", "value": [41051]}]) == 2000
    assert total(url, [{"name": "County", "value": ["06037"]}]) == 16000
    assert total(url, [{"name": "County", "value": [6037]}]) == 16000
    assert (
        total(
            url,
            [{"name": "State", "value": ["OR"]}, {"name": "County", "value": ["41051", "41039"]}],
        )
        == 4000
    )
    assert (
        total(url, [{"name": "State", "value": ["CA"]}, {"name": "County", "value": ["41051"]}])
        == 0
    )
    assert total(url, [{"name": "State", "value": list(STATE_COUNTS)}]) == 121_400
    assert total(url, []) == 121_400


def test_paging_over_oregon_is_complete_and_deterministic(sim):
    simulator, url = sim
    seen: list[str] = []
    with requests.Session() as http:
        for page in range(25):
            resp = http.post(
                f"{url}/v1/properties",
                params={"Purchase": 0, "Limit": 400, "Start": page * 400},
                json={"Criteria": OR},
                headers=AUTH,
                timeout=10,
            )
            body = resp.json()
            assert body["totalResultCount"] == 10_000
            assert body["resultCount"] == len(body["results"]) == 400
            seen.extend(r["RadarID"] for r in body["results"])
        again = http.post(
            f"{url}/v1/properties",
            params={"Purchase": 0, "Limit": 400, "Start": 1200},
            json={"Criteria": OR},
            headers=AUTH,
            timeout=10,
        ).json()
        past_end = http.post(
            f"{url}/v1/properties",
            params={"Purchase": 0, "Limit": 400, "Start": 10_000},
            json={"Criteria": OR},
            headers=AUTH,
            timeout=10,
        ).json()
    assert len(seen) == len(set(seen)) == 10_000
    assert [r["RadarID"] for r in again["results"]] == seen[1200:1600]
    assert past_end["results"] == [] and past_end["totalResultCount"] == 10_000
    stats = simulator.stats()
    assert stats["billed_records"] == 0
    assert stats["count_requests"] == 27


def test_purchase_zero_is_free_and_returns_only_radar_ids(sim):
    simulator, url = sim
    resp = post(url, OR, purchase=0, limit=50, fields="All")
    body = resp.json()
    assert resp.status_code == 200
    assert body["totalCost"] == "0"
    assert body["resultCount"] == 50
    assert all(list(r) == ["RadarID"] for r in body["results"])
    for value in ("false", "0"):
        assert post(url, OR, purchase=value, limit=5).json()["totalCost"] == "0"
    stats = simulator.stats()
    assert stats["billed_records"] == 0
    assert stats["billed_radar_ids"] == {}
    assert stats["purchase_requests"] == 0


def test_purchase_one_bills_every_returned_record(sim):
    simulator, url = sim
    body = post(url, OR, purchase=1, limit=50, start=100).json()
    # 50 records at the app's configured price (Config.PRICE_PER_EXPORT = 0.10).
    assert body["totalCost"] == "5" and body["resultCount"] == 50
    assert body["totalResultCount"] == 10_000
    ids = [r["RadarID"] for r in body["results"]]
    stats = simulator.stats()
    assert stats["billed_records"] == 50
    assert stats["purchase_requests"] == 1
    assert stats["billed_radar_ids"] == {i: 1 for i in ids}
    # Buying the same page again bills again (the real API does not refund repeats).
    again = post(url, OR, purchase="true", limit=50, start=100).json()
    assert [r["RadarID"] for r in again["results"]] == ids
    stats = simulator.stats()
    assert stats["billed_records"] == 100 and stats["billed_cost"] == 10.0
    assert set(stats["billed_radar_ids"].values()) == {2}
    log = stats["requests"]
    assert [
        (e["purchase"], e["start"], e["limit"], e["status"], e["result_count"]) for e in log
    ] == [(1, 100, 50, 200, 50)] * 2


def test_default_and_explicit_fields(sim):
    _sim, url = sim
    default = post(url, OR, purchase=1, limit=3).json()["results"]
    assert all(list(r) == list(FIELDSETS["default"]) for r in default)
    assert "RadarID" in FIELDSETS["default"] and 15 <= len(FIELDSETS["default"]) <= 30
    picked = post(url, OR, purchase=1, limit=3, fields="RadarID,AVM,Beds").json()["results"]
    assert all(list(r) == ["RadarID", "AVM", "Beds"] for r in picked)
    grid = post(url, OR, purchase=1, limit=3, fields="Grid,-Owner").json()["results"]
    assert all(len(r) == 13 and "Owner" not in r for r in grid)
    everything = post(url, OR, purchase=1, limit=2, fields="All").json()["results"]
    assert all(list(r) == list(ALL_FIELDS) for r in everything)
    assert len(ALL_FIELDS) > 50


def test_record_wire_types(sim):
    _sim, url = sim
    rows = purchase_rows(url, [{"name": "State", "value": ["CA"]}], limit=300)
    for r in rows:
        assert RADAR_ID_RE.match(r["RadarID"])
        for key in ("AVM", "AvailableEquity", "EquityPercent", "TotalLoanBalance"):
            assert isinstance(r[key], str) and re.match(r"^-?\d+$", r[key])
        for key in ("ZipFive", "LotSize", "Units", "OwnerZipFive"):
            assert isinstance(r[key], int)
        for key in (
            "Pool",
            "isSameMailingOrExempt",
            "isMailVacant",
            "isSiteVacant",
            "inForeclosure",
            "inTaxDelinquency",
            "isListedForSale",
        ):
            assert r[key] in (0, 1)
        if r["PType"] == "Vacant Land":
            assert r["Beds"] is None and r["SqFt"] is None and r["YearBuilt"] is None
        else:
            assert isinstance(r["Beds"], int) and isinstance(r["SqFt"], int)
            assert isinstance(r["Baths"], str) and isinstance(r["YearBuilt"], str)
        assert r["State"] == "CA" and r["FIPS"] == r["County"]
        assert r["FullAddress"].startswith(r["Address"] + ", " + r["City"] + ", CA ")
        assert MDY_RE.match(r["LastTransferRecDate"])
        assert (r["ForeclosureStage"] is None) == (r["inForeclosure"] == 0)
        assert (r["ListingPrice"] is None) == (r["isListedForSale"] == 0)
        if r["isSameMailingOrExempt"]:
            assert (r["OwnerAddress"], r["OwnerZipFive"]) == (r["Address"], r["ZipFive"])
    assert {r["PType"] for r in rows} >= {"Single Family", "Condominium"}


def test_get_single_property(sim):
    simulator, url = sim
    rid = post(url, OR, purchase=0, limit=1).json()["results"][0]["RadarID"]
    resp = requests.get(
        f"{url}/v1/properties/{rid}",
        params={"Purchase": 1, "Fields": "RadarID,State,AVM"},
        headers=AUTH,
        timeout=10,
    )
    body = resp.json()
    assert resp.status_code == 200
    assert body["results"] == [{"RadarID": rid, "State": "OR", "AVM": body["results"][0]["AVM"]}]
    assert body["resultCount"] == 1 and body["totalCost"] == "0.1"
    assert simulator.stats()["billed_radar_ids"] == {rid: 1}
    free = requests.get(
        f"{url}/v1/properties/{rid}", params={"Purchase": 0}, headers=AUTH, timeout=10
    ).json()
    assert free["results"] == [{"RadarID": rid}] and free["totalCost"] == "0"
    assert simulator.stats()["billed_records"] == 1
    missing = requests.get(
        f"{url}/v1/properties/PFFFFFFF", params={"Purchase": 1}, headers=AUTH, timeout=10
    )
    assert_error(missing, 404, "not found")
    no_purchase = requests.get(f"{url}/v1/properties/{rid}", headers=AUTH, timeout=10)
    assert_error(no_purchase, 400, "Missing required param: Purchase")


# -- filters ----------------------------------------------------------------------------


def test_range_filters(sim):
    _sim, url = sim
    crit = OR + [
        {"name": "Beds", "value": [[3, 4]]},
        {"name": "AVM", "value": [[500000, None]]},
        {"name": "Baths", "value": [[2, 2.5]]},
    ]
    rows = purchase_rows(url, crit, limit=500)
    assert rows and total(url, crit) < total(url, OR)
    for r in rows:
        assert 3 <= r["Beds"] <= 4 and int(r["AVM"]) >= 500000
        assert 2 <= float(r["Baths"]) <= 2.5
    # Several ranges OR together.
    two = OR + [{"name": "YearBuilt", "value": [[1800, 1950], [2010, None]]}]
    rows = purchase_rows(url, two, limit=1000)
    years = [int(r["YearBuilt"]) for r in rows]
    assert all(y <= 1950 or y >= 2010 for y in years)
    assert min(years) <= 1950 and max(years) >= 2010
    # Numeric strings work as bounds; EquityPercent is a string on the wire.
    eq = OR + [{"name": "EquityPercent", "value": [["40", None]]}]
    assert all(int(r["EquityPercent"]) >= 40 for r in purchase_rows(url, eq, limit=300))
    rate = OR + [{"name": "FirstRate", "value": [[3.5, 4.25]]}]
    assert all(3.5 <= r["FirstRate"] <= 4.25 for r in purchase_rows(url, rate, limit=300))


def test_including_unknowns_semantics(sim):
    _sim, url = sim
    vacant = OR + [{"name": "PropertyType", "value": [{"name": "PType", "value": ["VL"]}]}]
    n_vacant = total(url, vacant)
    assert n_vacant > 0
    # SqFt is "Including Unknowns": an open minimum also matches vacant land...
    assert total(url, vacant + [{"name": "SqFt", "value": [[None, 1000]]}]) == n_vacant
    assert total(url, vacant + [{"name": "SqFt", "value": [[0, 1000]]}]) == 0
    # ...while for DaysOnMarket an unknown (not listed) never matches.
    not_listed = OR + [{"name": "isListedForSale", "value": [0]}]
    assert total(url, not_listed + [{"name": "DaysOnMarket", "value": [[None, 999]]}]) == 0


def test_boolean_filters(sim):
    _sim, url = sim
    fc = OR + [{"name": "inForeclosure", "value": [1]}]
    rows = purchase_rows(url, fc, limit=300)
    assert rows and all(r["inForeclosure"] == 1 and r["ForeclosureStage"] for r in rows)
    n_fc, n_all = total(url, fc), total(url, OR)
    assert total(url, OR + [{"name": "inForeclosure", "value": ["0"]}]) == n_all - n_fc
    assert total(url, OR + [{"name": "inForeclosure", "value": ["1"]}]) == n_fc
    assert total(url, OR + [{"name": "inForeclosure", "value": [0, 1]}]) == n_all
    absentee = OR + [{"name": "isSameMailingOrExempt", "value": [0]}]
    assert all(r["isSameMailingOrExempt"] == 0 for r in purchase_rows(url, absentee))
    assert 0.25 < total(url, absentee) / n_all < 0.35
    pool = OR + [{"name": "Pool", "value": [1]}]
    assert all(r["Pool"] == 1 for r in purchase_rows(url, pool))
    bad = post(url, OR + [{"name": "Pool", "value": ["yes"]}])
    assert_error(bad, 400, "Invalid yesno value")


def test_property_type_and_enum_filters(sim):
    _sim, url = sim

    def ptype(*codes):
        return OR + [{"name": "PropertyType", "value": [{"name": "PType", "value": list(codes)}]}]

    assert all(r["PType"] == "Condominium" for r in purchase_rows(url, ptype("CND")))
    mixed = {r["PType"] for r in purchase_rows(url, ptype("SFR", "MFR"), limit=1000)}
    assert mixed == {"Single Family", "Multi-Family 2-4"}
    assert total(url, ptype("SFR", "CND")) == total(url, ptype("SFR")) + total(url, ptype("CND"))
    stage = OR + [{"name": "ForeclosureStage", "value": ["Auction", "Bank Owned"]}]
    rows = purchase_rows(url, stage)
    assert rows and {r["ForeclosureStage"] for r in rows} <= {"Auction", "Bank Owned"}
    corp = OR + [{"name": "OwnershipType", "value": ["Corporate"]}]
    rows = purchase_rows(url, corp)
    assert rows and all(r["OwnershipType"] == "Corporate" for r in rows)
    assert_error(post(url, ptype("XYZ")), 400, "Invalid PType value")
    assert_error(post(url, OR + [{"name": "PropertyType", "value": ["SFR"]}]), 400, "PropertyType")


def test_location_and_identity_filters(sim):
    _sim, url = sim
    rows = purchase_rows(url, [{"name": "County", "value": ["41051"]}], limit=1000)
    city = [{"name": "City", "value": ["portland"]}]
    assert all(r["City"] == "Portland" for r in purchase_rows(url, city))
    assert total(url, city) == sum(
        1
        for r in purchase_rows(
            url, [{"name": "County", "value": ["41051"]}], limit=1000, start=1000
        )
        if r["City"] == "Portland"
    ) + sum(1 for r in rows if r["City"] == "Portland")
    assert (
        total(url, [{"name": "ZipFive", "value": ["97214"]}])
        == total(url, [{"name": "ZipFive", "value": [97214]}])
        > 0
    )
    ids = [r["RadarID"] for r in rows[:5]]
    by_id = purchase_rows(url, [{"name": "RadarID", "value": ids}], fields="RadarID")
    assert sorted(r["RadarID"] for r in by_id) == sorted(ids)
    apn = rows[0]["APN"]
    apn_rows = purchase_rows(url, [{"name": "APN", "value": [apn[:4]]}], fields="APN")
    assert apn_rows and all(r["APN"].startswith(apn[:4]) for r in apn_rows)
    prefix = rows[0]["Address"].split(" ")[0] + " "
    addr = [{"name": "Address", "value": [prefix.lower()]}]
    addr_rows = purchase_rows(url, addr, fields="Address")
    assert addr_rows and all(r["Address"].startswith(prefix) for r in addr_rows)


def test_ignored_known_criteria_do_not_filter(sim):
    _sim, url = sim
    crit = OR + [
        {"name": "LastTransferRecDate", "value": ["Last 30 Days"]},
        {"name": "FirstDate", "value": ["from: 1/1/2020 to: 1/31/2020"]},
    ]
    assert total(url, crit) == 10_000


# -- validation errors ------------------------------------------------------------------


def test_auth_errors(sim):
    simulator, url = sim
    assert_error(post(url, OR, headers={}), 401, "Unauthorized")
    assert_error(post(url, OR, headers={"Authorization": "Bearer nope"}), 401, "Unauthorized")
    assert_error(post(url, OR, headers={"Authorization": TOKEN}), 401, "Unauthorized")
    simulator.configure(token=None)
    assert post(url, OR, headers={"Authorization": "Bearer anything"}).status_code == 200
    assert_error(post(url, OR, headers={"Authorization": "Bearer "}), 401, "Unauthorized")
    assert simulator.stats()["billed_records"] == 0


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        (
            {"criteria": [{"name": "SiteCity", "value": ["Portland"]}]},
            "Unexpected Criterion: SiteCity",
        ),
        ({"body": {"Criteria": OR, "Limit": 10}}, "Unexpected payload field: Limit"),
        ({"body": {"Criteria": OR, "Purchase": 1}}, "Unexpected payload field: Purchase"),
        ({"body": {}}, "Missing required param: Criteria"),
        ({"body": [1, 2]}, "Invalid JSON body"),
        ({"limit": 1001}, "Limit"),
        ({"limit": 0}, "Limit"),
        ({"limit": "ten"}, "Limit"),
        ({"start": -1}, "Start"),
        ({"fields": "RadarID,NoSuchField"}, "Unknown field: NoSuchField"),
        ({"fields": ",".join(ALL_FIELDS[:51])}, "Too many fields"),
        (
            {
                "fields": "Overview,Grid,default,LotSizeAcres,AssessedValue,FirstAmount,"
                "FirstDate,FirstPurpose,LastTransferType,ForeclosureRecDate,"
                "DefaultAmount,SaleDate,DelinquentAmount,DelinquentYear,PrimaryName,"
                "AnnualTaxes,EstimatedRent,Pool,isMailVacant,isSiteVacant"
            },
            "Too many fields",
        ),
        ({"criteria": [{"name": "State", "value": "OR"}]}, "must be an array"),
        ({"criteria": [{"name": "State"}]}, "Missing required criterion field: value"),
        ({"criteria": [{"name": "Beds", "value": [3, 4]}]}, "Invalid range"),
        ({"criteria": [{"name": "State", "value": []}]}, "no values"),
    ],
)
def test_bad_requests(sim, kwargs, fragment):
    _sim, url = sim
    kwargs = dict(kwargs)
    criteria = kwargs.pop("criteria", OR)
    resp = post(url, criteria, purchase=1, **kwargs)
    assert_error(resp, 400, fragment)
    assert _sim.stats()["billed_records"] == 0


def test_missing_purchase_and_non_json_body(sim):
    _sim, url = sim
    resp = requests.post(f"{url}/v1/properties", json={"Criteria": OR}, headers=AUTH, timeout=10)
    assert_error(resp, 400, "Missing required param: Purchase")
    assert resp.json()["error"] == "Missing required param: Purchase"
    resp = requests.post(
        f"{url}/v1/properties?Purchase=1", data="Criteria=OR", headers=AUTH, timeout=10
    )
    assert_error(resp, 400, "Invalid JSON body")
    assert_error(post(url, OR, purchase="maybe"), 400, "Purchase")


def test_max_limit_is_configurable_and_all_fieldset_is_exempt(sim):
    simulator, url = sim
    assert post(url, OR, limit=1000).json()["resultCount"] == 1000
    simulator.configure(max_limit=500)
    assert_error(post(url, OR, limit=501), 400, "Limit")
    assert post(url, OR, limit=500, purchase=1, fields="All").status_code == 200
    assert post(url, OR, purchase=1, limit=1, fields=",".join(ALL_FIELDS[:50])).status_code == 200


def test_unknown_paths_and_methods(sim):
    _sim, url = sim
    for path in ("/nope", "/v1/lists", "/v1/properties/P0000000/persons"):
        resp = requests.get(f"{url}{path}?Purchase=1", headers=AUTH, timeout=10)
        assert_error(resp, 404, "Not Found")
    resp = requests.get(f"{url}/v1/properties?Purchase=0", headers=AUTH, timeout=10)
    assert_error(resp, 405, "Method Not Allowed")
    resp = requests.post(f"{url}/v1/properties/P0000000?Purchase=0", headers=AUTH, timeout=10)
    assert_error(resp, 405, "Method Not Allowed")


# -- faults -----------------------------------------------------------------------------


def test_scripted_429_has_retry_after_and_is_not_billed(sim):
    simulator, url = sim
    simulator.configure(
        retry_after=0.05, scripted_faults=[{"kind": "429", "purchase": 1, "times": 1}]
    )
    resp = post(url, OR, purchase=1, limit=10)
    assert_error(resp, 429, "Too Many Requests")
    assert resp.headers["Retry-After"] == "0.05"
    assert post(url, OR, purchase=1, limit=10).status_code == 200
    stats = simulator.stats()
    assert stats["billed_records"] == 10
    assert stats["purchase_requests"] == 1
    assert [e["fault"] for e in stats["requests"]] == ["429", None]


@pytest.mark.parametrize("kind", ["500", "502", "503"])
def test_scripted_server_errors_are_not_billed(sim, kind):
    simulator, url = sim
    simulator.configure(scripted_faults=[{"kind": kind, "times": 1}])
    resp = post(url, OR, purchase=1, limit=10)
    assert resp.status_code == int(kind)
    assert RID_RE.match(resp.headers["X-Radar-Request-Id"])
    if kind == "502":
        assert "text/html" in resp.headers["Content-Type"]
    else:
        assert resp.json()["eventid"] == resp.headers["X-Radar-Request-Id"]
    stats = simulator.stats()
    assert stats["billed_records"] == 0 and stats["purchase_requests"] == 0
    assert stats["requests"][-1]["status"] == int(kind)
    assert stats["faults"] == {kind: 1}


def test_malformed_response_is_invalid_json_but_billed(sim):
    simulator, url = sim
    simulator.configure(scripted_faults=[{"kind": "malformed", "times": 1}])
    resp = post(url, OR, purchase=1, limit=20)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("application/json")
    with pytest.raises(ValueError):
        json.loads(resp.text)
    stats = simulator.stats()
    assert stats["billed_records"] == 20
    assert stats["requests"][-1]["fault"] == "malformed"


def test_slow_response_waits_then_answers_and_bills(sim):
    simulator, url = sim
    simulator.configure(slow_seconds=0.2, scripted_faults=[{"kind": "slow", "times": 1}])
    began = time.perf_counter()
    resp = post(url, OR, purchase=1, limit=5)
    elapsed = time.perf_counter() - began
    assert resp.status_code == 200 and resp.json()["resultCount"] == 5
    assert elapsed >= 0.2
    began = time.perf_counter()
    assert post(url, OR, purchase=1, limit=5).status_code == 200
    assert time.perf_counter() - began < 0.2
    stats = simulator.stats()
    assert stats["billed_records"] == 10 and stats["purchase_requests"] == 2
    # A client that gives up early still paid for the slow answer.
    simulator.configure(slow_seconds=1.0, scripted_faults=[{"kind": "slow", "times": 1}])
    with pytest.raises(requests.exceptions.ReadTimeout):
        post(url, OR, purchase=1, limit=7, timeout=0.3)
    deadline = time.monotonic() + 5
    while simulator.stats()["billed_records"] != 17 and time.monotonic() < deadline:
        time.sleep(0.02)  # the server thread is still sleeping out the fault
    assert simulator.stats()["billed_records"] == 17


def test_latency_is_added(sim):
    simulator, url = sim
    simulator.configure(latency_ms=150)
    began = time.perf_counter()
    assert post(url, OR).status_code == 200
    assert time.perf_counter() - began >= 0.15


def test_scripted_fault_targets_start_and_fires_exactly_times(sim):
    simulator, url = sim
    simulator.configure(scripted_faults=[{"kind": "500", "purchase": 1, "start": 2400, "times": 2}])
    # A preview at the same Start is not a purchase, so it is not targeted.
    assert post(url, OR, purchase=0, limit=400, start=2400).status_code == 200
    statuses = {}
    for start in range(0, 4000, 400):
        statuses[start] = post(url, OR, purchase=1, limit=400, start=start).status_code
    assert statuses == {s: (500 if s == 2400 else 200) for s in range(0, 4000, 400)}
    assert post(url, OR, purchase=1, limit=400, start=2400).status_code == 500
    assert post(url, OR, purchase=1, limit=400, start=2400).status_code == 200
    assert post(url, OR, purchase=1, limit=400, start=2400).status_code == 200
    stats = simulator.stats()
    assert stats["faults"] == {"500": 2}
    assert stats["billed_records"] == 11 * 400
    # reset() re-arms the script.
    simulator.reset()
    assert post(url, OR, purchase=1, limit=400, start=2400).status_code == 500


def test_forever_script_and_rearm_on_replace(sim):
    simulator, url = sim
    simulator.configure(scripted_faults=[{"kind": "503", "times": -1}])
    assert [post(url, OR).status_code for _ in range(4)] == [503] * 4
    simulator.configure(scripted_faults=[{"kind": "503", "times": 1}])
    assert [post(url, OR).status_code for _ in range(2)] == [503, 200]
    simulator.configure(scripted_faults=[{"kind": "503", "times": 1}])
    assert post(url, OR).status_code == 503


def test_random_faults_follow_rate_and_seed(sim):
    simulator, url = sim
    simulator.configure(fault_rate=1.0, fault_kinds=["503"])
    assert {post(url, OR).status_code for _ in range(5)} == {503}
    simulator.configure(fault_rate=0.5, fault_kinds=["429", "500"], retry_after=0.01)
    simulator.reset()
    first = [post(url, OR).status_code for _ in range(40)]
    simulator.reset()
    second = [post(url, OR).status_code for _ in range(40)]
    assert first == second  # seeded: the same sequence after reset
    assert set(first) == {200, 429, 500}
    assert 8 <= sum(s != 200 for s in first) <= 32
    simulator.configure(fault_rate=0.0)
    assert {post(url, OR).status_code for _ in range(10)} == {200}


def test_total_drift_changes_the_result_set(sim):
    simulator, url = sim
    crit = [{"name": "County", "value": ["41051"]}]
    original = [r["RadarID"] for r in post(url, crit, limit=1000).json()["results"]]
    simulator.configure(total_drift=5)
    assert total(url, crit) == 2000  # previews do not move it
    purchase_rows(url, crit, limit=10, fields="RadarID")
    assert total(url, crit) == 2005
    purchase_rows(url, crit, limit=10, fields="RadarID")
    after = post(url, crit, limit=20).json()
    assert after["totalResultCount"] == 2010
    new_ids = [r["RadarID"] for r in after["results"][:10]]
    assert not set(new_ids) & set(original) and len(set(new_ids)) == 10
    assert [r["RadarID"] for r in after["results"][10:]] == original[:10]
    simulator.reset()
    simulator.configure(total_drift=-7)
    purchase_rows(url, crit, limit=10, fields="RadarID")
    shrunk = post(url, crit, limit=5).json()
    assert shrunk["totalResultCount"] == 1993
    assert [r["RadarID"] for r in shrunk["results"]] == original[7:12]


def test_concurrent_purchases_are_counted_exactly(sim):
    simulator, url = sim

    def buy(page):
        with requests.Session() as http:
            resp = http.post(
                f"{url}/v1/properties",
                params={"Purchase": 1, "Limit": 100, "Start": page * 100, "Fields": "RadarID"},
                json={"Criteria": OR},
                headers=AUTH,
                timeout=10,
            )
        return [r["RadarID"] for r in resp.json()["results"]]

    with ThreadPoolExecutor(max_workers=8) as pool:
        pages = list(pool.map(buy, range(40)))
    ids = [i for page in pages for i in page]
    assert len(set(ids)) == 4000
    stats = simulator.stats()
    assert stats["billed_records"] == 4000 and stats["purchase_requests"] == 40
    assert len(stats["requests"]) == 40
    assert set(stats["billed_radar_ids"]) == set(ids)


# -- standing fault modes (issue 9) ----------------------------------------------------


def test_price_is_the_apps_configured_price(sim):
    simulator, url = sim
    assert SimulatorConfig().price_per_record == Config.PRICE_PER_EXPORT == 0.10
    body = post(url, OR, purchase=1, limit=400).json()
    assert body["totalCost"] == "40"  # not "400": the demo bills what the preview estimates
    assert post(url, OR, purchase=0, limit=400).json()["totalCost"] == "0"
    simulator.configure(price_per_record=0.025)
    assert post(url, OR, purchase=1, limit=3).json()["totalCost"] == "0.075"
    stats = requests.get(f"{url}/_sim/stats", timeout=10).json()
    assert stats["billed_records"] == 403
    assert stats["billed_cost"] == pytest.approx(40.075)
    assert stats["price_per_record"] == 0.025
    for bad in (-1, "cheap", float("inf"), True):
        with pytest.raises(ValueError):
            simulator.configure(price_per_record=bad)


def ids_of(resp):
    assert resp.status_code == 200, resp.text
    return [r["RadarID"] for r in resp.json()["results"]]


def test_total_after_first_shrinks_the_search_after_its_first_page(sim):
    simulator, url = sim
    clean = ids_of(post(url, OR, limit=1000, start=1000))
    simulator.configure(total_after_first=3000)
    first = post(url, OR, limit=1000, start=0).json()
    assert first["totalResultCount"] == 10_000 and first["resultCount"] == 1000
    second = post(url, OR, limit=1000, start=1000).json()
    assert second["totalResultCount"] == 3000
    assert [r["RadarID"] for r in second["results"]] == clean
    bought = post(url, OR, purchase=1, limit=1000, start=2500).json()
    assert (bought["resultCount"], bought["totalResultCount"]) == (500, 3000)
    past_the_end = post(url, OR, purchase=1, limit=400, start=3000).json()
    assert past_the_end["results"] == [] and past_the_end["totalCost"] == "0"
    assert post(url, OR, limit=1).json()["totalResultCount"] == 3000  # a repeated first page
    assert simulator.stats()["billed_records"] == 500
    # Another search keeps its size until its own first page has been served.
    county = [{"name": "County", "value": ["41051"]}]
    assert post(url, county, limit=10, start=100).json()["totalResultCount"] == 2000
    assert post(url, county, limit=1).json()["totalResultCount"] == 2000
    assert post(url, county, limit=1, start=5).json()["totalResultCount"] == 3000
    simulator.reset()  # re-arms: every search starts at its real size again
    assert post(url, OR, limit=1).json()["totalResultCount"] == 10_000


def test_total_after_first_grows_the_search_with_new_records(sim):
    simulator, url = sim
    simulator.configure(total_after_first=10_600)
    assert post(url, OR, limit=1).json()["totalResultCount"] == 10_000
    page = post(url, OR, purchase=1, limit=1000, start=9500, fields="RadarID,State").json()
    assert (page["totalResultCount"], page["resultCount"]) == (10_600, 1000)
    ids = [r["RadarID"] for r in page["results"]]
    assert len(set(ids)) == 1000 and all(RADAR_ID_RE.match(i) for i in ids)
    assert {r["State"] for r in page["results"]} == {"OR"}
    originals = set(ids_of(post(url, [{"name": "State", "value": ["OR", "ID"]}], limit=1000)))
    assert not set(ids[500:]) & originals  # the grown records are new RadarIDs
    assert len(ids_of(post(url, OR, limit=1000, start=10_500))) == 100
    assert simulator.stats()["billed_records"] == 1000


def test_limit_cap_returns_fewer_rows_than_asked_and_bills_only_those(sim):
    simulator, url = sim
    simulator.configure(limit_cap=500)
    bought = post(url, OR, purchase=1, limit=1000).json()
    assert (bought["resultCount"], bought["totalResultCount"]) == (500, 10_000)
    assert bought["totalCost"] == "50"
    assert len(ids_of(post(url, OR, purchase=0, limit=1000, start=200))) == 500
    assert len(ids_of(post(url, OR, purchase=0, limit=20))) == 20  # under the cap: as asked
    stats = simulator.stats()
    assert stats["billed_records"] == 500 and len(stats["billed_radar_ids"]) == 500
    with pytest.raises(ValueError):
        simulator.configure(limit_cap=0)


def test_missing_radar_id_every_nth_purchased_record_is_still_billed(sim):
    simulator, url = sim
    expected = ids_of(post(url, OR, purchase=0, limit=10))
    simulator.configure(missing_radar_id_every=3)
    rows = purchase_rows(url, OR, limit=10, fields="RadarID,APN")
    without = [n for n, row in enumerate(rows, 1) if "RadarID" not in row]
    assert without == [3, 6, 9]
    assert all("APN" in row for row in rows)
    assert [row["RadarID"] for row in rows if "RadarID" in row] == [
        rid for n, rid in enumerate(expected, 1) if n % 3
    ]
    stats = simulator.stats()
    assert stats["billed_records"] == 10 and set(stats["billed_radar_ids"]) == set(expected)
    assert ids_of(post(url, OR, purchase=0, limit=10)) == expected  # free pages keep them


def test_oversize_field_holds_exactly_the_configured_length(sim):
    simulator, url = sim
    clean = purchase_rows(url, OR, limit=5, fields="RadarID,APN,Owner")
    simulator.configure(oversize_field="APN", oversize_length=300)
    rows = purchase_rows(url, OR, limit=5, fields="RadarID,APN,Owner")
    for before, after in zip(clean, rows, strict=True):
        assert len(after["APN"]) == 300 and after["APN"].startswith(before["APN"])
        assert (after["RadarID"], after["Owner"]) == (before["RadarID"], before["Owner"])
    assert len({row["APN"] for row in rows}) == 5  # still one value per record
    simulator.configure(oversize_field="Owner", oversize_length=70_000)
    (row,) = purchase_rows(url, OR, limit=1, fields="Owner")
    assert len(row["Owner"]) == 70_000
    with pytest.raises(ValueError):
        simulator.configure(oversize_field="NoSuchField")
    with pytest.raises(ValueError):
        simulator.configure(oversize_length=0)


def test_trickled_body_never_trips_a_per_read_timeout(sim):
    simulator, url = sim
    simulator.configure(trickle_seconds=1.5)
    began = time.monotonic()
    # The per-read timeout is 0.5 s, a third of the trickle: it never fires.
    resp = requests.post(
        f"{url}/v1/properties",
        params={"Purchase": 1, "Limit": 400},
        json={"Criteria": OR},
        headers=AUTH,
        timeout=0.5,
        stream=True,
    )
    headers_at = time.monotonic() - began
    # Processed and billed before the first piece of the body goes out.
    assert simulator.stats()["billed_records"] == 400
    arrivals, body = [], b""
    while piece := resp.raw.read1(1 << 16):
        arrivals.append(time.monotonic() - began)
        body += piece
    assert headers_at < 0.5
    assert 1.4 <= arrivals[-1] < 3.0
    assert len(arrivals) >= 10
    gaps = [b - a for a, b in zip([headers_at, *arrivals], arrivals, strict=False)]
    assert max(gaps) < 0.4
    assert len(json.loads(body)["results"]) == 400
    assert int(resp.headers["Content-Length"]) == len(body)
    simulator.configure(trickle_seconds=0)
    began = time.monotonic()
    assert post(url, OR, purchase=1, limit=400).status_code == 200
    assert time.monotonic() - began < 1.0


def test_token_rotation_revokes_the_token_until_a_new_one_is_set(sim):
    simulator, url = sim
    simulator.configure(rotate_token_after=2)
    assert post(url, OR).status_code == 200
    assert post(url, OR, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert post(url, OR, purchase=1, limit=5).status_code == 200
    # The third authenticated request: the same 401 as any bad token; nothing billed.
    for _ in range(2):
        assert_error(post(url, OR, purchase=1, limit=5), 401, "Unauthorized")
    stats = simulator.stats()
    assert stats["token_revoked"] is True and stats["billed_records"] == 5
    resp = requests.post(f"{url}/_sim/config", json={"token": "rotated-token"}, timeout=10)
    assert resp.json()["token"] == "rotated-token" and resp.json()["rotate_token_after"] is None
    assert post(url, OR).status_code == 401  # the old token stays dead
    new = {"Authorization": "Bearer rotated-token"}
    assert [post(url, OR, headers=new).status_code for _ in range(5)] == [200] * 5
    assert simulator.stats()["token_revoked"] is False
    # reset() re-arms a configured rotation.
    simulator.configure(token=TOKEN, rotate_token_after=0)
    assert post(url, OR).status_code == 401
    simulator.reset()
    assert post(url, OR).status_code == 401
    simulator.configure(rotate_token_after=None)
    assert post(url, OR).status_code == 200


def test_fault_modes_over_the_control_endpoint(sim):
    simulator, url = sim
    modes = {
        "total_after_first": 3000,
        "limit_cap": 250,
        "missing_radar_id_every": 7,
        "oversize_field": "APN",
        "oversize_length": 200,
        "trickle_seconds": 0.25,
        "rotate_token_after": 50,
        "price_per_record": 0.2,
    }
    cfg = requests.post(f"{url}/_sim/config", json=modes, timeout=10).json()
    assert {k: cfg[k] for k in modes} == modes
    assert requests.get(f"{url}/_sim/config", timeout=10).json() == cfg
    off = {k: dataclasses.asdict(SimulatorConfig())[k] for k in modes}
    assert off == {
        "total_after_first": None,
        "limit_cap": None,
        "missing_radar_id_every": 0,
        "oversize_field": None,
        "oversize_length": 1000,
        "trickle_seconds": 0.0,
        "rotate_token_after": None,
        "price_per_record": Config.PRICE_PER_EXPORT,
    }
    for bad in (
        {"total_after_first": -1},
        {"limit_cap": "many"},
        {"missing_radar_id_every": 1.5},
        {"oversize_field": "Nope"},
        {"trickle_seconds": -0.1},
        {"rotate_token_after": True},
        {"price_per_record": -0.1},
    ):
        resp = requests.post(f"{url}/_sim/config", json=bad, timeout=10)
        assert resp.status_code == 400, bad
    assert requests.get(f"{url}/_sim/config", timeout=10).json() == cfg  # nothing applied


# -- control endpoints ------------------------------------------------------------------


def test_control_endpoints(sim):
    simulator, url = sim
    cfg = requests.get(f"{url}/_sim/config", timeout=10).json()
    assert cfg == dataclasses.asdict(SimulatorConfig())
    changed = requests.post(
        f"{url}/_sim/config",
        json={"latency_ms": 1, "fault_kinds": ["429"], "max_limit": 10},
        timeout=10,
    ).json()
    assert changed["max_limit"] == 10 and changed["fault_kinds"] == ["429"]
    assert simulator.config.max_limit == 10
    assert_error(post(url, OR, limit=11), 400, "Limit")
    bad = requests.post(f"{url}/_sim/config", json={"no_such_knob": 1}, timeout=10)
    assert bad.status_code == 400
    bad = requests.post(f"{url}/_sim/config", json={"fault_rate": 2}, timeout=10)
    assert bad.status_code == 400
    bad = requests.post(
        f"{url}/_sim/config", json={"scripted_faults": [{"kind": "418"}]}, timeout=10
    )
    assert bad.status_code == 400
    post(url, OR, purchase=1, limit=3)
    stats = requests.get(f"{url}/_sim/stats", timeout=10).json()
    assert stats["billed_records"] == 3 and len(stats["requests"]) == 2
    entry = stats["requests"][-1]
    assert {
        "t",
        "method",
        "path",
        "purchase",
        "start",
        "limit",
        "status",
        "result_count",
        "fault",
    } <= set(entry)
    assert entry["path"] == "/v1/properties" and entry["method"] == "POST"
    tail = requests.get(f"{url}/_sim/stats?tail=1", timeout=10).json()
    assert len(tail["requests"]) == 1
    assert requests.post(f"{url}/_sim/reset", timeout=10).status_code == 200
    stats = requests.get(f"{url}/_sim/stats", timeout=10).json()
    assert stats["requests"] == [] and stats["billed_records"] == 0
    assert stats["billed_radar_ids"] == {} and stats["purchase_requests"] == 0
    assert requests.get(f"{url}/_sim/health", timeout=10).json()["records"] == 121_400
    assert requests.get(f"{url}/_sim/reset", timeout=10).status_code == 405


def test_configure_rejects_bad_values_and_is_atomic(sim):
    simulator, _url = sim
    with pytest.raises(ValueError):
        simulator.configure(latency_ms=5, fault_kinds=["teapot"])
    assert simulator.config.latency_ms == 0.0  # nothing applied
    with pytest.raises(ValueError):
        simulator.configure(bogus=1)


# -- plain WSGI -------------------------------------------------------------------------


def test_direct_wsgi_client():
    sim = Simulator(SimulatorConfig(token="t0k"), get_dataset())
    client = Client(sim)
    resp = client.post(
        "/v1/properties?Purchase=1&Limit=3&Fields=RadarID,County",
        json={"Criteria": [{"name": "County", "value": ["41051"]}]},
        headers={"Authorization": "Bearer t0k"},
    )
    assert resp.status_code == 200
    assert resp.json["totalResultCount"] == 2000 and resp.json["totalCost"] == "0.3"
    assert all(r["County"] == "41051" for r in resp.json["results"])
    assert sim.stats()["billed_records"] == 3
    resp = client.post(
        "/v1/properties?Purchase=1",
        json={"Criteria": []},
        headers={"Authorization": "Bearer demo-token"},
    )
    assert resp.status_code == 401
    assert RID_RE.match(resp.headers["X-Radar-Request-Id"])


def test_threads_do_not_share_state_between_simulators():
    ds = get_dataset()
    a, b = Simulator(dataset=ds), Simulator(dataset=ds)
    body = {"Criteria": OR}
    Client(a).post("/v1/properties?Purchase=1&Limit=4", json=body, headers=AUTH)
    assert a.stats()["billed_records"] == 4 and b.stats()["billed_records"] == 0


def test_command_line_price_defaults_to_the_apps_price():
    assert parse_args([], {})[1].price_per_record == Config.PRICE_PER_EXPORT
    # The environment's PRICE_PER_EXPORT, the one the app estimates with, when it is set.
    assert parse_args([], {"PRICE_PER_EXPORT": "0.05"})[1].price_per_record == 0.05
    assert parse_args(["--price", "0.2"], {"PRICE_PER_EXPORT": "0.05"})[1].price_per_record == 0.2
    with pytest.raises(SystemExit):
        parse_args(["--price", "-1"], {})


def test_command_line_entry_point():
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "simulator",
            "--port",
            "0",
            "--scale",
            "0.01",
            "--token",
            "cli-token",
            "--price",
            "0.5",
        ],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        match = re.search(r"http://[\d.]+:(\d+)", line)
        assert match, line
        url = match.group(0)
        resp = requests.post(
            f"{url}/v1/properties?Purchase=0&Limit=1",
            json={"Criteria": OR},
            headers={"Authorization": "Bearer cli-token"},
            timeout=10,
        )
        assert resp.json()["totalResultCount"] == 100
        bought = requests.post(
            f"{url}/v1/properties?Purchase=1&Limit=3",
            json={"Criteria": OR},
            headers={"Authorization": "Bearer cli-token"},
            timeout=10,
        )
        assert bought.json()["totalCost"] == "1.5"
        stats = requests.get(f"{url}/_sim/stats", timeout=10).json()
        assert (stats["billed_records"], stats["billed_cost"]) == (3, 1.5)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()
