"""HTTP client for PropertyRadar's ``POST /v1/properties`` search.

Design points (facts from PropertyRadar's API documentation and field reports):

* Control parameters (``Purchase``, ``Limit``, ``Start``, ``Fields``) go in the query
  string only; the body is exactly ``{"Criteria": [...]}``. Field reports show the API
  rejects them in the body ("Unexpected payload field").
* ``Purchase=0`` is free and returns ``totalResultCount``: that is how we count and
  snapshot RadarIDs. ``Purchase=1`` bills every returned row, non-refundably.
* Criteria are validated locally first, so a typo never costs a round trip.
* Transient failures (429, 5xx, timeouts, garbled 2xx bodies) are retried with capped
  exponential backoff and full jitter; auth and request errors are not.
* Every HTTP attempt has a total deadline (connect, headers and body together). A
  per-read timeout alone lets a server that trickles its body take forever: a 40 s trickle
  with a 3 s read timeout took 40 s. The body is read piece by piece, each read allowed
  only the time left.
* The API token goes in the ``Authorization`` header and nowhere else: no log line, error
  message or ``repr`` contains it.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any, Protocol, TypeGuard, cast
from urllib.parse import urlencode

import requests
import urllib3
from requests import exceptions as rexc
from requests.adapters import HTTPAdapter
from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError

import radar_app.jsoncodec as jsoncodec
from radar_app.defaults import DEFAULT_API_URL, MAX_BATCH_SIZE

from .coerce import to_float, to_int
from .criteria import LEAD_FIELDS, MAX_FIELDS, validate_criteria
from .errors import (
    AuthenticationError,
    BadRequestError,
    MalformedResponseError,
    PropertyRadarError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from .wait import Wait, WaitKind, WaitObserver, sleep_through

log = logging.getLogger(__name__)

USER_AGENT = "radar_app/1.0 (PropertyRadar lead import)"
REQUEST_ID_HEADER = "X-Radar-Request-Id"
PROPERTIES_PATH = "/v1/properties"
# Our name for a purchase, sent with each of its attempts: ledger rows carry it, so support
# (and the tests, against the simulator's log) can match a row to the request it stands for.
CLIENT_REQUEST_ID_HEADER = "X-Client-Request-Id"
# Bytes asked for per body read; a read returns as soon as any bytes arrive.
BODY_READ_SIZE = 64 * 1024
# Where the token is set, for the message shown when PropertyRadar rejects it.
TOKEN_SETTING = "PROPERTYRADAR_API_TOKEN"


class RateLimiter(Protocol):
    """Paces requests (see throttle.SharedRateLimiter)."""

    def acquire(self, on_wait: WaitObserver | None = None) -> float: ...

    def pause(self, seconds: float, retry_after: float | None = None) -> None: ...


@dataclass(frozen=True)
class Page:
    """One page of ``POST /v1/properties`` results.

    ``total_cost`` is the API's ``totalCost`` coerced to a float (``None`` if absent or
    unreadable); ``start``/``limit`` echo what was requested, so callers can compute the
    next offset as ``start + limit`` and stop once it reaches ``total_result_count``.
    """

    results: list[dict[str, Any]]
    result_count: int
    total_result_count: int
    total_cost: float | None
    request_id: str | None
    start: int
    limit: int
    # The response body as received: a purchase journals it before anything is parsed
    # or stored (see radar_app/journal.py), and page_from_body() rebuilds the page.
    body: bytes | None = field(default=None, repr=False, compare=False)


def page_from_body(body: bytes, request_id: str | None, start: int, limit: int) -> Page:
    """The Page a journaled 2xx response body stands for (as the client built it)."""
    return _build_page(jsoncodec.loads(body), request_id, 200, start, limit, body)


@dataclass(frozen=True)
class RetryEvent:
    """Passed to ``on_retry`` before each backoff sleep.

    ``attempt`` is the 1-based number of the attempt that just failed and ``delay`` the
    seconds about to be slept. ``possibly_billed`` is true when the failed attempt was a
    purchase that may have reached the server (5xx, a timeout after sending, or a
    garbled 2xx body): the rows may have been billed even though we never saw them.
    """

    attempt: int
    delay: float
    error: PropertyRadarError
    purchase: bool
    possibly_billed: bool
    # Records the failed request asked for (its Limit): what it may have billed.
    requested: int = 0


# PropertyRadar bills each result returned. An error answer (500, 502, 503) returned none;
# a 504 is a gateway giving up on an answer the API may still have produced and billed.
_LOST_ANSWER_STATUSES = frozenset({504})


def _possibly_billed(error: PropertyRadarError, purchase: bool) -> bool:
    """Whether a failed purchase attempt may have been billed: its answer was lost (a
    timeout after sending, a cut-off or garbled body, a gateway timeout), not refused."""
    if not purchase:
        return False
    if isinstance(error, MalformedResponseError):
        return True
    if isinstance(error, ServerError):
        return error.status in _LOST_ANSWER_STATUSES
    return isinstance(error, TransportError) and error.sent


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date).

    Returns ``None`` when absent or unreadable, so the caller falls back to backoff.
    A date in the past means "retry now" (0.0).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds and seconds != float("inf") else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def _what_failed(error: PropertyRadarError) -> str:
    """The failure a backoff follows, for people: "a 503", "a timeout", "a garbled answer"."""
    if isinstance(error, MalformedResponseError):
        return "a garbled answer"
    if error.status is not None:
        return f"a {error.status}"
    if isinstance(error, TransportError) and "timed out" in error.message.lower():
        return "a timeout"
    return "a connection error"


def _reason(exc: BaseException) -> str:
    """A short cause for people ("[Errno 111] Connection refused", "Read timed out"), without
    the request URL and pool internals that requests puts in its messages."""
    text = str(exc)
    errno = re.search(r"\[Errno -?\d+\][^'\")]*", text)
    if errno:
        return errno.group(0).strip()
    for phrase in ("Read timed out", "Connect timed out", "Remote end closed connection"):
        if phrase.lower() in text.lower():
            return phrase
    return type(exc).__name__


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


# Called on the sending thread once a request's bytes are written, before its response
# is read (see fetch_page's on_sent).
_on_sent = threading.local()


def _request_written() -> None:
    callback: Callable[[], None] | None = getattr(_on_sent, "callback", None)
    if callback is not None:
        _on_sent.callback = None
        callback()


class _NotifyingConnection(urllib3.connection.HTTPConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        super().request(*args, **kwargs)
        _request_written()


class _NotifyingHTTPSConnection(urllib3.connection.HTTPSConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        super().request(*args, **kwargs)
        _request_written()


class _NotifyingPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _NotifyingConnection


class _NotifyingHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _NotifyingHTTPSConnection


class _NotifyingAdapter(HTTPAdapter):
    """An HTTPAdapter whose connections say when a request has been written."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _NotifyingPool,
            "https": _NotifyingHTTPSPool,
        }


