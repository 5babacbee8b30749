"""PropertyRadarClient against requests-mock: wire format, retries, errors, coercion."""

from __future__ import annotations

import ast
import email.utils
import json
import logging
import random
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import requests_mock as rm
from urllib3.exceptions import NewConnectionError, ProtocolError

from radar_app.defaults import DEFAULT_API_URL, MAX_BATCH_SIZE
from radar_app.propertyradar.client import (
    Page,
    PropertyRadarClient,
    RetryEvent,
    parse_retry_after,
)
from radar_app.propertyradar.coerce import (
    to_bool,
    to_float,
    to_int,
    to_state,
    to_str,
    to_zip,
)
from radar_app.propertyradar.criteria import LEAD_FIELDS
from radar_app.propertyradar.errors import (
    AuthenticationError,
    BadRequestError,
    CriteriaError,
    MalformedResponseError,
    PropertyRadarError,
    RateLimitedError,
    ServerError,
    TransportError,
)

URL = DEFAULT_API_URL + "/v1/properties"
CRITERIA = [
    {"name": "State", "value": ["OR"]},
    {"name": "County", "value": ["41051"]},
    {"name": "PropertyType", "value": [{"name": "PType", "value": ["SFR"]}]},
    {"name": "isSameMailingOrExempt", "value": [0]},
    {"name": "EquityPercent", "value": [[40, None]]},
]
ROW = {
    "RadarID": "P1A2B3C4", "APN": "R123456", "Address": "1234 SE Alder St",
    "City": "Portland", "State": "OR", "ZipFive": 97214, "Owner": "Doe Jane",
    "OwnerAddress": "55 Pine Ave", "OwnerCity": "Bend", "OwnerState": "OR",
    "OwnerZipFive": 97701, "PType": "Single Family", "Beds": 3, "Baths": "2", "SqFt": 1640,
    "AVM": "612000", "AvailableEquity": "401000", "EquityPercent": "65",
    "isSameMailingOrExempt": 0, "inForeclosure": 0, "ForeclosureStage": None,
}  # fmt: skip


def ok_body(results: list | None = None, total: object = 1873, cost: object = "2") -> dict:
    results = [ROW] if results is None else results
    return {
        "results": results,
        "resultCount": len(results),
        "totalResultCount": total,
        "totalCost": cost,
    }


