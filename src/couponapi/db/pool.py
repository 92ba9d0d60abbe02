"""The asyncpg connection pool a server process owns for its lifetime.

Every wait is bounded, so a crowd cannot pile up behind a stuck database:
- a request waits at most `pool_timeout` seconds for a connection (then TimeoutError: 503);
- every connection runs with `lock_timeout` and `statement_timeout` (then PostgreSQL cancels
  the statement, the transaction rolls back having written nothing: 503 with Retry-After),
  set for the service's role in its database, not in the start-up packet, so that they hold
  behind a transaction pooler too (db/session_defaults);
- a dead connection (PostgreSQL restarted or killed) is noticed by asyncpg when its socket
  closes and replaced on the next acquire, so the pool recovers by itself.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from couponapi.config import Settings

# Failures that mean "PostgreSQL is not there right now", as opposed to a bug: a retry gets
# a new connection (the API answers 503 + Retry-After).
UNAVAILABLE: tuple[type[Exception], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,  # another backend crashed: PostgreSQL restarts every session
    # asyncpg's protocol caught mid-error when the server vanished (seen when PostgreSQL is
    # SIGKILLed under load, tests/faults): the connection is dead, a retry gets a new one.
    asyncpg.InternalClientError,
)
# A bounded wait ran out: the pool's (TimeoutError), lock_timeout or statement_timeout. The
# transaction was rolled back, nothing was written (503 + Retry-After).
TIMED_OUT: tuple[type[Exception], ...] = (
    TimeoutError,
    asyncpg.LockNotAvailableError,
    asyncpg.QueryCanceledError,
)
# Either: the same request, sent again shortly, may well succeed.
TRANSIENT = (*UNAVAILABLE, *TIMED_OUT)


class BoundedPool(asyncpg.Pool):
    """An asyncpg pool whose acquire() waits at most `acquire_timeout` seconds by default.

    `pool.fetchval(...)` and `pool.acquire()` without a timeout would wait forever for a
    free connection; here they raise TimeoutError instead, which the API answers with 503."""

    __slots__ = ("_acquire_timeout",)

    def __init__(self, *args: Any, acquire_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._acquire_timeout = acquire_timeout

    def acquire(self, *, timeout: float | None = None) -> Any:
        """Like asyncpg's, with the pool's wait limit when no timeout is given."""
        return super().acquire(timeout=self._acquire_timeout if timeout is None else timeout)


def connection_settings(settings: Settings) -> dict[str, str]:
    """Start-up parameters of every pool connection: only what PgBouncer passes on (it
    refuses others); the timeouts are the role's (db/session_defaults)."""
    return {"application_name": "couponapi"}


def direct_url(settings: Settings) -> str:
    """PostgreSQL itself, not through a pooler: for migrations and the role's settings."""
    url = settings.direct_database_url or settings.database_url
    if url is None:
        raise ValueError("no database: DATABASE_URL is not set")
    return url


async def connect(url: str, settings: Settings) -> asyncpg.Connection:
    """One connection outside the pool, with the pool's statement-cache setting (a named
    prepared statement through PgBouncer < 1.21 would land on another server session)."""
    return await asyncpg.connect(
        url, statement_cache_size=settings.statement_cache_size, timeout=settings.pool_timeout
    )


async def skip_session_reset(connection: asyncpg.Connection) -> None:
    """Release without asyncpg's default reset query (advisory unlock, CLOSE ALL, UNLISTEN,
    RESET ALL): that is a second round trip on every release, about a third of a simple
    request's cost. The service never leaves such state on a pooled connection: no session
    SET, LISTEN, advisory lock or cursor outside a transaction. asyncpg still rolls back an
    open transaction and drops listeners before calling this (Connection._reset)."""


async def create_pool(url: str, settings: Settings) -> asyncpg.Pool:
    """A bounded pool: at most `pool_size` connections per process, so N processes hold at
    most N x pool_size, and a crowd waits in the pool's queue instead of at the row lock."""
    # The client-side limit only catches what PostgreSQL's statement_timeout did not.
    command_timeout = (
        settings.statement_timeout_ms / 1000 + 5 if settings.statement_timeout_ms else 60
    )
    pool = BoundedPool(
        url,
        # No connection at start-up: a worker (re)started while PostgreSQL is down must still
        # come up and answer 503, not fail its lifespan and take the server down with it.
        min_size=0,
        max_size=settings.pool_size,
        max_queries=50_000,
        max_inactive_connection_lifetime=300.0,
        statement_cache_size=settings.statement_cache_size,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        acquire_timeout=settings.pool_timeout,
        command_timeout=command_timeout,
        timeout=settings.pool_timeout,  # connecting, when PostgreSQL is slow to answer
        server_settings=connection_settings(settings),
        reset=skip_session_reset,  # one round trip less per release: see skip_session_reset
    )
    await pool
    return pool