def _socket_of(response: requests.Response) -> socket.socket | None:
    """The socket the body is read from (urllib3 2 keeps the connection on a streamed
    response until it is released), or None for a response not read from a socket."""
    connection = getattr(response.raw, "connection", None)
    sock = getattr(connection, "sock", None)
    return sock if isinstance(sock, socket.socket) else None


def _transport_error(exc: rexc.RequestException) -> PropertyRadarError:
    """Classify a requests exception; ``sent`` errs on the side of "maybe sent"."""
    reason = _reason(exc)
    if isinstance(exc, rexc.ConnectTimeout):
        return TransportError(f"Timed out connecting to PropertyRadar ({reason})", sent=False)
    if isinstance(exc, rexc.Timeout):  # ReadTimeout and friends: the request went out
        return TransportError(f"Timed out waiting for PropertyRadar ({reason})", sent=True)
    if isinstance(exc, (rexc.SSLError, rexc.ProxyError)):
        return TransportError(f"Could not connect to PropertyRadar ({reason})", sent=False)
    if isinstance(exc, rexc.ConnectionError):
        sent = not _failed_before_send(exc)
        verb = "Connection to PropertyRadar lost" if sent else "Could not connect to PropertyRadar"
        return TransportError(f"{verb} ({reason})", sent=sent)
    if isinstance(exc, (rexc.ChunkedEncodingError, rexc.ContentDecodingError)):
        return TransportError(f"PropertyRadar response was cut off ({reason})", sent=True)
    # InvalidURL, MissingSchema, InvalidHeader...: a configuration bug, not transient.
    return PropertyRadarError(f"Could not send the request to PropertyRadar ({reason})")


