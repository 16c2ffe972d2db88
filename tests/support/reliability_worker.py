"""A child process for the reliability tests: `ftledger ARGS` with a start barrier or a fault.

    python tests/support/reliability_worker.py [--barrier=PATH] [--mode=MODE] -- ARGS...

--barrier: import everything, then wait for PATH to exist, so two children start their
command at the same moment (a real race, not two process start-ups in a row).
--mode=nolock: poll without the PostgreSQL advisory lock, so only the database's unique
keys stand between two pollers. --mode=kill-on-deliver: SIGKILL this process at the
moment an alert would be sent (after its decision was recorded and its delivery claimed).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def main() -> None:
    split = sys.argv.index("--")
    options = dict(a[2:].split("=", 1) for a in sys.argv[1:split])
    args = sys.argv[split + 1 :]

    import ledger.alerts
    import ledger.service
    import ledger.sync
    from ledger.cli.app import main as ftledger

    mode = options.get("mode", "")
    if mode == "nolock":

        @contextmanager
        def no_lock(engine: Any) -> Iterator[bool]:
            yield True

        ledger.service.poll_lock = no_lock  # type: ignore[assignment]
    elif mode == "kill-on-deliver":

        def crash(*_args: Any, **_kwargs: Any) -> None:
            os.kill(os.getpid(), signal.SIGKILL)

        ledger.alerts.deliver = crash  # type: ignore[assignment]
    elif mode:
        raise SystemExit(f"unknown mode {mode!r}")

    barrier = options.get("barrier")
    if barrier:
        deadline = time.monotonic() + 60
        while not Path(barrier).exists():
            if time.monotonic() > deadline:
                raise SystemExit("barrier never opened")
            time.sleep(0.005)
    ftledger(args)


if __name__ == "__main__":
    main()
