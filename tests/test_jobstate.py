"""The job state machine: every allowed transition wins once and is recorded, every other
one is refused and writes nothing, and a real run leaves its history behind."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import sqlalchemy as sa

from radar_app import recovery
from radar_app.extensions import db
from radar_app.jobstate import TABLE, Event, history, transition
from radar_app.models import BatchJob, BatchJobLog, JobStatus, JobTransition
from tests.helpers import MULTNOMAH, make_job

ROOT = Path(__file__).resolve().parent.parent

ALLOWED = [
    (event, source, target)
    for event, rule in TABLE.items()
    for source in sorted(rule.sources)
    for target in sorted(rule.targets or {source})
]
REFUSED = [
    (event, state)
    for event, rule in TABLE.items()
    for state in JobStatus
    if state not in rule.sources
]


def job_in(app, status: JobStatus) -> int:
    job_id = make_job(app, status=status, rq_job_id="run-1")
    with app.app_context():
        return db.session.scalar(sa.select(BatchJob.id).where(BatchJob.job_id == job_id))


def counts(row_id: int) -> tuple[int, int]:
    """(log lines, history rows) of the job."""
    return tuple(  # type: ignore[return-value]
        db.session.scalar(
            sa.select(sa.func.count()).select_from(model).where(model.batch_job_id == row_id)
        )
        for model in (BatchJobLog, JobTransition)
    )


def fire(job: BatchJob, event: Event, source: JobStatus, target: JobStatus | None = None) -> bool:
    return transition(
        db.session,
        job,
        event,
        actor="tester@example.com",
        reason=f"testing {event}",
        expect={"status": source, "rq_job_id": "run-1"},
        to=target if target is not None and len(TABLE[event].targets) > 1 else None,
    )


@pytest.mark.parametrize(("event", "source", "target"), ALLOWED)
def test_every_allowed_transition_wins_once_and_is_recorded(app, user, event, source, target):
    row_id = job_in(app, source)
    with app.app_context():
        job = db.session.get(BatchJob, row_id)
        logs_before, _ = counts(row_id)
        assert fire(job, event, source, target)

        db.session.expire_all()
        job = db.session.get(BatchJob, row_id)
        assert job.status == target
        logs, transitions = counts(row_id)
        assert transitions == 1
        assert logs == logs_before + (1 if TABLE[event].logs else 0)
        [row] = history(db.session, job)
        assert (row.from_status, row.to_status, row.event) == (source, target, event)
        assert (row.actor, row.reason) == ("tester@example.com", f"testing {event}")
        if event == Event.REQUEST_CANCEL:
            assert job.cancel_requested
        if target in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED) and (
            event not in (Event.RETRY_NOT_STARTED, Event.WITHDRAW)
        ):
            assert job.completed_at is not None and not job.cancel_requested

        if target != source:
            # The same move made again from the same view of the row loses: of two
            # processes racing for one job, exactly one wins.
            assert not fire(job, event, source, target)
            assert counts(row_id) == (logs, 1)


@pytest.mark.parametrize(("event", "state"), REFUSED)
def test_every_disallowed_transition_is_refused_and_writes_nothing(app, user, event, state):
    row_id = job_in(app, state)
    with app.app_context():
        job = db.session.get(BatchJob, row_id)
        before = counts(row_id), job.updated_at
        rule = TABLE[event]
        target = sorted(rule.targets)[0] if rule.targets else None
        # A caller that knows the job's state is refused before any UPDATE ...
        assert not fire(job, event, state, target)
        # ... and one holding a stale view (the row changed under it) by the UPDATE's guard.
        assert not fire(job, event, sorted(rule.sources)[0], target)

        db.session.expire_all()
        job = db.session.get(BatchJob, row_id)
        assert job.status == state
        assert (counts(row_id), job.updated_at) == before


def test_a_run_that_does_not_own_the_job_cannot_claim_it(app, user):
    row_id = job_in(app, JobStatus.PENDING)
    with app.app_context():
        job = db.session.get(BatchJob, row_id)
        won = transition(
            db.session,
            job,
            Event.CLAIM,
            actor="worker",
            reason="stale RQ job",
            expect={"rq_job_id": "run-replaced"},
        )
        assert not won
        db.session.expire_all()
        assert db.session.get(BatchJob, row_id).status == JobStatus.PENDING
        assert counts(row_id)[1] == 0


def test_a_real_job_leaves_its_history(app, api, run_worker, simulator):
    response = api.post("/api/batch-jobs", json={"criteria": MULTNOMAH, "max_records": 50})
    assert response.status_code == 201, response.json
    run_worker()
    with app.app_context():
        job = db.session.scalar(sa.select(BatchJob).where(BatchJob.job_id == response.json["id"]))
        assert job.status == JobStatus.COMPLETED
        moves = [(t.from_status, t.to_status, t.event, t.actor) for t in history(db.session, job)]
        assert moves == [
            (JobStatus.PENDING, JobStatus.PROCESSING, Event.CLAIM, "worker"),
            (JobStatus.PROCESSING, JobStatus.COMPLETED, Event.COMPLETE, "worker"),
        ]
        assert history(db.session, job)[1].reason.startswith("Completed: 50 leads stored")


def test_a_cancelled_and_retried_job_records_who_did_what(app, user, admin):
    job_id = make_job(app)
    with app.app_context():
        from radar_app import batches
        from radar_app.queue import get_queue

        job = db.session.scalar(sa.select(BatchJob).where(BatchJob.job_id == job_id))
        owner = job.owner
        settings = batches.QueueSettings.from_config(app.config)
        batches.request_cancel(db.session, get_queue(), job, by=owner)
        batches.retry_job(db.session, get_queue(), settings, job, by=owner)
        assert recovery.mark_failed(db.session, job, "stuck", actor="admin:admin@example.com")
        moves = [(t.event, t.to_status, t.actor) for t in history(db.session, job)]
        assert moves == [
            (Event.CANCEL_QUEUED, JobStatus.CANCELLED, "owner@example.com"),
            (Event.RETRY, JobStatus.PENDING, "owner@example.com"),
            (Event.MARK_FAILED, JobStatus.FAILED, "admin:admin@example.com"),
        ]
        # The history goes with the job.
        db.session.delete(job)
        db.session.commit()
        assert db.session.scalar(sa.select(sa.func.count()).select_from(JobTransition)) == 0


def test_cancel_and_retry_through_the_api_record_the_user(app, api):
    job_id = api.post("/api/batch-jobs", json={"criteria": MULTNOMAH}).json["id"]
    assert api.post(f"/api/batch-jobs/{job_id}/cancel").status_code == 202
    assert api.post(f"/api/batch-jobs/{job_id}/retry").status_code == 202
    with app.app_context():
        job = db.session.scalar(sa.select(BatchJob).where(BatchJob.job_id == job_id))
        moves = [(t.event, t.actor) for t in history(db.session, job)]
    assert moves == [
        (Event.CANCEL_QUEUED, "owner@example.com"),
        (Event.RETRY, "owner@example.com"),
    ]


def _is_job_status(target: ast.expr) -> bool:
    # `job.status = ...`, `self.job.status = ...` (not an HTTP error's `self.status`).
    if not (isinstance(target, ast.Attribute) and target.attr == "status"):
        return False
    owner = target.value
    name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
    return "job" in name.lower()


def _state_writes(path: Path) -> list[int]:
    """Lines of `path` that set a job's status other than through jobstate.transition():
    an assignment to `.status`, or `status=` in an UPDATE's .values()."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(_is_job_status(t) for t in targets):
                lines.append(node.lineno)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "values"
        ):
            keys = [kw.arg for kw in node.keywords] + [
                k.value
                for arg in node.args
                if isinstance(arg, ast.Dict)
                for k in arg.keys
                if isinstance(k, ast.Constant)
            ]
            if "status" in keys:
                lines.append(node.lineno)
    return sorted(lines)


def test_no_state_change_bypasses_the_state_machine(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "job.status = 'FAILED'\n"
        "session.execute(sa.update(BatchJob).values(status='PENDING'))\n"
        "self.status = 503\n"
    )
    assert _state_writes(sample) == [1, 2]  # the check finds what it looks for
    package = ROOT / "radar_app"
    offenders = {
        str(path.relative_to(ROOT)): lines
        for path in sorted(package.rglob("*.py"))
        if path.name != "jobstate.py" and (lines := _state_writes(path))
    }
    assert offenders == {}