class Recorder:
    """Stands in for time.sleep and on_retry: records instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.events: list[RetryEvent] = []

    def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)

    def on_retry(self, event: RetryEvent) -> None:
        self.events.append(event)


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def client(rec: Recorder):
    with PropertyRadarClient(
        "tok-123", sleep=rec.sleep, on_retry=rec.on_retry, rng=random.Random(7)
    ) as c:
        yield c


@pytest.fixture
def mock():
    with rm.Mocker() as m:
        yield m


def query(request) -> dict[str, list[str]]:
    """Case-preserving query parsing (requests-mock's .qs lower-cases values)."""
    return parse_qs(urlsplit(request.url).query, keep_blank_values=True)


# ----------------------------------------------------------------------- wire format


def test_fetch_page_query_string_body_and_headers(client, mock) -> None:
    mock.post(URL, json=ok_body(), headers={"X-Radar-Request-Id": "3fa-91c-7d2"})
    page = client.fetch_page(CRITERIA, start=800, limit=400)

    req = mock.last_request
    q = query(req)
    assert q == {
        "Purchase": ["1"],
        "Limit": ["400"],
        "Start": ["800"],
        "Fields": [",".join(LEAD_FIELDS)],
    }
    assert "Fields=RadarID,APN," in req.url  # commas stay literal
    assert req.json() == {"Criteria": CRITERIA}
    assert set(req.json()) == {"Criteria"}
    assert req.headers["Authorization"] == "Bearer tok-123"
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["Accept"] == "application/json"
    assert req.headers["User-Agent"].startswith("radar_app/")
    assert req.timeout == (5.0, 30.0)

    assert page == Page(
        results=[ROW],
        result_count=1,
        total_result_count=1873,
        total_cost=2.0,
        request_id="3fa-91c-7d2",
        start=800,
        limit=400,
    )


def test_body_carries_normalized_criteria_only(client, mock) -> None:
    mock.post(URL, json=ok_body())
    client.fetch_page(
        [
            {"name": "State", "value": ["or"], "chipLabel": "Oregon"},
            {"name": "ZipFive", "value": ["97214"]},
        ],
        start=0,
        limit=10,
        fields=["RadarID", "Address"],
    )
    body = mock.last_request.json()
    assert body == {
        "Criteria": [{"name": "State", "value": ["OR"]}, {"name": "ZipFive", "value": [97214]}]
    }
    for key in ("Purchase", "Limit", "Start", "Fields"):
        assert key not in body
    assert query(mock.last_request)["Fields"] == ["RadarID,Address"]


def test_count_is_free_single_row_query(client, mock) -> None:
    mock.post(
        URL,
        json={
            "results": [{"RadarID": "P1A2B3C4"}],
            "resultCount": 1,
            "totalResultCount": "1,873",
            "totalCost": "0",
        },
    )
    assert client.count(CRITERIA) == 1873
    assert query(mock.last_request) == {
        "Purchase": ["0"],
        "Limit": ["1"],
        "Start": ["0"],
        "Fields": ["RadarID"],
    }
    assert mock.last_request.json() == {"Criteria": CRITERIA}


def test_radar_ids_page_is_free(client, mock) -> None:
    rows = [{"RadarID": f"P{i:07X}"} for i in range(3)]
    mock.post(URL, json={"results": rows, "totalResultCount": 1003})
    page = client.radar_ids(CRITERIA, start=1000, limit=400)
    assert query(mock.last_request) == {
        "Purchase": ["0"],
        "Limit": ["400"],
        "Start": ["1000"],
        "Fields": ["RadarID"],
    }
    assert page.results == rows
    assert page.result_count == 3  # resultCount missing -> len(results)
    assert page.total_cost is None
    assert (page.start, page.limit, page.total_result_count) == (1000, 400, 1003)


def test_paging_arithmetic_walks_all_offsets(client, mock) -> None:
    total = 950

    def respond(request, context):
        q = query(request)
        start, limit = int(q["Start"][0]), int(q["Limit"][0])
        ids = [{"RadarID": f"P{i:07X}"} for i in range(start, min(start + limit, total))]
        return {"results": ids, "resultCount": len(ids), "totalResultCount": total}

    mock.post(URL, json=respond)
    seen, start = [], 0
    while True:
        page = client.radar_ids(CRITERIA, start=start, limit=400)
        seen += [r["RadarID"] for r in page.results]
        start = page.start + page.limit
        if start >= page.total_result_count:
            break
    assert [query(r)["Start"][0] for r in mock.request_history] == ["0", "400", "800"]
    assert len(seen) == len(set(seen)) == total


def test_custom_base_url_and_timeout(rec, mock) -> None:
    mock.post("http://sim.local:5001/v1/properties", json=ok_body())
    c = PropertyRadarClient("t", "http://sim.local:5001/", timeout=(1.0, 2.0), sleep=rec.sleep)
    c.count(CRITERIA)
    assert mock.last_request.timeout == (1.0, 2.0)
    assert "tok" not in repr(c) and "sim.local" in repr(c)


@pytest.mark.parametrize(
    ("start", "limit"),
    [(-1, 10), (0, 0), (0, MAX_BATCH_SIZE + 1), ("0", 10), (0, 10.0), (True, 10), (0, None)],
)
def test_start_and_limit_validated_before_request(client, mock, start, limit) -> None:
    mock.post(URL, json=ok_body())
    with pytest.raises(ValueError):
        client.fetch_page(CRITERIA, start=start, limit=limit)
    assert mock.call_count == 0


def test_limit_bounds_inclusive_and_configurable(rec, mock) -> None:
    mock.post(URL, json=ok_body())
    c = PropertyRadarClient("t", sleep=rec.sleep)
    c.radar_ids(CRITERIA, start=0, limit=MAX_BATCH_SIZE)
    c.radar_ids(CRITERIA, start=0, limit=1)
    small = PropertyRadarClient("t", sleep=rec.sleep, max_limit=100)
    with pytest.raises(ValueError):
        small.radar_ids(CRITERIA, start=0, limit=101)
    assert mock.call_count == 2


@pytest.mark.parametrize(
    "fields", [[], ["RadarID,APN"], [""], "RadarID", [f"F{i}" for i in range(51)]]
)
def test_fields_validated_before_request(client, mock, fields) -> None:
    mock.post(URL, json=ok_body())
    with pytest.raises(ValueError):
        client.fetch_page(CRITERIA, 0, 10, fields=fields)
    assert mock.call_count == 0


@pytest.mark.parametrize("call", ["count", "radar_ids", "fetch_page"])
def test_criteria_validated_before_any_request(client, mock, call) -> None:
    mock.post(URL, json=ok_body())
    bad = [{"name": "SiteCity", "value": ["Portland"]}, {"name": "State", "value": ["Oregon"]}]
    with pytest.raises(CriteriaError) as info:
        if call == "count":
            client.count(bad)
        else:
            getattr(client, call)(bad, 0, 10)
    assert set(info.value.errors) == {"criteria[0].name", "criteria[1].value"}
    assert mock.call_count == 0


def test_constructor_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        PropertyRadarClient("")
    with pytest.raises(ValueError):
        PropertyRadarClient("t", max_attempts=0)
    for timeout in (0, -1.0, (1.0, 0), (0, 5.0), "30", (1.0,), None, True, float("nan")):
        with pytest.raises((ValueError, TypeError)):
            PropertyRadarClient("t", timeout=timeout)  # type: ignore[arg-type]


def test_one_number_timeout_is_both_the_connect_cap_and_the_deadline(mock) -> None:
    mock.post(URL, json=ok_body())
    PropertyRadarClient("t", timeout=7.5).count(CRITERIA)
    assert mock.last_request.timeout == (7.5, 7.5)
    # The connect cap never exceeds the whole deadline.
    PropertyRadarClient("t", timeout=(10.0, 2.0)).count(CRITERIA)
    assert mock.last_request.timeout == (2.0, 2.0)


def test_close_only_closes_owned_session() -> None:
    shared = requests.Session()
    closed = []
    shared.close = lambda: closed.append(True)  # type: ignore[method-assign]
    with PropertyRadarClient("t", session=shared):
        pass
    assert closed == []
    own = PropertyRadarClient("t")
    own.session.close = lambda: closed.append("own")  # type: ignore[method-assign]
    own.close()
    assert closed == ["own"]


# --------------------------------------------------------------------------- retries


def test_backoff_grows_exponentially_with_full_jitter_capped(rec, mock) -> None:
    mock.post(URL, status_code=503, json={"error": "Service unavailable"})
    c = PropertyRadarClient(
        "t",
        max_attempts=8,
        backoff_base=1.0,
        backoff_max=10.0,
        sleep=rec.sleep,
        on_retry=rec.on_retry,
        rng=random.Random(1),
    )
    with pytest.raises(ServerError) as info:
        c.count(CRITERIA)
    assert mock.call_count == 8
    assert info.value.attempts == 8
    assert len(rec.delays) == 7
    ceilings = [1, 2, 4, 8, 10, 10, 10]
    # Same seed => same jitter draws: delay_i = uniform(0, ceiling_i).
    expected_rng = random.Random(1)
    assert rec.delays == [expected_rng.uniform(0, ceil) for ceil in ceilings]
    for delay, ceil in zip(rec.delays, ceilings, strict=True):
        assert 0 <= delay <= ceil
    assert [e.attempt for e in rec.events] == [1, 2, 3, 4, 5, 6, 7]
    assert [e.delay for e in rec.events] == rec.delays


class MaxRng(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b


def test_backoff_ceiling_sequence(rec, mock) -> None:
    mock.post(URL, status_code=500)
    c = PropertyRadarClient(
        "t", max_attempts=6, backoff_base=0.5, backoff_max=3.0, sleep=rec.sleep, rng=MaxRng()
    )
    with pytest.raises(ServerError):
        c.radar_ids(CRITERIA, 0, 10)
    assert rec.delays == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_gives_up_after_max_attempts_with_last_error(client, rec, mock) -> None:
    mock.post(
        URL,
        [
            {"status_code": 502, "json": {"error": "first"}},
            {"status_code": 500, "json": {"error": "second"}},
            {"status_code": 429, "json": {"error": "third"}},
            {"status_code": 503, "json": {"error": "fourth"}},
            {
                "status_code": 504,
                "json": {"error": "last one"},
                "headers": {"X-Radar-Request-Id": "aaa-bbb-ccc"},
            },
        ],
    )
    with pytest.raises(ServerError) as info:
        client.count(CRITERIA)
    err = info.value
    assert mock.call_count == 5
    assert (err.status, err.message, err.request_id, err.attempts) == (
        504,
        "last one",
        "aaa-bbb-ccc",
        5,
    )
    assert str(err) == (
        "PropertyRadar returned 504 (request aaa-bbb-ccc): last one (gave up after 5 attempts)"
    )
    assert len(rec.delays) == 4
    assert err.possibly_billed is False  # count() never purchases


def test_retry_after_seconds_honoured_and_capped(rec, mock) -> None:
    mock.post(
        URL,
        [
            {"status_code": 429, "headers": {"Retry-After": "7"}},
            {"status_code": 429, "headers": {"Retry-After": "120"}},
            {"status_code": 429, "headers": {"Retry-After": "soon"}},
            {"json": ok_body()},
        ],
    )
    c = PropertyRadarClient(
        "t",
        backoff_base=0.5,
        backoff_max=30.0,
        sleep=rec.sleep,
        on_retry=rec.on_retry,
        rng=MaxRng(),
    )
    assert c.count(CRITERIA) == 1873
    assert rec.delays == [7.0, 30.0, 2.0]  # unreadable header -> exponential backoff
    first = rec.events[0]
    assert isinstance(first.error, RateLimitedError)
    assert first.error.retry_after == 7.0
    assert first.possibly_billed is False


def test_retry_after_http_date(rec, mock) -> None:
    when = email.utils.formatdate(time.time() + 20, usegmt=True)
    mock.post(URL, [{"status_code": 429, "headers": {"Retry-After": when}}, {"json": ok_body()}])
    c = PropertyRadarClient("t", backoff_max=60.0, sleep=rec.sleep)
    c.count(CRITERIA)
    assert len(rec.delays) == 1
    assert 17.0 <= rec.delays[0] <= 20.0


def test_parse_retry_after() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("5", now) == 5.0
    assert parse_retry_after(" 1.5 ", now) == 1.5
    assert parse_retry_after("-3", now) == 0.0
    assert parse_retry_after(email.utils.formatdate(now + 90, usegmt=True), now) == 90.0
    assert parse_retry_after(email.utils.formatdate(now - 90, usegmt=True), now) == 0.0
    for junk in (None, "", "nan", "inf", "tomorrow-ish"):
        assert parse_retry_after(junk, now) is None


def test_401_not_retried(client, rec, mock) -> None:
    mock.post(URL, status_code=401, json={"error": "Invalid token", "eventid": "111-222-333"})
    with pytest.raises(AuthenticationError) as info:
        client.fetch_page(CRITERIA, 0, 10)
    assert mock.call_count == 1
    assert rec.delays == [] and rec.events == []
    err = info.value
    assert (err.status, err.request_id, err.attempts, err.retryable) == (
        401,
        "111-222-333",
        1,
        False,
    )


def test_403_is_authentication_error(client, mock) -> None:
    mock.post(URL, status_code=403, text="Forbidden")
    with pytest.raises(AuthenticationError) as info:
        client.count(CRITERIA)
    assert mock.call_count == 1
    assert "token" in info.value.message


def test_token_rejected_mid_run_says_which_setting_to_fix(client, rec, mock) -> None:
    mock.post(
        URL,
        [
            {"json": ok_body()},
            {
                "status_code": 401,
                "json": {"error": "Unauthorized", "message": "Your API key is missing or invalid."},
            },
        ],
    )
    client.fetch_page(CRITERIA, 0, 10)
    with pytest.raises(AuthenticationError) as info:
        client.fetch_page(CRITERIA, 10, 10)
    assert mock.call_count == 2 and rec.events == []  # not retried
    assert info.value.message == (
        "PropertyRadar rejected the API token, which it had accepted earlier in this run: "
        "Your API key is missing or invalid. Set a valid PROPERTYRADAR_API_TOKEN (it may "
        "have been revoked or rotated), then retry the job."
    )
    assert info.value.possibly_billed is False


def test_the_token_is_in_no_log_line_error_or_repr(rec, mock, caplog) -> None:
    secret = "sk-live-5f1e2d3c4b5a69788796a5b4"
    echo = f"Bearer {secret}"
    mock.post(
        URL,
        [
            {"status_code": 500, "json": {"error": f"bad header {echo}", "message": echo}},
            {"exc": requests.exceptions.ReadTimeout(f"read timed out; Authorization: {echo}")},
            {"exc": requests.exceptions.ConnectionError(f"reset while sending {echo}")},
            {"status_code": 200, "text": f"<html>{echo}</html>"},
            {"status_code": 429, "json": {"message": echo}, "headers": {"Retry-After": "0"}},
            {"status_code": 401, "json": {"error": f"Invalid token {secret}", "message": echo}},
        ],
    )
    caplog.set_level(logging.DEBUG)
    c = PropertyRadarClient(
        secret, max_attempts=10, sleep=rec.sleep, on_retry=rec.on_retry, rng=random.Random(1)
    )
    with pytest.raises(AuthenticationError) as info:
        c.fetch_page(CRITERIA, 0, 10)
    assert mock.call_count == 6 and len(rec.events) == 5
    assert mock.last_request.headers["Authorization"] == echo  # it was sent, and only there
    errors = [event.error for event in rec.events] + [info.value]
    for error in errors:
        for text in (str(error), repr(error), error.message, error.detail or "", *error.args):
            assert secret not in text, text
    assert "[API token]" in info.value.detail
    assert secret not in caplog.text and "attempt 5/10 failed" in caplog.text
    assert secret not in repr(c)


def test_400_surfaces_message_and_request_id(client, rec, mock) -> None:
    mock.post(
        URL,
        status_code=400,
        headers={"X-Radar-Request-Id": "3fa-91c-7d2"},
        json={
            "error": "Unexpected Criterion: SiteCity",
            "eventid": "3fa-91c-7d2",
            "message": "One of your search criteria is not recognized.",
            "messageTitle": "Invalid search",
        },
    )
    with pytest.raises(BadRequestError) as info:
        client.fetch_page(CRITERIA, 0, 10)
    err = info.value
    assert mock.call_count == 1 and rec.delays == []
    assert err.message == "One of your search criteria is not recognized."
    assert err.detail == "Unexpected Criterion: SiteCity"
    assert err.request_id == "3fa-91c-7d2"
    assert str(err) == (
        "PropertyRadar returned 400 (request 3fa-91c-7d2): "
        "One of your search criteria is not recognized."
    )
    assert err.possibly_billed is False


@pytest.mark.parametrize("status", [404, 422])
def test_other_client_errors_fall_back_to_error_field(client, mock, status) -> None:
    mock.post(URL, status_code=status, json={"error": "Missing required param", "eventid": "9-9-9"})
    with pytest.raises(BadRequestError) as info:
        client.count(CRITERIA)
    assert info.value.message == "Missing required param"
    assert info.value.request_id == "9-9-9"
    assert mock.call_count == 1


def test_undocumented_status_not_retried(client, mock) -> None:
    mock.post(URL, status_code=402, json={"message": "Payment required"})
    with pytest.raises(PropertyRadarError) as info:
        client.fetch_page(CRITERIA, 0, 10)
    assert type(info.value) is PropertyRadarError
    assert mock.call_count == 1


def test_5xx_retried_then_succeeds_and_is_not_called_billed(client, rec, mock) -> None:
    """PropertyRadar bills each result returned; an error answer returned none."""
    mock.post(URL, [{"status_code": 503, "reason": "Service Unavailable"}, {"json": ok_body()}])
    page = client.fetch_page(CRITERIA, 0, 10)
    assert page.results == [ROW]
    assert mock.call_count == 2
    (event,) = rec.events
    assert isinstance(event.error, ServerError)
    assert event.error.message == "Service Unavailable"
    assert (event.attempt, event.purchase, event.possibly_billed) == (1, True, False)
    assert event.delay == rec.delays[0]


def test_a_gateway_timeout_on_a_purchase_is_possibly_billed(client, rec, mock) -> None:
    """A 504 is a gateway giving up on an answer the API may still have produced."""
    mock.post(URL, [{"status_code": 504, "reason": "Gateway Timeout"}, {"json": ok_body()}])
    client.fetch_page(CRITERIA, 0, 10)
    (event,) = rec.events
    assert (event.purchase, event.possibly_billed, event.requested) == (True, True, 10)


def test_5xx_on_free_call_not_flagged_billed(client, rec, mock) -> None:
    mock.post(URL, [{"status_code": 500}, {"json": ok_body()}])
    client.radar_ids(CRITERIA, 0, 10)
    (event,) = rec.events
    assert (event.purchase, event.possibly_billed) == (False, False)


def test_connect_timeout_retried_not_billed(client, rec, mock) -> None:
    mock.post(
        URL, [{"exc": requests.exceptions.ConnectTimeout("connect timed out")}, {"json": ok_body()}]
    )
    client.fetch_page(CRITERIA, 0, 10)
    (event,) = rec.events
    assert isinstance(event.error, TransportError)
    assert event.error.sent is False
    assert (event.purchase, event.possibly_billed) == (True, False)


def test_read_timeout_retried_and_possibly_billed(client, rec, mock) -> None:
    mock.post(
        URL,
        [
            {"exc": requests.exceptions.ReadTimeout("read timed out")},
            {"exc": requests.exceptions.ReadTimeout("read timed out")},
            {"json": ok_body()},
        ],
    )
    page = client.fetch_page(CRITERIA, 0, 10)
    assert page.total_result_count == 1873
    assert [e.error.sent for e in rec.events] == [True, True]
    assert [e.possibly_billed for e in rec.events] == [True, True]
    assert mock.call_count == 3


def test_connection_errors_classified_by_whether_sent(client, rec, mock) -> None:
    refused = requests.exceptions.ConnectionError(
        NewConnectionError(None, "Failed to establish a new connection: refused")
    )
    dropped = requests.exceptions.ConnectionError(
        ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))
    )
    mock.post(URL, [{"exc": refused}, {"exc": dropped}, {"json": ok_body()}])
    client.fetch_page(CRITERIA, 0, 10)
    assert [e.error.sent for e in rec.events] == [False, True]
    assert [e.possibly_billed for e in rec.events] == [False, True]


