"""API tokens: random, shown once, stored only as a SHA-256 digest."""

from __future__ import annotations

import hashlib
import secrets


def new_token() -> str:
    return "rdr_" + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    # Tokens carry 256 bits of randomness, so a fast hash is enough: no dictionary to guard.
    return hashlib.sha256(token.encode()).hexdigest()
