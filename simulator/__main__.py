"""``python -m simulator``: serve the simulated PropertyRadar API on a port."""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping

from radar_app.config import Config, settings_from_env
from simulator.config import SimulatorConfig
from simulator.server import serve


def parse_args(
    argv: list[str] | None = None, environ: Mapping[str, str] | None = None
) -> tuple[argparse.Namespace, SimulatorConfig]:
    """The command line as (arguments, config). The price defaults to the app's own
    ``PRICE_PER_EXPORT`` (the environment's, else ``Config``'s), the price the app
    estimates with, so a demo's bill matches its preview."""
    app_settings = settings_from_env(environ)
    price = app_settings.get("PRICE_PER_EXPORT", Config.PRICE_PER_EXPORT)
    parser = argparse.ArgumentParser(
        prog="python -m simulator", description="Offline PropertyRadar API simulator"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument(
        "--token",
        default="demo-token",
        help="required bearer token; '' accepts any non-empty token",
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="dataset size multiplier (1.0 = 121,400 records)"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--price",
        type=float,
        default=price,
        help="price billed per record (default: the app's PRICE_PER_EXPORT, %(default)s)",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.price < math.inf:
        parser.error("--price must be a number >= 0")
    config = SimulatorConfig(
        token=args.token or None,
        latency_ms=args.latency_ms,
        fault_rate=args.fault_rate,
        seed=args.seed,
        price_per_record=args.price,
    )
    return args, config


def main(argv: list[str] | None = None) -> None:
    args, config = parse_args(argv)
    serve(args.host, args.port, config, scale=args.scale)


if __name__ == "__main__":
    main()
