"""The outcome file (issue 12, item 5): one CSV row per record the search matched, with
what became of it (bought, reused, suppressed, vanished), why, its chunk and its cost."""

from __future__ import annotations

import csv
import io
from collections import Counter

import pytest

from radar_app.outcomes import HEADER
from tests.conftest import ApiClient
from tests.helpers import MULTNOMAH, job_row
from tests.test_suppression import first_radar_ids, upload


@pytest.fixture
def signed_in(client, auth, user):
    assert auth.login().status_code == 302
    return client


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_every_match_has_its_outcome_and_the_costs_add_up(
    app, signed_in, api: ApiClient, run_worker, simulator
):
    matches = first_radar_ids(app, 40)
    # A first job stores the first 10; the second reuses those and suppresses 5 others.
    first = api.post("/api/batch-jobs", json={"criteria": MULTNOMAH, "max_records": 10}).json
    run_worker()
    suppressed = matches[20:25]
    assert upload(signed_in, "DNC", "\n".join(suppressed), default=True).status_code == 302
    second = api.post("/api/batch-jobs", json={"criteria": MULTNOMAH, "max_records": 40}).json
    run_worker()
    job = job_row(app, second["id"])
    assert (job.reused_count, job.suppressed_count, job.purchased_count) == (10, 5, 25)

    response = signed_in.get(f"/jobs/{second['id']}/outcomes.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "outcomes.csv" in response.headers["Content-Disposition"]
    assert response.text.splitlines()[0].split(",") == HEADER
    rows = rows_of(response.text)
    assert [row["radar_id"] for row in rows] == matches
    assert [int(row["position"]) for row in rows] == list(range(1, 41))
    assert Counter(row["outcome"] for row in rows) == {"bought": 25, "reused": 10, "suppressed": 5}
    assert {row["radar_id"] for row in rows if row["outcome"] == "reused"} == set(matches[:10])
    assert {row["radar_id"] for row in rows if row["outcome"] == "suppressed"} == set(suppressed)
    assert sum(float(row["cost"]) for row in rows) == pytest.approx(job.cost_total, abs=0.01)
    assert all(float(row["cost"]) == 0 for row in rows if row["outcome"] != "bought")
    assert {row["chunk"] for row in rows} == {"1"}  # 40 records: one chunk of the batch size

    # The same file through the API; the first job's file lists its own ten, all bought.
    assert api.get(f"/api/batch-jobs/{second['id']}/outcomes.csv").text == response.text
    earlier = rows_of(api.get(f"/api/batch-jobs/{first['id']}/outcomes.csv").text)
    assert [row["outcome"] for row in earlier] == ["bought"] * 10


def test_a_job_not_run_yet_lists_its_rows_as_pending(app, signed_in, api, simulator):
    created = api.post("/api/batch-jobs", json={"criteria": MULTNOMAH, "max_records": 5}).json
    text = signed_in.get(f"/jobs/{created['id']}/outcomes.csv").text
    assert text.splitlines() == [",".join(HEADER)]  # no snapshot yet: just the header
