"""The bench's peer (bench/script.py): the hand-written script radar_app is measured
against must do the job a user's script does, no less (else the comparison flatters
radar_app) and no more: same fields, 400 records per Purchase=1 request, every record
stored, run against the real simulator over HTTP on SQLite and PostgreSQL."""

from __future__ import annotations

from contextlib import closing

from bench import script
from radar_app.propertyradar.criteria import LEAD_FIELDS
from simulator import Simulator
from tests.conftest import SIM_TOKEN


def test_the_script_buys_the_fields_radar_app_buys():
    # Both sides must move the same bytes per record for the figures to compare.
    assert script.FIELDS == LEAD_FIELDS


def _stored(database_url: str) -> dict[str, tuple]:
    with closing(script.connect(database_url)) as connection:
        cursor = connection.cursor()
        cursor.execute(f'SELECT "RadarID", "Address", "ZipFive" FROM {script.TABLE}')
        return {row[0]: row[1:] for row in cursor.fetchall()}


def test_the_script_stores_every_record_it_buys_at_400_a_request(
    simulator: Simulator, simulator_url: str, database_url: str
):
    criteria = [{"name": "State", "value": ["OR"]}]
    with closing(script.connect(database_url)) as connection:
        stored = script.import_leads(simulator_url, SIM_TOKEN, criteria, 1000, connection)

    assert stored == 1000
    stats = simulator.stats(tail=10)
    assert [r["limit"] for r in stats["requests"]] == [400, 400, 200]
    assert stats["purchase_requests"] == 3 and stats["count_requests"] == 0
    rows = _stored(database_url)
    assert set(rows) == set(stats["billed_radar_ids"]) and len(rows) == 1000
    # The values are the ones sent, not placeholders.
    radar_id, (address, zip_five) = next(iter(rows.items()))
    index = simulator.dataset.index_of(radar_id)
    record = simulator.dataset.record(index, radar_id)
    assert (address, str(zip_five)) == (record["Address"], str(record["ZipFive"]))


def test_the_script_stops_at_the_last_match_and_buys_again_when_rerun(
    simulator: Simulator, simulator_url: str, database_url: str
):
    criteria = [{"name": "State", "value": ["ID"]}]
    total = simulator.dataset.count(criteria)
    for _run in range(2):
        with closing(script.connect(database_url)) as connection:
            stored = script.import_leads(
                simulator_url, SIM_TOKEN, criteria, total + 1000, connection
            )
        assert stored == total

    # No dedupe against the earlier run (what radar_app's re-run row is measured
    # against): every record billed twice, stored once.
    stats = simulator.stats(tail=0)
    assert stats["billed_records"] == 2 * total
    assert set(stats["billed_radar_ids"].values()) == {2}
    assert len(_stored(database_url)) == total