def test_final_error_reports_any_possibly_billed_attempt(rec, mock) -> None:
    mock.post(
        URL,
        [
            {"exc": requests.exceptions.ReadTimeout("slow")},
            {"exc": requests.exceptions.ConnectTimeout("down")},
        ],
    )
    c = PropertyRadarClient("t", max_attempts=2, sleep=rec.sleep, on_retry=rec.on_retry)
    with pytest.raises(TransportError) as info:
        c.fetch_page(CRITERIA, 0, 10)
    assert info.value.sent is False and info.value.attempts == 2
    assert info.value.possibly_billed is True  # the first attempt may have been billed
    assert "request failed" in str(info.value)


@pytest.mark.parametrize(
    "response",
    [
        {"text": "<html>Bad gateway</html>"},
        {"text": '{"results": [ {"RadarID": '},
        {"json": {"resultCount": 0, "totalResultCount": 0}},
        {"json": {"results": "nope", "totalResultCount": 0}},
        {"json": {"results": [1, 2], "totalResultCount": 2}},
        {"json": [ROW]},
        {"json": {"results": [ROW], "resultCount": 1}},  # totalResultCount missing
        {"json": {"results": [ROW], "resultCount": 1, "totalResultCount": "lots"}},
    ],
)
def test_malformed_2xx_retried_then_succeeds(client, rec, mock, response) -> None:
    mock.post(URL, [response, {"json": ok_body()}])
    page = client.fetch_page(CRITERIA, 0, 10)
    assert page.result_count == 1
    (event,) = rec.events
    assert isinstance(event.error, MalformedResponseError)
    assert event.possibly_billed is True  # a garbled purchase response may have been billed


