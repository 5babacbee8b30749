"""Plain helper functions for tests (no factory framework)."""

from __future__ import annotations

import os
import signal
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import psutil
import sqlalchemy as sa
from flask import Flask

from radar_app import batches
from radar_app.extensions import db
from radar_app.models import BatchJob, JobProperty, LedgerEntry, Property, User
from radar_app.queue import get_queue

T = TypeVar("T")

OREGON = [{"name": "State", "value": ["OR"]}]  # exactly 10,000 simulator records
MULTNOMAH = [{"name": "State", "value": ["OR"]}, {"name": "County", "value": ["41051"]}]  # 2,000


def wait_for(check: Callable[[], T], timeout: float = 30, what: str = "condition") -> T:
    """Poll until `check()` is truthy and return it; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def job_row(app: Flask, job_id: str) -> BatchJob:
    with app.app_context():
        job = db.session.scalar(sa.select(BatchJob).where(BatchJob.job_id == job_id))
        assert job is not None
        db.session.expunge(job)
        return job


def stored_radar_ids(app: Flask, job_id: str) -> list[str]:
    """RadarIDs linked to the job, one entry per link (duplicates would show)."""
    with app.app_context():
        return list(
            db.session.scalars(
                sa.select(Property.radar_id)
                .join(JobProperty, JobProperty.property_id == Property.id)
                .join(BatchJob, BatchJob.id == JobProperty.batch_job_id)
                .where(BatchJob.job_id == job_id)
            )
        )


def count_rows(app: Flask, model: Any) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def purchase_requests(stats: dict[str, Any], status: int | None = 200) -> list[dict[str, Any]]:
    return [
        r
        for r in stats["requests"]
        if r["purchase"] == 1 and (status is None or r["status"] == status)
    ]


def make_job(
    app: Flask, email: str = "owner@example.com", criteria: Any = MULTNOMAH, **fields: Any
) -> str:
    """A job row created through batches.create_job (not queued), then given `fields`."""
    with app.app_context():
        owner = db.session.scalar(sa.select(User).where(User.email == email))
        job = batches.create_job(
            db.session,
            get_queue(),
            batches.QueueSettings.from_config(app.config),
            owner=owner,
            criteria=criteria,
            name=fields.pop("name", None),
            enqueue=False,
        )
        for key, value in fields.items():
            setattr(job, key, value)
        db.session.commit()
        return job.job_id


def ledger_total(app: Flask, batch_id: int) -> int:
    """What the job's ledger says PropertyRadar may have billed: the records of its billed
    rows plus the records asked for by its "possibly billed" rows (lost responses)."""
    counted = sa.case(
        (LedgerEntry.outcome == LedgerEntry.BILLED, sa.func.coalesce(LedgerEntry.result_count, 0)),
        (LedgerEntry.outcome == LedgerEntry.POSSIBLY_BILLED, LedgerEntry.requested),
        else_=0,
    )
    with app.app_context():
        return int(
            db.session.scalar(
                sa.select(sa.func.coalesce(sa.func.sum(counted), 0)).where(
                    LedgerEntry.batch_job_id == batch_id
                )
            )
        )


@dataclass
class LedgerCheck:
    """A job's ledger matched row by row (by X-Client-Request-Id) with the requests the
    simulator served and billed."""

    # Records PropertyRadar billed that no ledger row of the job accounts for.
    unaccounted: int
    # "Possibly billed" rows for requests PropertyRadar never saw (the horse was killed
    # after journaling the request and before it left): (chunk, records asked for).
    never_sent: list[tuple[int | None, int]]
    # Requests whose ledger rows say more or less than PropertyRadar billed for them,
    # other than the never-sent ones: (client request id, ledger, billed).
    mismatched: list[tuple[str | None, int, int]]


def check_ledger(app: Flask, batch_id: int, stats: dict[str, Any]) -> LedgerCheck:
    """Match the job's ledger rows with the simulator's request log (``stats``)."""
    billed: dict[str | None, int] = defaultdict(int)
    for request in stats["requests"]:
        if request["purchase"]:
            billed[request.get("client_request_id")] += request.get("billed", 0)
    with app.app_context():
        rows = db.session.scalars(
            sa.select(LedgerEntry).where(LedgerEntry.batch_job_id == batch_id)
        ).all()
        ledger: dict[str | None, int] = defaultdict(int)
        possibly: dict[str | None, list[LedgerEntry]] = defaultdict(list)
        for row in rows:
            if row.outcome == LedgerEntry.BILLED:
                ledger[row.client_request_id] += row.result_count or 0
            else:
                ledger[row.client_request_id] += row.requested
                possibly[row.client_request_id].append(row)
        never_sent = [
            (row.page, row.requested)
            for request_id, ledgered in possibly.items()
            if request_id is not None and request_id not in billed
            for row in ledgered
        ]
    unaccounted = sum(n for request_id, n in billed.items() if request_id not in ledger)
    mismatched = [
        (request_id, ledger[request_id], billed.get(request_id, 0))
        for request_id in ledger
        if ledger[request_id] != billed.get(request_id, 0)
        and not (request_id in possibly and request_id not in billed)
    ]
    return LedgerCheck(unaccounted, never_sent, mismatched)


def assert_ledger_matches_bill(
    app: Flask, batch_id: int, stats: dict[str, Any], *, killed_before_sending: int = 0
) -> None:
    """The job's ledger says what PropertyRadar billed, request by request: no billed
    record outside it, and each row equal to what its request was billed. The one
    exception is a horse SIGKILLed between journaling a request and sending it: the
    request is "possibly billed" (nothing can tell) though PropertyRadar never saw it;
    at most `killed_before_sending` such requests are allowed."""
    check = check_ledger(app, batch_id, stats)
    assert check.unaccounted == 0, f"{check.unaccounted} billed records not in the ledger"
    assert check.mismatched == [], "ledger rows that differ from what was billed"
    assert len(check.never_sent) <= killed_before_sending, check.never_sent
    over = sum(records for _chunk, records in check.never_sent)
    total = ledger_total(app, batch_id)
    assert total == stats["billed_records"] + over, (
        f"the ledger says {total}, PropertyRadar billed {stats['billed_records']}, "
        f"{over} records of requests that never left"
    )


def work_horse(worker: psutil.Process) -> psutil.Process | None:
    """The worker's forked work horse: a child running the same command line, leading a
    process group of its own (RQ's horse calls setpgrp). The reconciler is a spawned
    child; between its fork and its exec it too has the worker's command line, but not
    a group of its own."""
    for child in worker.children():
        try:
            if child.cmdline() == worker.cmdline() and os.getpgid(child.pid) == child.pid:
                return child
        except (psutil.NoSuchProcess, ProcessLookupError):
            continue
    return None


def still_running(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait up to `timeout` s for the processes to exit; those still running. One that
    exited but whose parent died too stays a zombie until init reaps it: it has exited."""

    def running(process: psutil.Process) -> bool:
        try:
            return process.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    deadline = time.monotonic() + timeout
    while (alive := [p for p in processes if running(p)]) and time.monotonic() < deadline:
        time.sleep(0.01)
    return alive


def sigkill_worker_and_horse(worker: psutil.Process, horse: psutil.Process) -> list[psutil.Process]:
    """SIGKILL a worker and its work horse, as the OOM killer or a lost machine would: no
    cleanup. RQ starts each horse in a process group of its own, so killing the worker's
    group is not enough. Returns once both are dead, with the worker's other children
    (its reconciler), which must notice and exit by themselves (assert_orphans_exit)."""
    others = [child for child in worker.children() if child != horse]
    for process in (worker, horse):
        process.send_signal(signal.SIGKILL)
    alive = still_running([worker, horse], timeout=10)
    assert not alive, f"SIGKILLed processes still run: {alive}"
    return others


def assert_orphans_exit(others: list[psutil.Process], timeout: float = 10) -> None:
    alive = still_running(others, timeout)
    assert not alive, f"orphaned children of the killed worker still run: {alive}"


def kill_worker_and_horse(pid: int) -> None:
    """SIGKILL a worker and its work horse; its reconciler process, left behind, must
    notice and exit by itself."""
    worker = psutil.Process(pid)
    horse = work_horse(worker)
    assert horse is not None, "the worker has no work horse: is a job running?"
    assert_orphans_exit(sigkill_worker_and_horse(worker, horse))
