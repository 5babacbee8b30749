"""Performance benchmark (issues 6, 11): `python -m bench [--quick] [--database-url URL]`.

Starts its own Redis, PropertyRadar simulator (a subprocess), real `worker.py` processes
and a gunicorn web server, all on 127.0.0.1, then runs these scenarios per database:

  a. import pipeline with zero simulated latency (records/s stored)
  c. worker peak RSS for 1,000,000 records vs 100,000 (skipped with --quick)
  d. CSV export of the biggest job, streamed from gunicorn (rows/s, web peak RSS)
  e. Jobs page / job page / progress fragment, and (issue 13) Jobs searches, the status
     counts fragment and the dashboard: p50/p95/p99 with 10,000 jobs in the table, 4 jobs
     running and 20 concurrent pollers
  f. 4 jobs on 1 worker vs 4 workers (100 ms latency: the API, not the CPU, is the limit)
  k. the leads browser (issue 12) with 1,000,000 of the user's leads (row c's, topped up
     from the simulator's dataset; 20,000 with --quick): p50/p95/p99 of 15 filter/order
     shapes, each as the page, the API and the API's next page, two clients closed loop

and, in a second table, radar_app beside the script our users write without it
(bench/script.py), both in the same run against the same simulator, alternating, each
side's best of 2 runs, with the ratio radar_app / script (wall: from the API POST that
creates the job until a GET answers COMPLETED):

  g. 20,000 records at 0 ms latency: end-to-end records/s (default settings, then
     PROPERTYRADAR_CONCURRENCY=4)
  h. the same at 100 ms per request: wall time
  i. re-running a search whose leads are all stored (100 ms): wall, purchase requests
  j. radar_app's store path vs a raw DB-API executemany of the same rows (bench/storepath.py)

--quick shrinks every size (g–j: 10,000 records); --only runs some scenarios. The "default" rows use
PROPERTYRADAR_CONCURRENCY from the environment when it is set, else the app's default.
A target not met prints met=NO; only a scenario that crashes makes the exit status 1.

SQLite by default; --database-url (repeatable) adds others, e.g.
postgresql+psycopg://radar:radar@127.0.0.1:5432/radar_bench (its tables are dropped and
re-created). Writes both tables as JSON with --json. Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

import psutil

from bench.scenarios import FULL, QUICK, Bench, Comparison, Row
from bench.stack import Stack

COLUMNS = [
    ("scenario", "scenario"),
    ("database", "db"),
    ("records", "records"),
    ("wall_s", "wall s"),
    ("records_per_s", "rec/s"),
    ("page_requests", "pages"),
    ("api_bound_s", "API bound s"),
    ("overhead", "overhead"),
    ("worker_peak_rss_mb", "worker RSS MB"),
    ("web_peak_rss_mb", "web RSS MB"),
    ("p50_ms", "p50 ms"),
    ("p95_ms", "p95 ms"),
    ("p99_ms", "p99 ms"),
    ("target", "target"),
    ("met", "met"),
    ("notes", "notes"),
]
COMPARISON_COLUMNS = [
    ("scenario", "radar_app vs the script (j: vs raw executemany)"),
    ("database", "db"),
    ("records", "records"),
    ("measure", "measure"),
    ("radar_app", "radar_app"),
    ("peer", "peer"),
    ("ratio", "ratio"),
    ("radar_app_requests", "radar_app requests"),
    ("peer_requests", "peer requests"),
    ("target", "target"),
    ("met", "met"),
    ("notes", "notes"),
]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{cpu}; {psutil.cpu_count()} cores; {psutil.virtual_memory().total / 2**30:.0f} GB RAM; "
        f"{platform.system()} {platform.release()}; {platform.python_implementation()} "
        f"{platform.python_version()}; load average at the end {load}"
    )


def cell(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float) and value != value:  # NaN: not measured
        return "–"
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:,.0f}"
    return str(value)


def table(
    rows: list[Row] | list[Comparison], markdown: bool, columns: list[tuple[str, str]] = COLUMNS
) -> str:
    data = [[cell(getattr(r, key)) for key, _ in columns] for r in rows]
    heads = [head for _, head in columns]
    if markdown:
        lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
        lines += ["| " + " | ".join(r) + " |" for r in data]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in data)) for i, h in enumerate(heads)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in data]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="Small sizes for CI (< 3 minutes).")
    parser.add_argument("--database-url", action="append", help="Repeatable; default SQLite.")
    parser.add_argument("--no-sqlite", action="store_true", help="Only the --database-url ones.")
    parser.add_argument("--json", type=Path, help="Also write the rows as JSON here.")
    parser.add_argument("--markdown", action="store_true", help="Print the table as markdown.")
    parser.add_argument("--keep", action="store_true", help="Keep the logs directory.")
    parser.add_argument(
        "--only",
        help="Comma-separated scenario letters to run (g runs g, h and i), e.g. --only g,j.",
    )
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    only = None if args.only is None else {x.strip() for x in args.only.split(",")}
    if only is not None and not only <= set("acdefgjk"):
        parser.error(f"--only: unknown scenarios {sorted(only - set('acdefgjk'))}")

    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="radar-bench-"))
    urls = [] if args.no_sqlite else [f"sqlite:///{workdir}/bench.db"]
    urls += args.database_url or []
    rows: list[Row] = []
    comparisons: list[Comparison] = []
    print(f"bench: logs in {workdir}; simulator scale {sizes.scale}", file=sys.stderr)
    stack = Stack(workdir, sizes.scale)
    failed = False
    try:
        for url in urls:
            bench = None
            try:
                bench = Bench(stack, url, sizes, only)
                bench.run()
            except Exception as exc:  # noqa: BLE001 - report, then try the next database
                failed = True
                print(f"bench: {url.split('@')[-1]} failed: {exc!r}", file=sys.stderr)
                traceback.print_exc()
            if bench is not None:  # what was measured before a failure is still printed
                rows += bench.rows
                comparisons += bench.comparisons
    finally:
        stack.close()
    elapsed = time.monotonic() - started

    print(f"machine: {machine()}")
    print(
        f"mode: {'quick' if args.quick else 'full'}"
        + (f" (only {','.join(sorted(only))})" if only else "")
        + f"; total {elapsed:.0f} s; shared machine, noisy"
    )
    if rows:
        print(table(rows, args.markdown))
    if comparisons:
        print()
        print(table(comparisons, args.markdown, COMPARISON_COLUMNS))
    if args.json:
        payload = {
            "machine": machine(),
            "mode": "quick" if args.quick else "full",
            "seconds": round(elapsed, 1),
            "rows": [dataclasses.asdict(r) for r in rows],
            "comparisons": [dataclasses.asdict(c) for c in comparisons],
        }
        args.json.write_text(json.dumps(payload, indent=2))
    if not args.keep and not failed:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
