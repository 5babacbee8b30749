"""What `rq info` shows, for the admin page: registry counts and workers."""

from __future__ import annotations

from dataclasses import dataclass

from rq import Queue, Worker
from rq.registry import (
    CanceledJobRegistry,
    DeferredJobRegistry,
    FailedJobRegistry,
    FinishedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)


@dataclass(frozen=True)
class WorkerInfo:
    name: str
    state: str
    current_job: str | None
    hostname: str | None
    pid: int | None
    successful: int
    failed: int


@dataclass(frozen=True)
class QueueHealth:
    queue: str
    counts: dict[str, int]
    workers: list[WorkerInfo]


def queue_health(queue: Queue) -> QueueHealth:
    """Counts per registry and the workers listening on this queue (raises RedisError)."""
    registries = {
        "started": StartedJobRegistry,
        "finished": FinishedJobRegistry,
        "failed": FailedJobRegistry,
        "deferred": DeferredJobRegistry,
        "scheduled": ScheduledJobRegistry,
        "canceled": CanceledJobRegistry,
    }
    counts = {"queued": queue.count}
    for label, registry in registries.items():
        counts[label] = registry(queue=queue).count
    workers = [
        WorkerInfo(
            name=worker.name,
            state=worker.get_state(),
            current_job=worker.get_current_job_id(),
            hostname=worker.hostname,
            pid=worker.pid,
            successful=worker.successful_job_count,
            failed=worker.failed_job_count,
        )
        for worker in Worker.all(queue=queue)
    ]
    return QueueHealth(queue=queue.name, counts=counts, workers=workers)
