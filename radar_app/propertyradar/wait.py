"""The waits of a request: the shared rate limit, a backoff after a failure, a 429 pause.

A wait long enough for a person to notice (REPORTED_WAIT) is told to an observer before
and after it: the importer shows it on the job (radar_app/waits.py), so a job held back
by the limit, a backoff or a 429 does not look stuck. Shorter waits tell nothing, so the
request path costs nothing extra when nothing is throttled.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

# Waits shorter than this are not reported: too short to see, and the hot path (no wait
# at all) must not pay for telling anyone.
REPORTED_WAIT = 0.5


class WaitKind(enum.StrEnum):
    RATE_LIMIT = "rate_limit"  # the shared limit's next free slot
    BACKOFF = "backoff"  # after a 5xx, a timeout or a garbled answer
    PAUSED = "paused"  # PropertyRadar answered 429: every worker holds back


@dataclass(frozen=True)
class Wait:
    """A request held back: why, and for how long (seconds, from when it is told).

    ``cause`` names what failed ("a 503", "a timeout"), ``attempt`` is the attempt that
    follows the wait, of ``max_attempts``; ``retry_after`` is the 429's Retry-After."""

    kind: WaitKind
    seconds: float
    cause: str | None = None
    attempt: int | None = None
    max_attempts: int | None = None
    retry_after: float | None = None


# Told a Wait before a wait of at least REPORTED_WAIT, and None once it is over.
WaitObserver = Callable[[Wait | None], None]


def sleep_through(wait: Wait, sleep: Callable[[float], None], on_wait: WaitObserver | None) -> None:
    """Sleep wait.seconds, telling `on_wait` before and after if the wait is noticeable."""
    if on_wait is None or wait.seconds < REPORTED_WAIT:
        sleep(wait.seconds)
        return
    on_wait(wait)
    try:
        sleep(wait.seconds)
    finally:
        on_wait(None)
