"""Schema migrations: ordered SQL files applied once each, safe when many processes start.

`sql/migrations/NNNN_name.sql` are applied in order, each in its own transaction, and
recorded in `schema_migrations`. A session advisory lock makes concurrent starters (several
workers, several machines) take turns: the first applies, the others find nothing left to do.
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
    await connection.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
    try:
        await connection.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version    text PRIMARY KEY,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {
            row["version"]
            for row in await connection.fetch("SELECT version FROM schema_migrations")
        }
        applied = []
        for version, sql in migration_files():
            if version in done:
                continue
            async with connection.transaction():
                await connection.execute(sql)
                await connection.execute(
                    "INSERT INTO schema_migrations (version) VALUES ($1)", version
                )
            applied.append(version)
        return applied
    finally:
        await connection.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)


async def ensure_database(url: str) -> None:
    """Create the database named in `url` when it does not exist (needs CREATEDB)."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    connection = await asyncpg.connect(admin_url)
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            quoted = '"' + name.replace('"', '""') + '"'
            # Another process may create it between our check and our CREATE: fine.
            with suppress(asyncpg.DuplicateDatabaseError):
                await connection.execute(f"CREATE DATABASE {quoted}")
    finally:
        await connection.close()


async def migrate_url(url: str) -> list[str]:
    """Open a connection to `url`, migrate, close."""
    connection = await asyncpg.connect(url)
    try:
        return await migrate(connection)
    finally:
        await connection.close()