def test_malformed_exhausts_attempts(client, mock) -> None:
    mock.post(URL, text="not json")
    with pytest.raises(MalformedResponseError) as info:
        client.count(CRITERIA)
    assert info.value.attempts == 5 and mock.call_count == 5


def test_raising_from_on_retry_aborts(rec, mock) -> None:
    mock.post(URL, status_code=504)

    class Stop(Exception):
        pass

    def refuse(event: RetryEvent) -> None:
        if event.possibly_billed:
            raise Stop

    c = PropertyRadarClient("t", sleep=rec.sleep, on_retry=refuse)
    with pytest.raises(Stop):
        c.fetch_page(CRITERIA, 0, 10)
    assert mock.call_count == 1 and rec.delays == []


def test_error_str_and_attributes() -> None:
    err = ServerError("Service unavailable", status=503, request_id="3fa-91c-7d2")
    assert str(err) == "PropertyRadar returned 503 (request 3fa-91c-7d2): Service unavailable"
    assert err.retryable and not BadRequestError("x").retryable
    assert not AuthenticationError("x").retryable
    assert RateLimitedError("x", retry_after=3).retry_after == 3
    assert str(TransportError("Timed out", sent=True)) == (
        "PropertyRadar request failed: Timed out"
    )
    assert MalformedResponseError("bad").retryable
    assert isinstance(CriteriaError({"criteria": "x"}), ValueError)


