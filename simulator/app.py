"""The simulated PropertyRadar API as a WSGI application: authentication, criteria,
paging, billing, fault decisions, statistics and the ``/_sim`` control endpoints."""

from __future__ import annotations

import copy
import dataclasses
import json
import random
import secrets
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from werkzeug.wrappers import Request, Response

from simulator.config import SimulatorConfig, coerce_config
from simulator.dataset import Dataset, get_dataset
from simulator.faults import spoil_records, trickle_body
from simulator.schema import ALL_FIELD_SET, FIELDSETS, MAX_FIELDS, CriteriaError

_PRE_FAULTS = frozenset({"429", "500", "502", "503"})
_LOG_MAX = 100_000

# RadarIDs of records grown by total_after_first sit far past the dataset and drift clones.
_GROWN_ID_OFFSET = 10_000_000


def _price(price_per_record: float) -> Decimal:
    # repr() gives the shortest exact text of the float: 0.1 -> Decimal("0.1"), not 0.1000...0055
    return Decimal(repr(price_per_record))


def _cost_text(records: int, price_per_record: float) -> str:
    """``totalCost`` as the API sends it, a string: "40" for 400 records at 0.1."""
    if records == 0:
        return "0"
    text = format(_price(price_per_record) * records, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


class _ApiError(Exception):
    def __init__(self, status: int, error: str, message: str, title: str) -> None:
        super().__init__(error)
        self.status, self.error, self.message, self.title = status, error, message, title


def _bad_request(
    error: str,
    message: str = "Your request could not be processed.",
    title: str = "Invalid request",
) -> _ApiError:
    return _ApiError(400, error, message, title)


class Simulator:
    """The WSGI application. One instance holds config, fault state and statistics."""

    def __init__(
        self, config: SimulatorConfig | None = None, dataset: Dataset | None = None
    ) -> None:
        self.config = config if config is not None else SimulatorConfig()
        self.dataset = dataset if dataset is not None else get_dataset(1.0, self.config.seed)
        self._lock = threading.RLock()
        self._rng = random.Random(self.config.seed)
        self._script_src: list[dict] | None = None
        self._script_left: list[int] = []
        self._reset_state()

    # -- control -----------------------------------------------------------------------

    def _reset_state(self) -> None:
        self._log: deque[dict[str, Any]] = deque(maxlen=_LOG_MAX)
        self._purchase_requests = 0
        self._count_requests = 0
        self._billed_records = 0
        self._billed_ids: dict[str, int] = {}
        self._faults: dict[str, int] = {}
        self._billed_cost = Decimal(0)
        self._drift_steps = 0
        # Searches (canonical criteria) whose first page was served: total_after_first.
        self._first_page_served: set[str] = set()
        # rotate_token_after: authenticated requests left before the token is revoked.
        self._token_uses_left = self.config.rotate_token_after
        self._token_revoked = False
        self._rng.seed(self.config.seed)
        self._sync_script(force=True)

    def _sync_script(self, force: bool = False) -> None:
        """(Re)arm the scripted fault counters when the list object was replaced."""
        if force or self.config.scripted_faults is not self._script_src:
            self._script_src = self.config.scripted_faults
            self._script_left = [int(e.get("times", 1)) for e in self._script_src]
            self._script_skip = [int(e.get("after", 0)) for e in self._script_src]

    def configure(self, **changes: Any) -> None:
        """Apply config changes atomically. Replacing ``scripted_faults`` re-arms them;
        changing ``seed`` re-seeds the fault RNG (the dataset is not rebuilt); setting
        ``total_after_first`` starts every search afresh; setting ``rotate_token_after``
        arms the rotation, and setting ``token`` alone (the rotated-in token) ends it."""
        clean = coerce_config(changes)
        with self._lock:
            if "token" in clean and "rotate_token_after" not in clean:
                clean["rotate_token_after"] = None
            for key, value in clean.items():
                setattr(self.config, key, value)
            if "scripted_faults" in clean:
                self._sync_script(force=True)
            if "seed" in clean:
                self._rng.seed(clean["seed"])
            if "total_after_first" in clean:
                self._first_page_served.clear()
            if "rotate_token_after" in clean:
                self._token_uses_left = clean["rotate_token_after"]
                self._token_revoked = False

    def reset(self) -> None:
        """Clear statistics, drift and scripted fault counters; re-arm the standing fault
        modes (first pages served, token rotation); keep config and dataset."""
        with self._lock:
            self._reset_state()

    def config_dict(self) -> dict[str, Any]:
        with self._lock:
            return dataclasses.asdict(self.config)

    def stats(self, tail: int | None = None) -> dict[str, Any]:
        """Snapshot of what was served and billed (``tail``: only the last N log rows).

        Keys: ``requests`` (log of the last 100,000 API requests: t, method, path,
        purchase, start, limit, status, result_count, fault, request_id, client_request_id,
        billed);
        ``purchase_requests`` (Purchase=1 requests the server processed with a 200,
        including slow and malformed deliveries); ``count_requests`` (the same for
        Purchase=0); ``billed_records`` and ``billed_radar_ids`` (every billed row, also
        for slow/malformed answers the client never saw); ``billed_cost`` (what those
        rows cost at ``price_per_record``) and ``price_per_record``; ``faults`` (kind ->
        count); ``drift`` (current result-set offset from ``total_drift``);
        ``token_revoked`` (``rotate_token_after`` has fired and no new token was set).
        """
        with self._lock:
            log = list(self._log)
            if tail is not None:
                log = log[-tail:] if tail > 0 else []
            return {
                "requests": [dict(e) for e in log],
                "purchase_requests": self._purchase_requests,
                "count_requests": self._count_requests,
                "billed_records": self._billed_records,
                "billed_cost": float(self._billed_cost),
                "price_per_record": self.config.price_per_record,
                "billed_radar_ids": dict(self._billed_ids),
                "faults": dict(self._faults),
                "drift": self._drift_steps * self.config.total_drift,
                "token_revoked": self._token_revoked,
            }

    # -- WSGI --------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        if request.path.startswith("/_sim/"):
            response = self._control(request)
        else:
            response = self._api(request)
        return response(environ, start_response)

    @staticmethod
    def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        body = json.dumps(payload, separators=(",", ":"))
        return Response(body, status=status, headers=headers, content_type="application/json")

    def _control(self, request: Request) -> Response:
        path, method = request.path, request.method
        try:
            if path == "/_sim/stats" and method == "GET":
                tail = request.args.get("tail", type=int)
                return self._json(self.stats(tail))
            if path == "/_sim/config" and method == "GET":
                return self._json(self.config_dict())
            if path == "/_sim/config" and method == "POST":
                body = json.loads(request.get_data(as_text=True) or "{}")
                if not isinstance(body, dict):
                    raise ValueError("config body must be a JSON object")
                self.configure(**body)
                return self._json(self.config_dict())
            if path == "/_sim/reset" and method == "POST":
                self.reset()
                return self._json({"ok": True})
            if path == "/_sim/health" and method == "GET":
                return self._json({"ok": True, "records": len(self.dataset)})
        except ValueError as exc:  # includes JSONDecodeError
            return self._json({"error": str(exc)}, 400)
        known = {"/_sim/stats", "/_sim/config", "/_sim/reset", "/_sim/health"}
        status = 405 if path in known else 404
        return self._json({"error": "Method Not Allowed" if status == 405 else "Not Found"}, status)

    # -- the API -----------------------------------------------------------------------

    def _api(self, request: Request) -> Response:
        with self._lock:
            trickle = self.config.trickle_seconds
        response = self._api_response(request)
        if trickle > 0 and request.path.startswith("/v1/"):
            trickle_body(response, trickle)
        return response

    def _api_response(self, request: Request) -> Response:
        started = time.time()
        rid = "-".join(secrets.token_hex(2)[:3] for _ in range(3))
        with self._lock:
            self._sync_script()
            cfg = copy.deepcopy(self.config)
            drift = self._drift_steps * cfg.total_drift

        purchase = self._peek_purchase(request.args.get("Purchase"))
        start_arg = request.args.get("Start")
        start = self._peek_int(start_arg)
        limit = self._peek_int(request.args.get("Limit"))
        entry: dict[str, Any] = {
            "t": started,
            "method": request.method,
            "path": request.path,
            "purchase": purchase,
            "start": start,
            "limit": limit,
            "status": 0,
            "result_count": 0,
            "fault": None,
            "request_id": rid,
            # The caller's name for the request, if it sent one (radar_app does for each
            # purchase): lets a test match its ledger rows to what was served and billed.
            "client_request_id": request.headers.get("X-Client-Request-Id"),
        }
        headers = {"X-Radar-Request-Id": rid}
        if not request.path.startswith("/v1/"):
            # Outside the API namespace: no auth, no faults, just a JSON 404.
            response = self._error(
                _ApiError(
                    404,
                    f"Not Found: {request.path}",
                    "The requested resource does not exist.",
                    "Not found",
                ),
                rid,
            )
            return self._finish(entry, response, None, [], None)
        if cfg.latency_ms > 0:
            time.sleep(cfg.latency_ms / 1000)

        # Faults are per API key, so a request without a valid key never gets one.
        authorized = self._authorized(request, cfg) and self._token_still_valid()
        fault = None
        if authorized:
            fault = self._pick_fault(
                cfg, purchase, start if start_arg is not None else 0, request.method == "POST"
            )
        if fault in _PRE_FAULTS:
            response = self._fault_response(fault, rid, cfg)
            return self._finish(entry, response, fault, [], None)

        billed: list[str] = []
        served_kind: str | None = None
        try:
            if not authorized:
                raise _ApiError(
                    401,
                    "Unauthorized: missing or invalid API token",
                    "Your API key is missing or invalid.",
                    "Not authorized",
                )
            payload, billed, served_kind = self._route(request, cfg, drift)
            entry["result_count"] = payload["resultCount"]
            response = self._json(payload, 200, headers)
        except _ApiError as exc:
            response = self._error(exc, rid)

        if fault == "slow":
            time.sleep(cfg.slow_seconds)
        elif fault == "malformed":
            text = response.get_data()
            response.set_data(text[: max(1, len(text) // 2)])
        return self._finish(entry, response, fault, billed, served_kind)

    def _finish(
        self,
        entry: dict[str, Any],
        response: Response,
        fault: str | None,
        billed: list[str],
        served_kind: str | None,
    ) -> Response:
        entry["status"] = response.status_code
        entry["fault"] = fault
        entry["billed"] = len(billed)
        with self._lock:
            self._log.append(entry)
            if fault:
                self._faults[fault] = self._faults.get(fault, 0) + 1
            if served_kind == "purchase_search":
                self._drift_steps += 1
            if served_kind in ("purchase_search", "purchase_get"):
                self._purchase_requests += 1
            elif served_kind in ("count_search", "count_get"):
                self._count_requests += 1
            self._billed_records += len(billed)
            self._billed_cost += _price(self.config.price_per_record) * len(billed)
            ids = self._billed_ids
            for radar_id in billed:
                ids[radar_id] = ids.get(radar_id, 0) + 1
        return response

    @staticmethod
    def _peek_purchase(value: str | None) -> int | None:
        if value is None:
            return None
        value = value.strip().lower()
        return 1 if value in ("1", "true") else 0 if value in ("0", "false") else None

    @staticmethod
    def _peek_int(value: str | None) -> int | None:
        try:
            return int(value) if value is not None else None
        except ValueError:
            return None

    def _token_still_valid(self) -> bool:
        """Count one authenticated request against ``rotate_token_after``; False once the
        token has been rotated out (until ``configure(token=...)``)."""
        with self._lock:
            if self._token_revoked:
                return False
            if self._token_uses_left is None:
                return True
            if self._token_uses_left == 0:
                self._token_revoked = True
                return False
            self._token_uses_left -= 1
            return True

    @staticmethod
    def _authorized(request: Request, cfg: SimulatorConfig) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return False
        return cfg.token is None or secrets.compare_digest(token, cfg.token)

    def _pick_fault(
        self, cfg: SimulatorConfig, purchase: int | None, start: int, is_post: bool
    ) -> str | None:
        with self._lock:
            if self.config.scripted_faults is self._script_src:
                for i, rule in enumerate(self._script_src):
                    if self._script_left[i] == 0:
                        continue
                    if "purchase" in rule and rule["purchase"] != purchase:
                        continue
                    if "start" in rule and (not is_post or rule["start"] != start):
                        continue
                    if self._script_skip[i] > 0:
                        self._script_skip[i] -= 1
                        continue
                    if self._script_left[i] > 0:
                        self._script_left[i] -= 1
                    return str(rule["kind"])
            if cfg.fault_rate > 0 and cfg.fault_kinds:
                if self._rng.random() < cfg.fault_rate:
                    return self._rng.choice(cfg.fault_kinds)
        return None

    def _fault_response(self, fault: str, rid: str, cfg: SimulatorConfig) -> Response:
        headers = {"X-Radar-Request-Id": rid}
        if fault == "429":
            headers["Retry-After"] = f"{cfg.retry_after:g}"
            return self._error(
                _ApiError(
                    429, "Too Many Requests", "You are sending requests too quickly.", "Slow down"
                ),
                rid,
                headers,
            )
        if fault == "502":
            html = (
                "<html><head><title>502 Bad Gateway</title></head><body>"
                "<center><h1>502 Bad Gateway</h1></center></body></html>"
            )
            return Response(html, status=502, headers=headers, content_type="text/html")
        status = int(fault)
        text = "Internal Server Error" if status == 500 else "Service Unavailable"
        return self._error(
            _ApiError(status, text, "Something went wrong. Please try again.", "Server error"),
            rid,
            headers,
        )

    def _error(self, exc: _ApiError, rid: str, headers: dict[str, str] | None = None) -> Response:
        body = {
            "error": exc.error,
            "eventid": rid,
            "message": exc.message,
            "messageTitle": exc.title,
        }
        merged = {"X-Radar-Request-Id": rid, **(headers or {})}
        if exc.status == 405:
            merged["Allow"] = "GET" if exc.error.endswith("GET") else "POST"
        return self._json(body, exc.status, merged)

    # -- request handling --------------------------------------------------------------

    def _route(
        self, request: Request, cfg: SimulatorConfig, drift: int
    ) -> tuple[dict[str, Any], list[str], str]:
        path = request.path.rstrip("/")
        if path == "/v1/properties":
            if request.method != "POST":
                raise _ApiError(
                    405,
                    "Method Not Allowed: use POST",
                    "This endpoint only accepts POST.",
                    "Method not allowed",
                )
            return self._search(request, cfg, drift)
        parts = path.split("/")
        if len(parts) == 4 and parts[:3] == ["", "v1", "properties"]:
            if request.method != "GET":
                raise _ApiError(
                    405,
                    "Method Not Allowed: use GET",
                    "This endpoint only accepts GET.",
                    "Method not allowed",
                )
            return self._get_one(request, parts[3], cfg)
        raise _ApiError(
            404, f"Not Found: {request.path}", "The requested resource does not exist.", "Not found"
        )

    def _parse_purchase(self, request: Request) -> int:
        raw = request.args.get("Purchase")
        if raw is None:
            raise _bad_request("Missing required param: Purchase")
        value = self._peek_purchase(raw)
        if value is None:
            raise _bad_request(f"Invalid value for param Purchase: {raw}")
        return value

    @staticmethod
    def _parse_fields(raw: str | None) -> list[str]:
        if raw is None:
            return list(FIELDSETS["default"])
        wanted: list[str] = []
        suppressed: set[str] = set()
        uses_all = False
        for token in (t.strip() for t in raw.split(",")):
            if not token:
                continue
            negate = token.startswith("-")
            name = token[1:] if negate else token
            if name in FIELDSETS:
                names = list(FIELDSETS[name])
                uses_all = uses_all or (name == "All" and not negate)
            elif name in ALL_FIELD_SET:
                names = [name]
            else:
                raise _bad_request(
                    f"Unknown field: {name}", f"The field {name} does not exist.", "Invalid fields"
                )
            if negate:
                suppressed.update(names)
            else:
                wanted.extend(names)
        fields = [f for f in dict.fromkeys(wanted) if f not in suppressed]
        if len(fields) > MAX_FIELDS and not uses_all:
            raise _bad_request(
                f"Too many fields requested: {len(fields)} (max {MAX_FIELDS})",
                "Combined fields and fieldsets must be 50 fields or fewer.",
                "Invalid fields",
            )
        return fields

    def _search(
        self, request: Request, cfg: SimulatorConfig, drift: int
    ) -> tuple[dict[str, Any], list[str], str]:
        purchase = self._parse_purchase(request)
        limit_raw = request.args.get("Limit")
        start_raw = request.args.get("Start")
        limit = self._peek_int(limit_raw) if limit_raw is not None else 100
        if limit is None or not 1 <= limit <= cfg.max_limit:
            raise _bad_request(
                f"Invalid value for param Limit: {limit_raw} (must be 1-{cfg.max_limit})"
            )
        start = self._peek_int(start_raw) if start_raw is not None else 0
        if start is None or start < 0:
            raise _bad_request(f"Invalid value for param Start: {start_raw}")
        if cfg.limit_cap is not None:
            limit = min(limit, cfg.limit_cap)  # silently, as the fault's name says
        fields = self._parse_fields(request.args.get("Fields"))

        try:
            body = json.loads(request.get_data(as_text=True))
        except ValueError:
            raise _bad_request(
                "Invalid JSON body", "The request body must be a JSON object."
            ) from None
        if not isinstance(body, dict):
            raise _bad_request("Invalid JSON body", "The request body must be a JSON object.")
        for key in body:
            if key != "Criteria":
                raise _bad_request(f"Unexpected payload field: {key}")
        if "Criteria" not in body:
            raise _bad_request("Missing required param: Criteria")
        try:
            matches = self.dataset.match(body["Criteria"])
        except CriteriaError as exc:
            raise _bad_request(exc.error, exc.message, exc.title) from None

        size_after_first = self._size_after_first(cfg, body["Criteria"], start)
        rows = self._page(matches, drift, start, limit, size_after_first)
        total = len(matches) + (drift if matches else 0)
        total = max(total, 0)
        if size_after_first is not None and matches:
            total = size_after_first
        ds = self.dataset
        if purchase:
            results = []
            for idx, radar_id in rows:
                full = ds.record(idx, radar_id)
                results.append({f: full[f] for f in fields})
            spoil_records(results, cfg)
            billed = [rid for _idx, rid in rows]
            kind = "purchase_search"
        else:
            results = [{"RadarID": rid} for _idx, rid in rows]
            billed, kind = [], "count_search"
        payload = {
            "results": results,
            "resultCount": len(results),
            "totalResultCount": total,
            "totalCost": _cost_text(len(billed), cfg.price_per_record),
        }
        return payload, billed, kind

    def _size_after_first(self, cfg: SimulatorConfig, criteria: Any, start: int) -> int | None:
        """``total_after_first`` for this request: None while the search's first page
        (Start=0) has not been served yet; this request, if it is that page, marks it."""
        if cfg.total_after_first is None:
            return None
        key = json.dumps(criteria, sort_keys=True, separators=(",", ":"))
        with self._lock:
            if key in self._first_page_served:
                return cfg.total_after_first
            if start == 0:
                self._first_page_served.add(key)
        return None

    def _page(
        self, matches: array, drift: int, start: int, limit: int, size: int | None = None
    ) -> list[tuple[int, str]]:
        """The rows [start, start+limit) of the (possibly drifted) result set.

        Positive drift prepends ``drift`` phantom records (newest first) cloned from the
        matches with fresh RadarIDs; negative drift drops records from the front. ``size``
        (``total_after_first``) cuts the set to that many rows, or grows it with clones.
        """
        ds = self.dataset
        n = len(matches)
        if n == 0:
            return []
        if size is not None:
            rows = self._page(matches, drift, start, min(limit, max(size - start, 0)))
            have = max(n + drift, 0)
            for pos in range(max(start, have), min(start + limit, size)):
                # Grown records: clones of the matches under RadarIDs no other record uses.
                rows.append((matches[pos % n], ds.radar_id(ds.size + _GROWN_ID_OFFSET + pos)))
            return rows
        if drift < 0:
            shift = min(-drift, n)
            sel = range(start + shift, min(start + shift + limit, n))
            return [(matches[i], ds.radar_id(matches[i])) for i in sel]
        rows: list[tuple[int, str]] = []
        for pos in range(start, min(start + limit, n + drift)):
            if pos < drift:
                j = drift - 1 - pos  # phantom number; newest first
                rows.append((matches[j % n], ds.radar_id(ds.size + j)))
            else:
                idx = matches[pos - drift]
                rows.append((idx, ds.radar_id(idx)))
        return rows

    def _get_one(
        self, request: Request, radar_id: str, cfg: SimulatorConfig
    ) -> tuple[dict[str, Any], list[str], str]:
        purchase = self._parse_purchase(request)
        fields = self._parse_fields(request.args.get("Fields"))
        idx = self.dataset.index_of(radar_id.upper())
        if idx is None or idx >= self.dataset.size:
            raise _ApiError(
                404,
                f"Property not found: {radar_id}",
                "That property could not be found.",
                "Not found",
            )
        canonical = self.dataset.radar_id(idx)
        if purchase:
            full = self.dataset.record(idx)
            results, billed, kind = [{f: full[f] for f in fields}], [canonical], "purchase_get"
            spoil_records(results, cfg)
        else:
            results, billed, kind = [{"RadarID": canonical}], [], "count_get"
        payload = {
            "results": results,
            "resultCount": 1,
            "totalResultCount": 1,
            "totalCost": _cost_text(len(billed), cfg.price_per_record),
        }
        return payload, billed, kind
