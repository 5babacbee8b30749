"""The script our users write without radar_app: the peer radar_app is measured against.

Synchronous paging through POST /v1/properties with Purchase=1, 400 records per request,
one INSERT per record into a table of its own, a commit per page. Written the way a user
writes it from PropertyRadar's API facts alone: control parameters (Purchase, Limit,
Start, Fields) in the query string and only {"Criteria": [...]} in the body; a bearer
token; page with Start (a 0-based row offset) until Start reaches totalResultCount; the
records come back under "results". No retries, no dedupe against earlier runs: every
run buys every record again (Purchase=1 rows are billed each time they are returned).

`python -m bench.script API_URL TOKEN DATABASE_URL STATE RECORDS` runs it by hand;
the bench calls `import_leads` in its own process, beside radar_app's run.
"""

from __future__ import annotations

import sqlite3
import sys
from typing import Any

import psycopg
import requests

# The same fields radar_app buys when a job names none (its "lead essentials"), so both
# sides move the same bytes; tests/test_bench_script.py keeps the two lists equal.
FIELDS = [
    "RadarID", "APN", "Address", "City", "State", "ZipFive", "County", "Owner", "Owner2",
    "OwnerFirstName", "OwnerLastName", "OwnerAddress", "OwnerCity", "OwnerState",
    "OwnerZipFive", "PType", "Beds", "Baths", "SqFt", "YearBuilt", "AVM", "AvailableEquity",
    "EquityPercent", "isSameMailingOrExempt", "inForeclosure", "ForeclosureStage",
    "inTaxDelinquency", "isListedForSale", "LastTransferRecDate",
]  # fmt: skip
PAGE_SIZE = 400
TABLE = "script_leads"


def connect(database_url: str) -> Any:
    """sqlite:///path or postgresql[+psycopg]://...: the two databases the bench runs on."""
    if database_url.startswith("sqlite:///"):
        return sqlite3.connect(database_url.removeprefix("sqlite:///"))
    return psycopg.connect(database_url.replace("postgresql+psycopg://", "postgresql://", 1))


def import_leads(api_url: str, token: str, criteria: list[dict], wanted: int, db: Any) -> int:
    """Buy the first `wanted` matches of `criteria` into TABLE; returns the records stored."""
    mark = "?" if isinstance(db, sqlite3.Connection) else "%s"
    columns = ", ".join(f'"{name}"' for name in FIELDS)
    db.execute(
        f'CREATE TABLE IF NOT EXISTS {TABLE} ("RadarID" TEXT PRIMARY KEY, '
        + ", ".join(f'"{name}" TEXT' for name in FIELDS[1:])
        + ")"
    )
    insert = (
        f"INSERT INTO {TABLE} ({columns}) VALUES ({', '.join([mark] * len(FIELDS))}) "
        f'ON CONFLICT ("RadarID") DO UPDATE SET '
        + ", ".join(f'"{name}" = excluded."{name}"' for name in FIELDS[1:])
    )
    http = requests.Session()
    http.headers.update({"Authorization": f"Bearer {token}", "Accept": "application/json"})
    start = 0
    while start < wanted:
        params = {"Purchase": 1, "Start": start, "Limit": min(PAGE_SIZE, wanted - start)}
        response = http.post(
            f"{api_url}/v1/properties",
            params={**params, "Fields": ",".join(FIELDS)},
            json={"Criteria": criteria},
            timeout=60,
        )
        response.raise_for_status()
        page = response.json()
        cursor = db.cursor()
        for record in page["results"]:
            cursor.execute(insert, [record.get(name) for name in FIELDS])
        db.commit()
        start += len(page["results"])
        if not page["results"] or start >= page["totalResultCount"]:
            break
    return start


if __name__ == "__main__":
    api_url, token, database_url, state, records = sys.argv[1:6]
    with connect(database_url) as connection:
        stored = import_leads(
            api_url, token, [{"name": "State", "value": [state]}], int(records), connection
        )
    print(f"stored {stored:,} records")
