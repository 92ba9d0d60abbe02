"""The service's PostgreSQL timeouts, kept per role and database instead of per session.

`lock_timeout` and `statement_timeout` bound every claim (503 instead of waiting: api/errors).
They used to travel in asyncpg's start-up packet, which a pooler such as PgBouncer refuses
(unknown start-up parameter) or, with `ignore_startup_parameters`, silently drops. A session
`SET` would not survive a transaction pooler either, and `SET LOCAL` would cost the claim
path two more round trips per batch (BEGIN ... COMMIT around one statement). So they are
stored where PostgreSQL applies them to every new server session of the service's role in
its database, whoever opens it (the pool or a pooler's server connection):

    ALTER ROLE <role> IN DATABASE <database> SET lock_timeout = ..., statement_timeout = ...

Failure modes: a session opened before the change keeps the old values (restart the pooler's
server connections after changing them: PgBouncer's RECONNECT); every session of that role in
that database gets them (psql too), so give the service a role of its own in production.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import asyncpg

from couponapi.config import Settings
from couponapi.db.pool import TRANSIENT, connect, direct_url

log = logging.getLogger(__name__)

# Any fixed 64-bit number, the same in every process (migrations use 7_531_246_001).
DEFAULTS_LOCK_ID = 7_531_246_002

_CURRENT = """SELECT coalesce(s.setconfig, '{}') FROM pg_roles r
                LEFT JOIN pg_db_role_setting s ON s.setrole = r.oid
                 AND s.setdatabase = (SELECT oid FROM pg_database
                                       WHERE datname = current_database())
               WHERE r.rolname = $1"""


def wanted(settings: Settings) -> dict[str, int]:
    """The role-and-database settings `settings` ask for, in milliseconds (0: no limit)."""
    return {
        "lock_timeout": settings.lock_timeout_ms,
        "statement_timeout": settings.statement_timeout_ms,
    }


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def apply_timeouts(
    connection: asyncpg.Connection, settings: Settings, service_url: str
) -> bool:
    """Make the timeouts of `settings` the defaults of the role `service_url` logs in as, in
    the database `connection` is on; False when they already were (nothing written).

    Safe when many processes start at once: a transaction-scoped advisory lock lets one
    write while the others wait, then find nothing left to do (no session state is left)."""
    role = urlsplit(service_url).username or str(await connection.fetchval("SELECT current_user"))
    entries = {f"{name}={value}" for name, value in wanted(settings).items()}
    if entries <= set(await connection.fetchval(_CURRENT, role) or ()):
        return False
    async with connection.transaction():
        # Held to COMMIT only: serializes writers of pg_db_role_setting (two concurrent
        # ALTER ROLE on one row fail with "tuple concurrently updated"); one lock, no cycle.
        await connection.execute("SELECT pg_advisory_xact_lock($1)", DEFAULTS_LOCK_ID)
        if entries <= set(await connection.fetchval(_CURRENT, role) or ()):
            return False
        database = _quoted(str(await connection.fetchval("SELECT current_database()")))
        for name, value in wanted(settings).items():
            # Integers from the validated settings: nothing here comes from a client.
            await connection.execute(
                f"ALTER ROLE {_quoted(role)} IN DATABASE {database} SET {name} = {int(value)}"
            )
    return True


async def apply_timeouts_if_reachable(settings: Settings) -> None:
    """At a worker's start: apply the timeouts over the direct URL, or log why not and go on.

    `serve` has already applied them before starting its workers (this then only reads);
    an app built elsewhere (tests, another server) gets them here. A worker started while
    PostgreSQL is down must still come up and answer 503, so unavailability is not fatal."""
    try:
        connection = await connect(direct_url(settings), settings)
        try:
            await apply_timeouts(connection, settings, service_url=pooled_url(settings))
        finally:
            await connection.close()
    except TRANSIENT as error:
        log.warning(f"timeouts not checked, PostgreSQL unreachable: {type(error).__name__}")
    except asyncpg.InsufficientPrivilegeError as error:
        log.warning(f"cannot set the role's timeouts ({error}): set them as the role's owner")


def pooled_url(settings: Settings) -> str:
    """The URL the pool logs in with (its user is the role the timeouts are for)."""
    return settings.database_url or direct_url(settings)