# ------------------------------------------------------------------------- coercion


@pytest.mark.parametrize(
    ("raw", "as_int", "as_float"),
    [
        ("$1,234", 1234, 1234.0),
        ("1,234.50", 1234, 1234.5),
        ("65%", 65, 65.0),
        ("612000", 612000, 612000.0),
        (" 42 ", 42, 42.0),
        ("(1,500)", -1500, -1500.0),
        ("-$5", -5, -5.0),
        (1640, 1640, 1640.0),
        (2.5, 2, 2.5),
        (Decimal("3.0"), 3, 3.0),
        ("", None, None),
        (None, None, None),
        ("N/A", None, None),
        ("garbage", None, None),
        ("nan", None, None),
        ("Infinity", None, None),
        ("1e999999", None, None),
        (float("inf"), None, None),
        ([1], None, None),
        ({"v": 1}, None, None),
    ],
)
def test_numeric_coercion(raw, as_int, as_float) -> None:
    assert to_int(raw) == as_int
    assert to_float(raw) == as_float


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (1, True),
        (0, False),
        ("1", True),
        ("0", False),
        (True, True),
        (False, False),
        ("true", True),
        ("FALSE", False),
        ("Yes", True),
        ("no", False),
        (" Y ", True),
        (2, None),
        ("", None),
        (None, None),
        ("maybe", None),
        ([], None),
    ],
)
def test_bool_coercion(raw, expected) -> None:
    assert to_bool(raw) is expected


