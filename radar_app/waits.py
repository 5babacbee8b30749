"""What a running job is waiting for right now: the rate limit, a backoff, a 429 pause, or
a worker that stopped beating.

A job held back by PropertyRadar looks exactly like a stuck one unless someone says why.
The work horse posts each wait of its request threads (the client tells it through
``on_wait``, see propertyradar/wait.py) to one Redis hash per job, a field per
waiting thread, and removes it when the wait ends; the job page, its Jobs row and the
API read the hash and show the most telling wait. Only waits of REPORTED_WAIT or more are
posted, so a request that is not held back costs nothing here. The hash expires a little
after its longest wait: a work horse killed mid-wait leaves nothing behind for long.

"No heartbeat" is not posted by anyone (a dead worker cannot say it is dead): it is read
from the job's heartbeat_at against the recovery settings.

No Flask here: the importer posts, the web reads through services.job_waiting.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import cast

from redis import Redis

from radar_app.propertyradar.wait import Wait, WaitKind

# A posted wait's field outlives its end by this much (a clear that never came, or clocks
# a little apart) before readers ignore it and Redis drops the hash.
GRACE = 5.0
# Shown instead of a wait: the worker's heartbeat stopped (see no_heartbeat).
NO_HEARTBEAT = "no_heartbeat"
# The most telling wait first: a pause holds every worker back, a backoff this request.
_RANK = {WaitKind.PAUSED: 3, WaitKind.BACKOFF: 2, WaitKind.RATE_LIMIT: 1}
_LABELS = {
    WaitKind.RATE_LIMIT: "Throttled",
    WaitKind.BACKOFF: "Retrying",
    WaitKind.PAUSED: "Paused",
    NO_HEARTBEAT: "No heartbeat",
}

# KEYS: the job's hash. ARGV: field, value, milliseconds the hash must live at least.
# The expiry only ever grows, so a short wait posted after a long one cannot cut it.
_POST = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 0
"""


def key(batch_id: int) -> str:
    return f"radar:job:{batch_id}:waits"


@dataclass(frozen=True)
class Posted:
    """A wait as posted: a Wait that ends at `until` (Unix time)."""

    wait: Wait
    until: float

    def left(self, now: float) -> float:
        return max(0.0, self.until - now)


@dataclass(frozen=True)
class Waiting:
    """What to show: `kind` (a WaitKind value or NO_HEARTBEAT), the sentence, and the
    seconds it is about (left to wait; for no heartbeat, since the last beat)."""

    kind: str
    message: str
    seconds: float

    @property
    def label(self) -> str:
        """A word or two for a badge beside the message."""
        return _LABELS[self.kind]


class WaitBoard:
    """The jobs' posted waits in Redis (see the module docstring)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._post = redis.register_script(_POST)

    def post(self, batch_id: int, holder: str, wait: Wait, now: float | None = None) -> None:
        """`holder` (a thread of a run) waits `wait` from `now` (Unix time)."""
        until = (time.time() if now is None else now) + wait.seconds
        value = json.dumps({**asdict(wait), "until": until})
        ttl_ms = math.ceil((wait.seconds + GRACE) * 1000)
        self._post(keys=[key(batch_id)], args=[holder, value, ttl_ms])

    def clear(self, batch_id: int, holder: str) -> None:
        """`holder`'s wait is over."""
        self.redis.hdel(key(batch_id), holder)

    def read(self, batch_id: int, now: float | None = None) -> list[Posted]:
        """The job's waits that have not ended (a field that cannot be read is skipped)."""
        now = time.time() if now is None else now
        posted = []
        # A sync client: redis-py's types also allow the asyncio client's awaitable.
        fields_by_holder = cast(dict[bytes, bytes], self.redis.hgetall(key(batch_id)))
        for value in fields_by_holder.values():
            try:
                fields = json.loads(value)
                until = float(fields.pop("until"))
                wait = Wait(**{**fields, "kind": WaitKind(fields["kind"])})
            except (ValueError, TypeError, KeyError):
                continue
            if until > now:
                posted.append(Posted(wait, until))
        return posted


def _seconds(value: float) -> str:
    return f"{max(1, math.ceil(value))} s"


def describe(posted: Posted, now: float) -> Waiting:
    """The sentence for a wait, with the time left as of `now`."""
    wait, left = posted.wait, posted.left(now)
    if wait.kind == WaitKind.PAUSED:
        told = f", Retry-After {wait.retry_after:g} s" if wait.retry_after is not None else ""
        message = f"paused by PropertyRadar (429{told}), next try in {_seconds(left)}"
    elif wait.kind == WaitKind.BACKOFF:
        message = (
            f"backing off after {wait.cause}, attempt {wait.attempt} of {wait.max_attempts}, "
            f"next in {_seconds(left)}"
        )
    else:
        message = f"waiting for the rate limit ({_seconds(left)})"
    return Waiting(wait.kind.value, message, left)


def most_telling(posted: list[Posted], now: float) -> Waiting | None:
    """Of the waits of a job's threads, the one to show: a 429 pause before a backoff
    before the rate limit, and of those the longest."""
    if not posted:
        return None
    top = max(posted, key=lambda p: (_RANK[p.wait.kind], p.until))
    return describe(top, now)


def no_heartbeat(
    heartbeat_at: datetime | None, now: datetime, *, interval: float, stale_after: float
) -> Waiting | None:
    """A running job whose worker has missed two beats: how long it has been silent, and
    that recovery will requeue it (radar_app/recovery.py: after `stale_after` s)."""
    if heartbeat_at is None:
        return None
    silent = (now - heartbeat_at).total_seconds()
    if silent < 2 * interval:
        return None
    message = f"no heartbeat for {int(silent)} s — will be recovered"
    if silent < stale_after:
        message += f" after {_seconds(stale_after)} without one"
    return Waiting(NO_HEARTBEAT, message, silent)
