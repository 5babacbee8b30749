"""The simulator's knobs (``SimulatorConfig``), mostly fault modes, and the validation of
changes made through ``configure`` or ``POST /_sim/config``."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from radar_app.config import Config
from simulator.schema import ALL_FIELD_SET

FAULT_KINDS: tuple[str, ...] = ("429", "500", "502", "503", "slow", "malformed")


def _default_fault_kinds() -> list[str]:
    return list(FAULT_KINDS)


@dataclass
class SimulatorConfig:
    """Knobs of the simulator. All are safe to change while it serves (``configure``)."""

    token: str | None = "demo-token"  # None: any non-empty bearer token is accepted
    latency_ms: float = 0.0
    max_limit: int = 1000
    fault_rate: float = 0.0
    fault_kinds: list[str] = field(default_factory=_default_fault_kinds)
    retry_after: float = 1.0
    slow_seconds: float = 5.0
    scripted_faults: list[dict] = field(default_factory=list)
    total_drift: int = 0
    seed: int = 42
    # One price for the demo: the app estimates with Config.PRICE_PER_EXPORT too.
    price_per_record: float = Config.PRICE_PER_EXPORT
    # Standing fault modes (module docstring); None / 0 / 0.0 = off.
    total_after_first: int | None = None
    limit_cap: int | None = None
    missing_radar_id_every: int = 0
    oversize_field: str | None = None
    oversize_length: int = 1000
    trickle_seconds: float = 0.0
    rotate_token_after: int | None = None


_CONFIG_FIELDS = {f.name for f in dataclasses.fields(SimulatorConfig)}


def _validate_script(entry: Any) -> dict:
    if not isinstance(entry, dict):
        raise ValueError("each scripted fault must be an object")
    unknown = set(entry) - {"kind", "purchase", "start", "times", "after"}
    if unknown:
        raise ValueError(f"unknown scripted fault keys: {sorted(unknown)}")
    if entry.get("kind") not in FAULT_KINDS:
        raise ValueError(f"scripted fault kind must be one of {FAULT_KINDS}")
    out: dict[str, Any] = {"kind": entry["kind"], "times": int(entry.get("times", 1))}
    if out["times"] < -1:
        raise ValueError("times must be -1 (forever) or >= 0")
    if entry.get("purchase") is not None:
        if entry["purchase"] not in (0, 1, True, False):
            raise ValueError("purchase must be 0 or 1")
        out["purchase"] = int(entry["purchase"])
    if entry.get("start") is not None:
        out["start"] = int(entry["start"])
    # "after": let this many matching requests through first (e.g. fail the 7th purchase).
    out["after"] = int(entry.get("after", 0))
    if out["after"] < 0:
        raise ValueError("after must be >= 0")
    return out


def coerce_config(changes: dict[str, Any]) -> dict[str, Any]:
    """Validate and type-coerce config changes; raises ValueError on anything bad."""
    unknown = set(changes) - _CONFIG_FIELDS
    if unknown:
        raise ValueError(f"unknown config fields: {sorted(unknown)}")
    out: dict[str, Any] = {}
    for key, value in changes.items():
        try:
            if key == "token":
                out[key] = None if value in (None, "") else str(value)
            elif key in (
                "latency_ms",
                "retry_after",
                "slow_seconds",
                "price_per_record",
                "trickle_seconds",
            ):
                if isinstance(value, bool):
                    raise ValueError
                out[key] = float(value)
                if not 0 <= out[key] < math.inf:
                    raise ValueError
            elif key in ("total_after_first", "limit_cap", "rotate_token_after"):
                if value is None:
                    out[key] = None
                    continue
                if isinstance(value, bool) or int(value) != value:
                    raise ValueError
                out[key] = int(value)
                if out[key] < (1 if key == "limit_cap" else 0):
                    raise ValueError
            elif key in ("missing_radar_id_every", "oversize_length"):
                if isinstance(value, bool) or int(value) != value:
                    raise ValueError
                out[key] = int(value)
                if out[key] < (1 if key == "oversize_length" else 0):
                    raise ValueError
            elif key == "oversize_field":
                if value in (None, ""):
                    out[key] = None
                elif value in ALL_FIELD_SET:
                    out[key] = value
                else:
                    raise ValueError
            elif key == "fault_rate":
                out[key] = float(value)
                if not 0.0 <= out[key] <= 1.0:
                    raise ValueError
            elif key in ("max_limit", "total_drift", "seed"):
                if isinstance(value, bool):
                    raise ValueError
                out[key] = int(value)
                if key == "max_limit" and out[key] < 1:
                    raise ValueError
            elif key == "fault_kinds":
                kinds = [str(k) for k in value]
                if not all(k in FAULT_KINDS for k in kinds):
                    raise ValueError
                out[key] = kinds
            elif key == "scripted_faults":
                out[key] = [_validate_script(e) for e in value]
        except (TypeError, ValueError) as exc:
            if key == "scripted_faults" and str(exc):
                raise ValueError(str(exc)) from None
            raise ValueError(f"invalid value for {key}: {value!r}") from None
    return out
