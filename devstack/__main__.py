"""``python -m devstack`` (``make run``): start the stack, print how to reach it, stop it
on Ctrl-C or SIGTERM."""

from __future__ import annotations

import os
import signal
from typing import Any

from devstack.stack import DevStack, StartupError, say
from radar_app.config import PROJECT_ROOT, ConfigError


def main() -> int:
    from dotenv import load_dotenv

    load_dotenv(PROJECT_ROOT / ".env")
    try:
        stack = DevStack(dict(os.environ))
    except (StartupError, ConfigError) as exc:
        say(str(exc))
        return 1
    interrupts = 0

    def on_stop_signal(signum: int, frame: Any) -> None:
        # The first Ctrl-C (or SIGTERM) ends the wait; later ones only hurry the stop, so
        # none can interrupt the stopping sequence itself.
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_stop_signal)
    signal.signal(signal.SIGTERM, on_stop_signal)
    code = 0
    try:
        stack.start()
        print(stack.banner(), flush=True)
        code = stack.wait()
    except KeyboardInterrupt:
        code = 0
    except (StartupError, ConfigError, TimeoutError) as exc:
        say(str(exc))
        code = 1
    finally:
        interrupts = max(interrupts, 1)
        stack.stop(hurry=lambda: interrupts > 1)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
