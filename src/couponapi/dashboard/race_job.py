"""The dashboard's race button: one race at a time, run in the background, polled for status.

One at a time per database, not only per process: the job holds a transaction-scoped
PostgreSQL advisory lock in a transaction it keeps open on its own connection for the whole
race, so a second start on any server process sharing the database is refused (409). The same
connection reads the ledgers for the race table (read only; the transaction is rolled back at
the end, which lets the lock go). Transaction-scoped on purpose: behind a transaction pooler a
session lock would stay on whichever server connection took it, held for ever.

The status lives in the process that runs the race; with several workers a poll
that reaches another worker answers `state: "elsewhere"` and the page keeps polling.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from typing import Annotated, Literal

import asyncpg
import msgspec
from msgspec import Meta

from couponapi.db.pool import TRANSIENT
from couponapi.db.queries import query
from couponapi.loadtest.client import CannotRun
from couponapi.loadtest.credentials import Credentials
from couponapi.loadtest.crowd import Tally
from couponapi.loadtest.model import RaceRow
from couponapi.loadtest.race import RaceOptions, race
from couponapi.loadtest.targets import Target

log = logging.getLogger(__name__)

# Any fixed 64-bit number; the same in every process (migrations use 7_531_246_001).
RACE_LOCK_ID = 7_531_246_005


class RaceRequest(msgspec.Struct, forbid_unknown_fields=True):
    """How big a race to run; bounded so one click cannot flood the server."""

    quantity: Annotated[int, Meta(ge=1, le=10_000)] = 100
    users: Annotated[int, Meta(ge=1, le=20_000)] = 2_000
    concurrency: Annotated[int, Meta(ge=1, le=500)] = 200


class RaceStatus(msgspec.Struct, kw_only=True):
    """Where the race is: its rows so far and the strategy running now."""

    state: Literal["idle", "running", "done", "failed", "elsewhere"] = "idle"
    running: str | None = None
    done: int = 0
    planned: int = 0
    quantity: int = 0
    rows: list[RaceRow] = []
    error: str | None = None


class RaceBusy(Exception):
    """A race is already running (here, or in another process on the same database)."""


class RaceJob:
    """The race of this process, if any, and how to start one."""

    def __init__(self) -> None:
        self.status = RaceStatus()
        self.task: asyncio.Task[None] | None = None
        self.tally: Tally | None = None

    def current(self, locked_elsewhere: bool = False) -> RaceStatus:
        """The status now, with the running strategy's progress."""
        if self.status.state == "running" and self.tally is not None:
            self.status.done = self.tally.done
        if self.status.state == "idle" and locked_elsewhere:
            return RaceStatus(state="elsewhere")
        return self.status

    async def start(
        self,
        database_url: str,
        base_url: str,
        request: RaceRequest,
        credentials: Credentials,
    ) -> RaceStatus:
        """Start a race in the background; RaceBusy when one is running anywhere. The crowd
        proves itself with `credentials` (the server's own: a minted token per user)."""
        if self.task is not None and not self.task.done():
            raise RaceBusy("a race is already running")
        # No prepared-statement cache: this connection may go through a pooler (a handful of
        # queries per race, the extra parse costs nothing that shows).
        connection = await asyncpg.connect(database_url, statement_cache_size=0)
        await connection.execute("BEGIN")
        # Held until the transaction ends with the race (_run): a try-lock, so it never
        # waits and cannot deadlock; it guards no row, so it cannot touch a claim.
        if not await connection.fetchval(query("dashboard_race_try_lock"), RACE_LOCK_ID):
            await connection.close()
            raise RaceBusy("a race is already running in another server process")
        options = RaceOptions(
            base_url=base_url,
            quantity=request.quantity,
            users=request.users,
            concurrency=request.concurrency,
            credentials=credentials,
        )
        self.status = RaceStatus(state="running", planned=request.users, quantity=request.quantity)
        self.task = asyncio.create_task(self._run(connection, options))
        return self.status

    def _started(self, target: Target, tally: Tally) -> None:
        self.status.running, self.status.done, self.tally = target.name, 0, tally

    async def _run(self, connection: asyncpg.Connection, options: RaceOptions) -> None:
        try:
            await race(options, connection, on_start=self._started, on_row=self.status.rows.append)
            self.status.state = "done"
        except CannotRun as error:
            self.status.state, self.status.error = "failed", str(error)
        except Exception:
            log.exception("the dashboard's race failed")
            self.status.state, self.status.error = "failed", "internal error (see the server log)"
        finally:
            self.status.running, self.tally = None, None
            # Read only: ROLLBACK ends it and frees the lock; on a dead connection the close
            # does (the server ends the transaction of a session that goes away).
            with suppress(*TRANSIENT):
                await connection.execute("ROLLBACK")
            await connection.close()


async def locked_elsewhere(pool: asyncpg.Pool) -> bool:
    """Whether some session holds the race lock (a race runs in another process)."""
    held: bool = await pool.fetchval(query("dashboard_race_locked"), RACE_LOCK_ID)
    return held
