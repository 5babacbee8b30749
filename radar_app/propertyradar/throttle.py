"""A request-rate limit shared by every worker, held in Redis.

PROPERTYRADAR_RATE_LIMIT requests per second hold for all workers together: each request
reserves the next free slot with an atomic script (GCRA: one "theoretical arrival time"
key), and sleeps until its slot. A 429 pushes a shared "pause until" mark forward, so one
worker's throttling slows everyone down instead of each discovering it separately.
Times come from the Redis server's clock, so workers on different machines agree.

A wait long enough to notice is told to the caller's observer (see wait.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from redis import Redis

from .wait import Wait, WaitKind, WaitObserver, sleep_through

# KEYS: slot key, pause key, pause's Retry-After key. ARGV: interval in microseconds.
# Returns {microseconds to wait, microseconds the 429 pause still holds (0: none),
# the pause's Retry-After in milliseconds (-1: none or unknown)}.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local slot = tonumber(redis.call('GET', KEYS[1]) or '0')
local pause = tonumber(redis.call('GET', KEYS[2]) or '0')
local start = math.max(slot, now, pause)
local ttl_ms = math.ceil((start + interval - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.0f', start + interval), 'PX', ttl_ms)
local paused = math.max(pause - now, 0)
local retry_after = -1
if paused > 0 then
  retry_after = tonumber(redis.call('GET', KEYS[3]) or '-1')
end
return {start - now, paused, retry_after}
"""

# KEYS: pause key, Retry-After key. ARGV: pause in microseconds, the 429's Retry-After in
# milliseconds (-1: none). Moves the mark forward, never back.
_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local target = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if target > current then
  local ttl_ms = math.ceil(tonumber(ARGV[1]) / 1000) + 1000
  redis.call('SET', KEYS[1], string.format('%.0f', target), 'PX', ttl_ms)
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ttl_ms)
end
return 0
"""


class SharedRateLimiter:
    """Spaces requests at least 1/rate seconds apart across processes."""

    def __init__(
        self,
        redis: Redis,
        rate_per_second: float,
        *,
        key: str = "radar:propertyradar:rate",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        self.interval_us = int(1_000_000 / rate_per_second)
        self._keys = [f"{key}:slot", f"{key}:pause", f"{key}:pause:retry_after"]
        self._reserve = redis.register_script(_RESERVE)
        self._pause = redis.register_script(_PAUSE)
        self._sleep = sleep

    def acquire(self, on_wait: WaitObserver | None = None) -> float:
        """Wait for this caller's slot; returns the seconds waited. A wait behind a 429
        pause is told to `on_wait` as PAUSED, any other as RATE_LIMIT."""
        wait_us, paused_us, retry_after_ms = self._reserve(keys=self._keys, args=[self.interval_us])
        wait = max(0.0, int(wait_us) / 1_000_000)
        if wait:
            if int(paused_us) > 0:
                retry_after = int(retry_after_ms) / 1000 if int(retry_after_ms) >= 0 else None
                held = Wait(WaitKind.PAUSED, wait, cause="a 429", retry_after=retry_after)
            else:
                held = Wait(WaitKind.RATE_LIMIT, wait)
            sleep_through(held, self._sleep, on_wait)
        return wait

    def pause(self, seconds: float, retry_after: float | None = None) -> None:
        """Hold every worker's next request back for `seconds` (after a 429 whose
        Retry-After, if it had one, was `retry_after`)."""
        if seconds > 0:
            retry_after_ms = -1 if retry_after is None else int(retry_after * 1000)
            self._pause(keys=self._keys[1:], args=[int(seconds * 1_000_000), retry_after_ms])
