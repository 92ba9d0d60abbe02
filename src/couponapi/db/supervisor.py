"""Keeps the private PostgreSQL that `serve` started running: when it dies, start it again.

`serve` runs this as its own small process (`python -m couponapi.db.supervisor DATA_DIR`),
not as a thread: the HTTP server forks workers (also later, to replace a killed one), and a
fork while a thread holds a lock can deadlock the child. The process checks the postmaster
twice a second; when it is gone (an OOM kill, a crash), it logs, counts
a restart (in a small state file that /metrics reads, since the workers cannot see this
process's memory), and starts the server again on the same port with the
same data directory: PostgreSQL replays its write-ahead log (crash recovery), so every
committed claim is there. Until then the workers' pools fail fast and /readyz answers 503;
their next connection after the restart simply succeeds.

A start that fails (the dead postmaster's children still hold its shared memory, which
PostgreSQL refuses to share; the port not yet free) is tried again after 0.5 s, then 1, 2, 4,
8 s at most. The process exits when its parent, `serve`, is gone, so it never outlives it.
"""

from __future__ import annotations

import json
import logging
import logging.config
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from couponapi.db.embedded import EmbeddedPostgres, EmbeddedPostgresError
from couponapi.logs import log_config

log = logging.getLogger("couponapi.supervisor")
CHECK_SECONDS = 0.5
FIRST_BACKOFF, MAX_BACKOFF = 0.5, 8.0


def backoff_delays(first: float = FIRST_BACKOFF, most: float = MAX_BACKOFF) -> list[float]:
    """The waits between failed restart attempts: doubling from `first`, capped at `most`."""
    delays = [first]
    while delays[-1] < most:
        delays.append(min(delays[-1] * 2, most))
    return delays


class Supervisor:
    """Watches one data directory's postmaster and restarts it after a crash."""

    def __init__(self, server: EmbeddedPostgres, state_file: Path) -> None:
        self.server = server
        self.state_file = state_file
        self.restarts = 0
        self.stopping = False
        self._write_state("up")

    def _write_state(self, postgres: str) -> None:
        # Written whole and renamed: a worker reading it never sees half a file.
        partial = self.state_file.with_suffix(".partial")
        partial.write_text(json.dumps({"postgres": postgres, "restarts": self.restarts}))
        partial.replace(self.state_file)

    def check_once(self) -> bool:
        """One look; when the postmaster is dead, restart it (with back-off). True if it ran."""
        if self.server.postmaster_alive():
            return True
        self._write_state("restarting")
        died_at = time.monotonic()
        log.error(
            "private PostgreSQL is not running (postmaster gone); restarting it",
            extra={"fields": {"event": "postgres_down", "data_dir": str(self.server.data_dir)}},
        )
        delays = backoff_delays()
        attempt = 0
        while not self.stopping:
            try:
                self.server.clear_stale_pid_file()
                self.server.start(same_port=True)
            except EmbeddedPostgresError as error:
                wait = delays[min(attempt, len(delays) - 1)]
                attempt += 1
                log.warning(
                    f"restart attempt {attempt} failed; next in {wait:g} s",
                    extra={"fields": {"event": "postgres_restart_failed", "error": str(error)}},
                )
                time.sleep(wait)
                continue
            self.restarts += 1
            self._write_state("up")
            seconds = round(time.monotonic() - died_at, 2)
            log.warning(
                f"private PostgreSQL restarted after {seconds} s (crash recovery done)",
                extra={"fields": {"event": "postgres_restarted", "seconds": seconds}},
            )
            return True
        return False

    def run_forever(self, parent: int) -> None:
        """Check until SIGTERM or until `parent` (serve) is gone."""
        while not self.stopping and os.getppid() == parent:
            self.check_once()
            time.sleep(CHECK_SECONDS)

    def stop(self, signum: int = 0, frame: FrameType | None = None) -> None:
        """Finish the current step and leave (SIGTERM from serve)."""
        self.stopping = True


def read_state(state_file: Path | None) -> dict[str, object] | None:
    """What the supervisor last wrote ({"postgres": "up"|"restarting", "restarts": n}), or
    None when nothing supervises (an external database, a test's in-process app)."""
    if state_file is None:
        return None
    try:
        state: dict[str, object] = json.loads(state_file.read_text())
    except (OSError, ValueError):
        return None
    return state


def main(argv: list[str]) -> None:
    """Entry point: `python -m couponapi.db.supervisor DATA_DIR STATE_FILE PARENT_PID LEVEL`."""
    data_dir, state_file, parent = Path(argv[0]), Path(argv[1]), int(argv[2])
    logging.config.dictConfig(log_config(argv[3]))
    # Ctrl-C reaches the whole process group: serve decides when we stop (SIGTERM).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    supervisor = Supervisor(EmbeddedPostgres(data_dir), state_file)
    signal.signal(signal.SIGTERM, supervisor.stop)
    supervisor.run_forever(parent)


if __name__ == "__main__":
    main(sys.argv[1:])