def test_str_state_zip_coercion() -> None:
    assert to_str("  Doe Jane ") == "Doe Jane"
    assert to_str("   ") is None and to_str(None) is None
    assert to_str(97214) == "97214" and to_str(2.0) == "2"
    assert to_str(["x"]) is None and to_str(True) is None
    assert to_state("or") == "OR" and to_state("California") == "CA"
    assert to_state("new  york") == "NY" and to_state("Calif") is None and to_state(5) is None
    assert to_zip(2134) == "02134" and to_zip("97214-1234") == "97214"
    assert to_zip("0213") == "00213" and to_zip(97214.0) == "97214"
    assert to_zip("ABCDE") is None and to_zip(123456) is None and to_zip("1234567") is None


def test_page_total_cost_coerced(client, mock) -> None:
    mock.post(URL, json=ok_body(cost="$1,204.50"))
    assert client.fetch_page(CRITERIA, 0, 10).total_cost == 1204.5
    mock.post(URL, json=ok_body(cost="n/a"))
    assert client.fetch_page(CRITERIA, 0, 10).total_cost is None


# ----------------------------------------------------------------------- boundaries


def test_modules_import_nothing_from_the_app_or_flask() -> None:
    pkg = Path(__file__).resolve().parents[1] / "radar_app" / "propertyradar"
    criteria_rooms = sorted(p.stem for p in (pkg / "criteria").glob("*.py"))
    assert {"catalogue", "validate", "describe", "fields", "text"} <= set(criteria_rooms)
    allowed_local = {"errors", "criteria", "coerce", "client", "wait", *criteria_rooms}
    names = ["errors.py", "client.py", "coerce.py", "wait.py"]
    names += [f"criteria/{room}.py" for room in criteria_rooms]
    for name in names:
        tree = ast.parse((pkg / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    assert node.module in allowed_local, (name, node.module)
                    continue
                mods = [node.module or ""]
            else:
                continue
            for mod in mods:
                root = mod.split(".")[0]
                assert root not in {"flask", "sqlalchemy", "flask_sqlalchemy", "rq"}, (name, mod)
                if root == "radar_app":  # leaf modules that import nothing of the app
                    assert mod in {"radar_app.defaults", "radar_app.jsoncodec"}, (name, mod)


def test_body_is_plain_json(client, mock) -> None:
    mock.post(URL, json=ok_body())
    client.count(CRITERIA)
    assert json.loads(mock.last_request.body) == {"Criteria": CRITERIA}
