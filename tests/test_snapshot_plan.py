"""The free snapshot's paging plan (radar_app/snapshot.py): concurrent pages once the
first answer gives the total, following what the API actually returns."""

from __future__ import annotations

from radar_app.snapshot import SnapshotPlan


def drain(plan: SnapshotPlan) -> list[tuple[int, int]]:
    asked = []
    while (request := plan.next_request()) is not None:
        asked.append(request)
    return asked


def test_only_the_first_page_is_asked_until_its_total_is_known() -> None:
    plan = SnapshotPlan(page_size=1000, max_records=None)
    assert drain(plan) == [(0, 1000)]
    plan.answered(0, 1000, returned=1000, total=3500, added=1000)
    assert drain(plan) == [(1000, 1000), (2000, 1000), (3000, 500)]
    assert not plan.done


def test_pages_answered_out_of_order_move_the_checkpoint_only_over_a_contiguous_prefix() -> None:
    plan = SnapshotPlan(page_size=1000, max_records=None)
    drain(plan)
    plan.answered(0, 1000, 1000, 3000, 1000)
    drain(plan)
    plan.answered(2000, 1000, 1000, 3000, 1000)
    assert plan.checkpoint == 1000 and not plan.done
    plan.answered(1000, 1000, 1000, 3000, 1000)
    assert plan.checkpoint == 3000 and plan.done and plan.count == 3000


def test_a_page_capped_by_the_api_is_followed_by_a_request_for_the_rest() -> None:
    plan = SnapshotPlan(page_size=1000, max_records=None)
    drain(plan)
    plan.answered(0, 1000, returned=500, total=2000, added=500)
    assert drain(plan) == [(500, 500), (1000, 1000)]
    assert plan.checkpoint == 500


def test_an_empty_page_ends_the_snapshot_when_the_result_set_shrank() -> None:
    plan = SnapshotPlan(page_size=1000, max_records=None)
    drain(plan)
    plan.answered(0, 1000, 1000, 4000, 1000)
    assert drain(plan) == [(1000, 1000), (2000, 1000), (3000, 1000)]
    plan.answered(1000, 1000, returned=0, total=1000, added=0)
    plan.answered(2000, 1000, returned=0, total=1000, added=0)
    plan.answered(3000, 1000, returned=0, total=1000, added=0)
    assert plan.done and drain(plan) == []


def test_a_growing_total_extends_the_plan() -> None:
    plan = SnapshotPlan(page_size=1000, max_records=None)
    drain(plan)
    plan.answered(0, 1000, 1000, 1500, 1000)
    assert drain(plan) == [(1000, 500)]
    plan.answered(1000, 500, 500, 2200, 500)
    assert drain(plan) == [(1500, 700)]


def test_max_records_caps_the_pages_and_repeats_are_made_up_past_the_cap() -> None:
    plan = SnapshotPlan(page_size=1000, max_records=1500)
    assert drain(plan) == [(0, 1000)]
    plan.answered(0, 1000, 1000, 5000, added=990)  # ten RadarIDs were repeats
    assert drain(plan) == [(1000, 500)]
    plan.answered(1000, 500, 500, 5000, added=500)
    assert not plan.done
    assert drain(plan) == [(1500, 10)]
    plan.answered(1500, 10, 10, 5000, added=10)
    assert plan.count == 1500 and plan.done


def test_a_resumed_plan_starts_at_the_checkpoint() -> None:
    plan = SnapshotPlan(page_size=1000, max_records=None, start=2000, count=2000)
    assert drain(plan) == [(2000, 1000)]
    plan.answered(2000, 1000, 1000, 4000, 1000)
    assert drain(plan) == [(3000, 1000)]
