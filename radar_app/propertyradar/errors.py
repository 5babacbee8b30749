"""Typed exceptions for the PropertyRadar client.

Callers (the batch runner, the web UI) need to decide *what to do* about a failure
without parsing strings: retry later, ask the user to fix a token, show the API's own
explanation, or flag a purchase that may have been billed. Each failure mode therefore
gets its own class, and every class carries the HTTP status and the PropertyRadar
request id (``X-Radar-Request-Id`` / body ``eventid``) so support tickets can quote it.
"""

from __future__ import annotations


class PropertyRadarError(Exception):
    """Base class for every failure talking to PropertyRadar.

    Attributes:
        message: a user-readable explanation (never contains the API token).
        status: the HTTP status code, or ``None`` when no response arrived.
        request_id: PropertyRadar's request id, when the API sent one.
        retryable: whether the client's retry loop may try again (class default).
        attempts: how many HTTP attempts were made before this error was raised
            (set by the client; 0 when the error was created outside a request).
        detail: the API body's ``error`` text ("Unexpected Criterion: SiteCity"), which
            the spec says is not for end users but is what support and logs need.
        possibly_billed: set by the client on the error it finally raises: ``True``
            when any attempt of a ``Purchase=1`` call may have reached the API and been
            billed even though no usable response came back.
        last_attempt_possibly_billed: the same for the final attempt alone (the earlier
            ones were reported through the client's ``on_retry``).
    """

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        attempts: int = 0,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.request_id = request_id
        self.attempts = attempts
        self.detail = detail
        self.possibly_billed = False
        self.last_attempt_possibly_billed = False

    def __str__(self) -> str:
        head = (
            f"PropertyRadar returned {self.status}"
            if self.status is not None
            else "PropertyRadar request failed"
        )
        if self.request_id:
            head += f" (request {self.request_id})"
        text = f"{head}: {self.message}"
        if self.attempts > 1:
            text += f" (gave up after {self.attempts} attempts)"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(message={self.message!r}, status={self.status!r}, "
            f"request_id={self.request_id!r}, attempts={self.attempts!r})"
        )


class AuthenticationError(PropertyRadarError):
    """401/403: the token is missing, wrong or lacks the API add-on. Never retried,
    because repeating the same credentials cannot succeed."""

    retryable = False


class BadRequestError(PropertyRadarError):
    """400/404/422: the API rejected the request itself (unknown criterion, plan-gated
    criterion, bad field...). ``message`` is the API body's ``message`` (falling back to
    ``error``) so the user sees PropertyRadar's own explanation. Never retried."""

    retryable = False


class RateLimitedError(PropertyRadarError):
    """429: slow down. ``retry_after`` is the server's requested wait in seconds
    (parsed from ``Retry-After``), or ``None`` when it did not say."""

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        status: int | None = 429,
        request_id: str | None = None,
        attempts: int = 0,
        detail: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message, status=status, request_id=request_id, attempts=attempts, detail=detail
        )
        self.retry_after = retry_after


class ServerError(PropertyRadarError):
    """5xx: PropertyRadar had a problem. Retryable, but for a purchase the server may
    already have billed the rows before failing."""

    retryable = True


class TransportError(PropertyRadarError):
    """Timeout or connection failure: no (complete) response arrived.

    ``sent`` tells whether the request may have reached the server. A connect timeout or
    a refused connection means it certainly did not (``False``); a read timeout or a
    connection dropped mid-response means it may have been processed (``True``), which
    matters for purchases.
    """

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        sent: bool,
        status: int | None = None,
        request_id: str | None = None,
        attempts: int = 0,
        detail: str | None = None,
    ) -> None:
        super().__init__(
            message, status=status, request_id=request_id, attempts=attempts, detail=detail
        )
        self.sent = sent


class MalformedResponseError(PropertyRadarError):
    """A 2xx response whose body is not JSON or lacks ``results`` (or a required count).
    Retryable: usually a truncated body or a proxy error page."""

    retryable = True


class CriteriaError(ValueError):
    """Criteria failed local validation, before any request was made.

    ``errors`` maps a field path (``"criteria"``, ``"criteria[2]"``,
    ``"criteria[2].name"``, ``"criteria[2].value"``) to a message, so a form can show
    every problem next to the right input at once.
    """

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__(self._summary())

    def _summary(self) -> str:
        if not self.errors:
            return "Invalid criteria"
        parts = "; ".join(f"{path}: {msg}" for path, msg in self.errors.items())
        return f"Invalid criteria: {parts}"


__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "CriteriaError",
    "MalformedResponseError",
    "PropertyRadarError",
    "RateLimitedError",
    "ServerError",
    "TransportError",
]
