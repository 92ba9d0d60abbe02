"""Schema migrations: ordered SQL files applied once each, safe when many processes start.

`sql/migrations/NNNN_name.sql` are applied in order, each in its own transaction, and
recorded in `schema_migrations`. Every one of those transactions first takes a
transaction-scoped advisory lock, so concurrent starters (several workers, several machines)
take turns: the first applies, the others then find the version recorded and skip it. The
lock ends with its transaction, so nothing outlives it on the server session: safe through a
transaction pooler, where a session lock could stay held on a server connection for ever (or
be "unlocked" on another one).
"""

from __future__ import annotations

from contextlib import suppress
from importlib.resources import files
from urllib.parse import urlsplit, urlunsplit

import asyncpg

# Any fixed 64-bit number works; it only has to be the same in every process.
MIGRATION_LOCK_ID = 7_531_246_001


def migration_files() -> list[tuple[str, str]]:
    """(version, sql) of every migration, in the order they apply."""
    folder = files("couponapi.db").joinpath("sql", "migrations")
    names = sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".sql"))
    return [(name.removesuffix(".sql"), folder.joinpath(name).read_text()) for name in names]


def function_as_created(version: str, function: str, renamed: str) -> str:
    """The CREATE FUNCTION statement of `function` as migration `version` wrote it, under the
    name `renamed`: to run a replaced definition beside the current one (tests, benchmarks)."""
    text = dict(migration_files())[version]
    start = text.index(f"CREATE FUNCTION {function}(")
    end = text.index("\n$$;", start) + len("\n$$;")
    return text[start:end].replace(f"{function}(", f"{renamed}(", 1)


async def migrate(connection: asyncpg.Connection) -> list[str]:
    """Apply every migration not yet applied; returns the versions applied now."""
    async with connection.transaction():
        await _take_turn(connection)
        await connection.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version    text PRIMARY KEY,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
    applied = []
    for version, sql in migration_files():
        async with connection.transaction():
            await _take_turn(connection)
            # Read under the lock: another starter may have applied it while we waited.
            if await connection.fetchval(
                "SELECT 1 FROM schema_migrations WHERE version = $1", version
            ):
                continue
            await connection.execute(sql)
            await connection.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
        applied.append(version)
    return applied


async def _take_turn(connection: asyncpg.Connection) -> None:
    # Held until this transaction ends: one migrator at a time, and the only lock a migrator
    # waits for before its DDL, so two cannot deadlock on each other. No timeout for the
    # DDL either (the role's defaults are for claims: db/session_defaults): a migration on a
    # large table may run long, and SET LOCAL ends with the transaction.
    await connection.execute(
        f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID});"
        " SET LOCAL lock_timeout = 0; SET LOCAL statement_timeout = 0"
    )


async def ensure_database(url: str, statement_cache_size: int = 100) -> None:
    """Create the database named in `url` when it does not exist (needs CREATEDB)."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    connection = await asyncpg.connect(admin_url, statement_cache_size=statement_cache_size)
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            quoted = '"' + name.replace('"', '""') + '"'
            # Another process may create it between our check and our CREATE: fine.
            with suppress(asyncpg.DuplicateDatabaseError):
                await connection.execute(f"CREATE DATABASE {quoted}")
    finally:
        await connection.close()


async def migrate_url(url: str, statement_cache_size: int = 100) -> list[str]:
    """Open a connection to `url`, migrate, close."""
    connection = await asyncpg.connect(url, statement_cache_size=statement_cache_size)
    try:
        return await migrate(connection)
    finally:
        await connection.close()
