"""A request-rate limit shared by every worker, held in Redis.

PROPERTYRADAR_RATE_LIMIT requests per second hold for all workers together: each request
reserves the next free slot with an atomic script (GCRA: one "theoretical arrival time"
key), and sleeps until its slot. A 429 pushes a shared "pause until" mark forward, so one
worker's throttling slows everyone down instead of each discovering it separately.
Times come from the Redis server's clock, so workers on different machines agree.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from redis import Redis

# KEYS: slot key, pause key. ARGV: interval in microseconds. Returns microseconds to wait.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local slot = tonumber(redis.call('GET', KEYS[1]) or '0')
local pause = tonumber(redis.call('GET', KEYS[2]) or '0')
local start = math.max(slot, now, pause)
local ttl_ms = math.ceil((start + interval - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.0f', start + interval), 'PX', ttl_ms)
return start - now
"""

# KEYS: pause key. ARGV: pause in microseconds. Moves the mark forward, never back.
_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local target = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if target > current then
  local ttl_ms = math.ceil(tonumber(ARGV[1]) / 1000) + 1000
  redis.call('SET', KEYS[1], string.format('%.0f', target), 'PX', ttl_ms)
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
        self._slot_key, self._pause_key = f"{key}:slot", f"{key}:pause"
        self._reserve = redis.register_script(_RESERVE)
        self._pause = redis.register_script(_PAUSE)
        self._sleep = sleep

    def acquire(self) -> float:
        """Wait for this caller's slot; returns the seconds waited."""
        wait_us = int(
            self._reserve(keys=[self._slot_key, self._pause_key], args=[self.interval_us])
        )
        wait = max(0.0, wait_us / 1_000_000)
        if wait:
            self._sleep(wait)
        return wait

    def pause(self, seconds: float) -> None:
        """Hold every worker's next request back for `seconds` (after a 429)."""
        if seconds > 0:
            self._pause(keys=[self._pause_key], args=[int(seconds * 1_000_000)])
