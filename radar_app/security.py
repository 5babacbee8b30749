"""Response headers that every page and API answer carries; secrets kept out of pages;
the read-only role enforced on every request."""

from __future__ import annotations

import re

from flask import Flask, abort, request
from flask_login import current_user
from werkzeug.wrappers import Response

# Only our own static files may run or style anything; htmx is vendored under static/.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


def add_security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


# What a read-only user may still send besides reads: signing in and out acts on nothing.
READ_ONLY_ALLOWED = frozenset({"auth.login", "auth.logout"})
READ_ONLY_MESSAGE = (
    "Your account is read-only: you can look, but not change anything. "
    "Ask an administrator if you need to act."
)


def refuse_read_only_writes() -> None:
    """The one place the read-only role is enforced: every request that could change
    something (any method but GET, HEAD and OPTIONS, on a page, a fragment or the API)
    from a read-only user is a 403, before its view runs."""
    if request.method in ("GET", "HEAD", "OPTIONS") or request.endpoint in READ_ONLY_ALLOWED:
        return
    if current_user.is_authenticated and current_user.read_only:
        abort(403, description=READ_ONLY_MESSAGE)


def init_app(app: Flask) -> None:
    app.after_request(add_security_headers)
    app.before_request(refuse_read_only_writes)


REDACTED = "***"
# Query parameters that carry a credential in Redis and database URLs (?password=...).
_SECRET_PARAM = re.compile(
    r"([?&](?:password|passwd|pwd|token|secret|sslpassword|sslkey)=)[^&#]*", re.IGNORECASE
)


def redact_url(url: str) -> str:
    """The URL with its credentials replaced by ***, for showing a Redis or database URL
    on a page: user:password@ keeps the user, a lone user@ (the password, in a Redis URL)
    is hidden whole, and so is any password= query parameter."""
    scheme, separator, rest = url.partition("://")
    if separator:
        end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
        netloc, tail = rest[:end], rest[end:]
        if "@" in netloc:
            userinfo, _, host = netloc.rpartition("@")
            user, has_password, _ = userinfo.partition(":")
            netloc = f"{user}:{REDACTED}@{host}" if has_password else f"{REDACTED}@{host}"
        url = f"{scheme}{separator}{netloc}{tail}"
    return _SECRET_PARAM.sub(lambda m: m.group(1) + REDACTED, url)
