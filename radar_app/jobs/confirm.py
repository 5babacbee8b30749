"""The confirmation of a search's cost: one confirmation starts one job.

A search that would buy records is priced first and shown with a Confirm button. The
button carries a signed token naming the user, the digest of exactly the search that
was priced (search.fingerprint) and a random id; it is good for SEARCH_CONFIRM_SECONDS.
The id is used once: the first POST that carries it claims it in Redis, and any later
one (a double click, a browser's resend) is sent to the job the first one started.

No request or app context needed: the view hands in the secret key, Redis and the
token's lifetime.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import cast

from itsdangerous import BadSignature, URLSafeTimedSerializer
from redis import Redis

SALT = "radar_app.search-confirm"
# Redis key of a used confirmation; its value is the id of the job it started.
KEY_PREFIX = "radar:search-confirmed:"
# A used id is remembered this much longer than its token is good for, so a resend of
# a token that is still valid always finds it.
REMEMBER_EXTRA_SECONDS = 60


@dataclass(frozen=True)
class Confirmations:
    secret_key: str | bytes
    redis: Redis
    seconds: int  # how long a token is good for

    def issue(self, user_id: int, spec: str) -> str:
        """A token confirming that this user saw the cost of the search ``spec`` digests."""
        return self._serializer().dumps(
            {"user": user_id, "spec": spec, "id": secrets.token_hex(16)}
        )

    def verify(self, token: str, user_id: int, spec: str) -> str | None:
        """The confirmation's id if the token is valid (signed, this user's, not expired)
        and confirms exactly the search ``spec`` digests; None otherwise."""
        try:
            signed = self._serializer().loads(token, max_age=self.seconds)
        except BadSignature:  # includes SignatureExpired
            return None
        if (
            isinstance(signed, dict)
            and signed.get("user") == user_id
            and signed.get("spec") == spec
            and isinstance(signed.get("id"), str)
        ):
            return signed["id"]
        return None

    def claim(self, confirmation: str) -> str | None:
        """Mark the confirmation used; None if it was fresh, else the job it started (""
        while that job is still being created).

        Raises:
            RedisError: Redis is down (the job could not be queued either).
        """
        key = self._key(confirmation)
        if self.redis.set(key, "", nx=True, ex=self._remember_for()):
            return None
        # redis-py types each command for its sync and asyncio clients at once; this one
        # is sync.
        started = cast(bytes | str | None, self.redis.get(key))
        return started.decode() if isinstance(started, bytes) else (started or "")

    def settle(self, confirmation: str, job_id: str | None) -> None:
        """After a claimed confirmation's attempt: remember the job it started, or, when
        nothing was created, free it so that the same confirmation may be tried again.

        Raises:
            RedisError: Redis is down.
        """
        key = self._key(confirmation)
        if job_id:
            self.redis.set(key, job_id, ex=self._remember_for())
        else:
            self.redis.delete(key)

    def _serializer(self) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self.secret_key, salt=SALT)

    def _remember_for(self) -> int:
        return self.seconds + REMEMBER_EXTRA_SECONDS

    @staticmethod
    def _key(confirmation: str) -> str:
        return f"{KEY_PREFIX}{confirmation}"