def _failed_before_send(exc: BaseException) -> bool:
    """True only when the exception chain proves no connection was established
    (DNS failure, connection refused). Anything else may have been sent."""
    try:
        from urllib3.exceptions import NewConnectionError  # urllib3 >= 1.x
    except ImportError:  # pragma: no cover
        return False
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        cur = stack.pop()
        if id(cur) in seen:
            continue
        seen.add(id(cur))
        if isinstance(cur, NewConnectionError):
            return True
        reason = getattr(cur, "reason", None)
        for nxt in (reason, cur.__cause__, cur.__context__, *cur.args):
            if isinstance(nxt, BaseException):
                stack.append(nxt)
    return False


class PropertyRadarClient:
    """Thin, retrying client for property counts, RadarID snapshots and purchases.

    ``timeout`` is ``(connect, total)`` seconds, or one number for both: ``total`` is the
    deadline of each HTTP attempt as a whole (connecting, sending, waiting for the headers,
    reading the body), however the server paces its bytes; ``connect`` caps the TCP connect
    within it. A blown deadline is a timeout: retried with backoff, and for a purchase
    reported as possibly billed.

    ``sleep``, ``rng`` and ``session`` are injectable so tests run instantly and
    deterministically. Raising from ``on_retry`` aborts the retry loop (the exception
    propagates), which lets a caller refuse to repeat a possibly-billed purchase.
    ``on_wait`` is told each wait of a request long enough to notice (the rate limit, a
    backoff, a 429 pause; see wait.Wait), on the waiting thread, and None when it
    ends; it must not raise.
    """

    def __init__(
        self,
        token: str,
        base_url: str = DEFAULT_API_URL,
        *,
        timeout: float | tuple[float, float] = (5.0, 30.0),
        max_attempts: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_retry: Callable[[RetryEvent], None] | None = None,
        on_wait: WaitObserver | None = None,
        rng: random.Random | None = None,
        max_limit: int = MAX_BATCH_SIZE,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        if not token or not token.strip():
            raise ValueError("A PropertyRadar API token is required")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if backoff_base < 0 or backoff_max < 0:
            raise ValueError("backoff_base and backoff_max must not be negative")
        if max_limit < 1:
            raise ValueError("max_limit must be at least 1")
        # Not one number, so the (connect, total) pair; the check below refuses anything else.
        pair = cast(tuple[float, float], timeout)
        connect_timeout, deadline = (timeout, timeout) if _is_number(timeout) else pair
        if (
            not (_is_number(connect_timeout) and _is_number(deadline))
            or min(connect_timeout, deadline) <= 0
        ):
            raise ValueError("timeout must be a positive number or (connect, total) of them")
        self._token = token.strip()
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.connect_timeout = float(min(connect_timeout, deadline))
        self.deadline = float(deadline)
        # Set after PropertyRadar first accepts the token: a later 401 means it was revoked.
        self._token_accepted = False
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_limit = max_limit
        self._owns_session = session is None
        # A job sends several requests at once from threads (see importer.py), and a
        # requests.Session is not documented as thread-safe: each thread gets its own.
        self._shared_session = session
        self._thread_sessions = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()
        self._sleep = sleep
        self.on_wait = on_wait
        self.on_retry = on_retry
        self._rng = rng if rng is not None else random.Random()
        self._rate_limiter = rate_limiter

    def __repr__(self) -> str:  # never show the token
        return f"PropertyRadarClient(base_url={self.base_url!r})"

    # ------------------------------------------------------------------ public API

    def count(self, criteria: list[dict[str, Any]]) -> int:
        """Number of properties matching ``criteria``. Free: ``Purchase=0`` with one
        RadarID row, reading ``totalResultCount`` (there is no count endpoint)."""
        page = self._search(criteria, start=0, limit=1, purchase=False, fields=["RadarID"])
        return page.total_result_count

    def radar_ids(self, criteria: list[dict[str, Any]], start: int, limit: int) -> Page:
        """A free page of ``{"RadarID": ...}`` rows (``Purchase=0&Fields=RadarID``), used to
        snapshot a search before buying so paging is stable and duplicates are skipped."""
        return self._search(criteria, start=start, limit=limit, purchase=False, fields=["RadarID"])

    def fetch_page(
        self,
        criteria: list[dict[str, Any]],
        start: int,
        limit: int,
        fields: Sequence[str] | None = None,
        client_request_id: str | None = None,
        on_sent: Callable[[], None] | None = None,
    ) -> Page:
        """Buy one page of full records (``Purchase=1``): every returned row is billed.

        ``fields`` defaults to :data:`LEAD_FIELDS`; field count does not change the price,
        but the API caps a request at about 50 fields. ``client_request_id`` is sent as
        the ``X-Client-Request-Id`` header of every attempt: the caller's name for the
        purchase, to match its records with what PropertyRadar saw. ``on_sent`` is called
        once, on this thread, as soon as the first attempt's request has been written to
        the socket (at the latest when the call returns or raises): a caller that waits
        for it knows the purchase has left.
        """
        if isinstance(fields, str):
            raise ValueError("fields must be a sequence of field names, not a string")
        field_list = list(LEAD_FIELDS if fields is None else fields)
        if not field_list or len(field_list) > MAX_FIELDS:
            raise ValueError(f"fields must name between 1 and {MAX_FIELDS} fields")
        for name in field_list:
            if not isinstance(name, str) or not name.strip() or "," in name:
                raise ValueError(f"Invalid field name {name!r}")
        return self._search(
            criteria,
            start=start,
            limit=limit,
            purchase=True,
            fields=[f.strip() for f in field_list],
            client_request_id=client_request_id,
            on_sent=on_sent,
        )

    @property
    def session(self) -> requests.Session:
        """The HTTP session of the calling thread (the injected one, if any)."""
        if self._shared_session is not None:
            return self._shared_session
        session: requests.Session | None = getattr(self._thread_sessions, "session", None)
        if session is None:
            session = requests.Session()
            adapter = _NotifyingAdapter()
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._thread_sessions.session = session
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def close(self) -> None:
        """Close the HTTP sessions this client created."""
        if self._owns_session:
            with self._sessions_lock:
                sessions, self._sessions = self._sessions, []
            for session in sessions:
                session.close()

    def __enter__(self) -> PropertyRadarClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    def _search(
        self,
        criteria: list[dict[str, Any]],
        *,
        start: int,
        limit: int,
        purchase: bool,
        fields: Sequence[str],
        client_request_id: str | None = None,
        on_sent: Callable[[], None] | None = None,
    ) -> Page:
        normalized = validate_criteria(criteria)  # raises CriteriaError, no request made
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            raise ValueError(f"start must be an integer >= 0, got {start!r}")
        if (
            isinstance(limit, bool)
            or not isinstance(limit, int)
            or not (1 <= limit <= self.max_limit)
        ):
            raise ValueError(f"limit must be an integer from 1 to {self.max_limit}, got {limit!r}")
        params = {
            "Purchase": "1" if purchase else "0",
            "Limit": str(limit),
            "Start": str(start),
            "Fields": ",".join(fields),
        }
        body = {"Criteria": normalized}
        headers = self._headers()
        if client_request_id is not None:
            headers[CLIENT_REQUEST_ID_HEADER] = client_request_id
        _on_sent.callback = on_sent
        try:
            return self._request_with_retries(
                params, body, headers, purchase=purchase, start=start, limit=limit
            )
        finally:
            _request_written()  # not written at all (or not through our adapter): say so now

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }

    def _backoff(self, attempt: int, error: PropertyRadarError) -> float:
        if isinstance(error, RateLimitedError) and error.retry_after is not None:
            return min(error.retry_after, self.backoff_max)
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return self._rng.uniform(0, ceiling)

    def _request_with_retries(
        self,
        params: dict[str, str],
        body: dict[str, Any],
        headers: dict[str, str],
        *,
        purchase: bool,
        start: int,
        limit: int,
    ) -> Page:
        # Purchase=1 calls ARE retried (project decision, although the research notes
        # recommend never auto-retrying them). A purchase whose response was lost
        # (5xx, read timeout, garbled body) may already have been billed, and the
        # only way to get those rows is to buy them again: there is no "replay" or
        # refund. So each such retry is reported via RetryEvent.possibly_billed and
        # the final error's ``possibly_billed`` flag, letting the caller's ledger
        # record the potential double charge (or abort by raising from on_retry).
        any_billed = False
        attempt = 0
        while True:
            attempt += 1
            if self._rate_limiter is not None:
                self._rate_limiter.acquire(self.on_wait)
            try:
                return self._attempt(params, body, headers, start=start, limit=limit)
            except PropertyRadarError as error:
                self._scrub(error)
                error.attempts = attempt
                delay = self._backoff(attempt, error)
                limited = isinstance(error, RateLimitedError)
                retry_after = error.retry_after if isinstance(error, RateLimitedError) else None
                if limited and self._rate_limiter is not None:
                    # Tell every worker, not just this one, to back off.
                    self._rate_limiter.pause(delay, retry_after)
                billed = _possibly_billed(error, purchase)
                any_billed = any_billed or billed
                if not error.retryable or attempt >= self.max_attempts:
                    error.possibly_billed = any_billed
                    error.last_attempt_possibly_billed = billed
                    raise
                log.warning(
                    "PropertyRadar attempt %d/%d failed (%s); retrying in %.2fs%s",
                    attempt,
                    self.max_attempts,
                    error,
                    delay,
                    " [purchase possibly billed]" if billed else "",
                )
                if self.on_retry is not None:
                    self.on_retry(RetryEvent(attempt, delay, error, purchase, billed, limit))
                wait = Wait(
                    WaitKind.PAUSED if limited else WaitKind.BACKOFF,
                    delay,
                    cause=_what_failed(error),
                    attempt=attempt + 1,
                    max_attempts=self.max_attempts,
                    retry_after=retry_after,
                )
                sleep_through(wait, self._sleep, self.on_wait)

    def _attempt(
        self,
        params: dict[str, str],
        body: dict[str, Any],
        headers: dict[str, str],
        *,
        start: int,
        limit: int,
    ) -> Page:
        # Build the query by hand so the Fields commas stay literal (readable in logs).
        url = f"{self.base_url}{PROPERTIES_PATH}?{urlencode(params, safe=',')}"
        deadline = time.monotonic() + self.deadline
        try:
            # stream=True: return after the headers, so the body can be read against the
            # deadline; every socket wait before that is capped at the whole deadline.
            response = self.session.post(
                url,
                data=json.dumps(body),
                headers=headers,
                timeout=(self.connect_timeout, self.deadline),
                allow_redirects=False,
                stream=True,
            )
        except rexc.RequestException as exc:
            raise _transport_error(exc) from exc
        content = self._read_body(response, deadline)
        data, request_id = self._check_response(response, content)
        return _build_page(data, request_id, response.status_code, start, limit, content)

    def _read_body(self, response: requests.Response, deadline: float) -> bytes:
        """The whole body, or TransportError once ``deadline`` (monotonic) has passed.

        Each read waits at most the time left, and returns whatever bytes have arrived,
        so a body trickled in small pieces cannot stretch the request past the deadline.
        """
        sock = _socket_of(response)
        pieces: list[bytes] = []
        complete = False
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._deadline_error(response)
                if sock is not None:
                    sock.settimeout(left)
                try:
                    piece = response.raw.read1(BODY_READ_SIZE, decode_content=True)
                except (ReadTimeoutError, TimeoutError) as exc:
                    raise self._deadline_error(response) from exc
                except (ProtocolError, DecodeError, OSError) as exc:
                    raise TransportError(
                        f"PropertyRadar response was cut off ({_reason(exc)})",
                        sent=True,
                        request_id=response.headers.get(REQUEST_ID_HEADER) or None,
                    ) from exc
                if not piece:
                    complete = True
                    return b"".join(pieces)
                pieces.append(piece)
        finally:
            if complete:
                response.raw.release_conn()  # read to the end: the connection can be reused
            else:
                response.close()  # unread bytes: drop the connection, never reuse it

    def _deadline_error(self, response: requests.Response) -> TransportError:
        return TransportError(
            f"Timed out waiting for PropertyRadar (no complete answer within {self.deadline:g} s)",
            sent=True,
            request_id=response.headers.get(REQUEST_ID_HEADER) or None,
        )

    def _scrub(self, error: PropertyRadarError) -> None:
        """Remove the token from anything an error carries (an API or proxy could echo
        the Authorization header back in its body). A token of a few characters is no
        secret worth garbling every message for."""
        if len(self._token) < 4:
            return
        for name in ("message", "detail"):
            text = getattr(error, name)
            if isinstance(text, str) and self._token in text:
                setattr(error, name, text.replace(self._token, "[API token]"))
        error.args = tuple(
            a.replace(self._token, "[API token]") if isinstance(a, str) else a for a in error.args
        )

    def _check_response(
        self, response: requests.Response, content: bytes
    ) -> tuple[dict[str, Any], str | None]:
        status = response.status_code
        try:
            data: Any = jsoncodec.loads(content)
        except (ValueError, RecursionError):
            data = None
        request_id = response.headers.get(REQUEST_ID_HEADER) or None
        if request_id is None and isinstance(data, dict) and data.get("eventid"):
            request_id = str(data["eventid"])

        if 200 <= status < 300:
            if data is None:
                raise MalformedResponseError(
                    "PropertyRadar sent a response that is not valid JSON",
                    status=status,
                    request_id=request_id,
                )
            self._token_accepted = True
            return data, request_id

        body = data if isinstance(data, dict) else {}
        texts = {
            key: body[key].strip()
            for key in ("message", "error")
            if isinstance(body.get(key), str) and body[key].strip()
        }
        # Prefer the end-user ``message``; keep the technical ``error`` as ``detail``.
        api_message = texts.get("message") or texts.get("error")
        kwargs: dict[str, Any] = {
            "status": status,
            "request_id": request_id,
            "detail": texts.get("error"),
        }
        if status in (401, 403):
            # Say which setting to fix; the token itself never goes in a message.
            earlier = ", which it had accepted earlier in this run" if self._token_accepted else ""
            said = f": {api_message.rstrip('.')}" if api_message else ""
            raise AuthenticationError(
                f"PropertyRadar rejected the API token{earlier}{said}. Set a valid "
                f"{TOKEN_SETTING} (it may have been revoked or rotated), then retry the job.",
                **kwargs,
            )
        if status in (400, 404, 422):
            raise BadRequestError(api_message or "PropertyRadar rejected the request", **kwargs)
        if status == 429:
            raise RateLimitedError(
                api_message or "Too many requests to PropertyRadar",
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
                **kwargs,
            )
        if status >= 500:
            raise ServerError(
                api_message or response.reason or "PropertyRadar server error", **kwargs
            )
        # 3xx and other 4xx (402, 405, 409...): undocumented, not transient; don't retry.
        raise PropertyRadarError(
            api_message or f"Unexpected response ({response.reason or status})", **kwargs
        )


def _build_page(
    data: Any, request_id: str | None, status: int, start: int, limit: int, body: bytes
) -> Page:
    """Validate a 2xx body into a Page; anything unusable is MalformedResponseError
    (retryable: usually a truncated body or an intermediary's error page)."""

    def bad(reason: str) -> MalformedResponseError:
        return MalformedResponseError(reason, status=status, request_id=request_id)

    if not isinstance(data, dict):
        raise bad("PropertyRadar response is not a JSON object")
    results = data.get("results")
    if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
        raise bad("PropertyRadar response has no 'results' list")
    result_count = to_int(data.get("resultCount"))
    if result_count is None:
        result_count = len(results)
    total = to_int(data.get("totalResultCount"))
    if total is None:
        raise bad("PropertyRadar response has no 'totalResultCount'")
    return Page(
        results=results,
        result_count=result_count,
        total_result_count=total,
        total_cost=to_float(data.get("totalCost")),
        request_id=request_id,
        start=start,
        limit=limit,
        body=body,
    )


__all__ = ["Page", "PropertyRadarClient", "RetryEvent", "page_from_body", "parse_retry_after"]
