"""The search-cost confirmation (radar_app.jobs.confirm) on a real Redis: one confirmation
starts one job, and one that started nothing may be tried again. The pages that use it
are tested in test_pages_issue9.py."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from redis import Redis

from radar_app.jobs.confirm import KEY_PREFIX, REMEMBER_EXTRA_SECONDS, Confirmations

SECRET = "test-secret"


@pytest.fixture
def redis(redis_url: str) -> Iterator[Redis]:
    connection = Redis.from_url(redis_url)
    yield connection
    for key in connection.scan_iter(f"{KEY_PREFIX}*"):
        connection.delete(key)
    connection.close()


def test_a_confirmation_is_used_once_and_then_names_the_job_it_started(redis):
    confirmations = Confirmations(SECRET, redis, seconds=600)
    confirmation = secrets.token_hex(16)
    assert confirmations.claim(confirmation) is None  # fresh: this request starts the job
    assert confirmations.claim(confirmation) == ""  # a resend while the job is created
    confirmations.settle(confirmation, "job-1")
    assert confirmations.claim(confirmation) == "job-1"
    # Remembered a little longer than the token is good for, and not forever.
    ttl = redis.ttl(f"{KEY_PREFIX}{confirmation}")
    assert 600 < ttl <= 600 + REMEMBER_EXTRA_SECONDS


def test_a_confirmation_that_created_nothing_may_be_tried_again(redis):
    confirmations = Confirmations(SECRET, redis, seconds=600)
    confirmation = secrets.token_hex(16)
    assert confirmations.claim(confirmation) is None
    confirmations.settle(confirmation, None)  # e.g. the queue was down: no job
    assert confirmations.claim(confirmation) is None


def test_a_token_confirms_only_its_user_and_its_search_until_it_expires(redis):
    confirmations = Confirmations(SECRET, redis, seconds=600)
    token = confirmations.issue(7, "spec-a")
    confirmation = confirmations.verify(token, 7, "spec-a")
    assert isinstance(confirmation, str) and len(confirmation) == 32
    assert confirmations.issue(7, "spec-a") != token  # every pricing has its own id
    assert confirmations.verify(token, 8, "spec-a") is None  # another user's
    assert confirmations.verify(token, 7, "spec-b") is None  # another search
    assert Confirmations("other-secret", redis, 600).verify(token, 7, "spec-a") is None
    assert confirmations.verify("not-a-token", 7, "spec-a") is None
    assert Confirmations(SECRET, redis, seconds=-1).verify(token, 7, "spec-a") is None
