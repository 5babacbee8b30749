"""Record- and transport-level fault injection applied to responses already decided:
spoiled records and trickled bodies."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

from werkzeug.wrappers import Response

from simulator.config import SimulatorConfig

# trickle_seconds: the most time between two pieces of a trickled body.
_TRICKLE_GAP = 0.1


def spoil_records(results: list[dict[str, Any]], cfg: SimulatorConfig) -> None:
    """Apply the record-level faults (missing RadarID, oversize field) to purchased rows."""
    every = cfg.missing_radar_id_every
    name, length = cfg.oversize_field, cfg.oversize_length
    for number, record in enumerate(results, 1):
        if every and number % every == 0:
            record.pop("RadarID", None)
        if name is not None and name in record:
            base = "" if record[name] is None else str(record[name])
            record[name] = (base + "x" * length)[:length]


def trickle_body(response: Response, seconds: float) -> None:
    """Send ``response``'s body in pieces spread evenly over ``seconds``: the headers go
    at once, then a piece at most every ``_TRICKLE_GAP`` s (a per-read timeout never
    fires; only a deadline on the whole request does)."""
    body = response.get_data()
    count = max(1, min(len(body), math.ceil(seconds / _TRICKLE_GAP)))
    size = math.ceil(len(body) / count) if body else 1
    pieces = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
    gap = seconds / len(pieces)

    def stream() -> Iterator[bytes]:
        yield b""  # Werkzeug sends the status line and headers on the first write
        for piece in pieces:
            time.sleep(gap)
            yield piece

    response.response = stream()
    response.headers["Content-Length"] = str(len(body))
