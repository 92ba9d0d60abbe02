"""Pooler safety in the database: the timeouts are the role's defaults in its database (not
start-up parameters), written once, and migrations run concurrently under
transaction-scoped locks that leave nothing held on the session."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import asyncpg

from couponapi.config import Settings
from couponapi.db.embedded import ServerInfo
from couponapi.db.migrate import migrate, migration_files
from couponapi.db.pool import connection_settings, create_pool
from couponapi.db.session_defaults import apply_timeouts


async def test_timeouts_are_role_defaults_not_startup_parameters(database_url: str) -> None:
    settings = Settings(database_url=database_url, lock_timeout_ms=1234, statement_timeout_ms=4321)
    assert set(connection_settings(settings)) == {"application_name"}
    connection = await asyncpg.connect(database_url)
    try:
        assert await apply_timeouts(connection, settings, database_url) is True
        assert await apply_timeouts(connection, settings, database_url) is False  # once
        stored = await connection.fetchval(
            """SELECT setconfig FROM pg_db_role_setting
                WHERE setdatabase = (SELECT oid FROM pg_database
                                      WHERE datname = current_database())"""
        )
        assert sorted(stored) == ["lock_timeout=1234", "statement_timeout=4321"]
    finally:
        await connection.close()
    pool = await create_pool(database_url, settings)
    try:
        async with pool.acquire() as pooled:
            shown = await pooled.fetchrow(
                "SELECT current_setting('lock_timeout') AS lock,"
                " current_setting('statement_timeout') AS statement"
            )
    finally:
        await pool.close()
    assert shown is not None
    assert (shown["lock"], shown["statement"]) == ("1234ms", "4321ms")


async def test_concurrent_migrators_apply_each_migration_once(pg_server: ServerInfo) -> None:
    name = f"empty_{uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg_server.url("postgres"))
    await admin.execute(f"CREATE DATABASE {name}")
    try:
        migrators = [await asyncpg.connect(pg_server.url(name)) for _ in range(3)]
        try:
            applied = await asyncio.gather(*(migrate(m) for m in migrators))
            # Nothing outlives the transactions: no advisory lock left on any session.
            held = await migrators[0].fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
            )
        finally:
            for migrator in migrators:
                await migrator.close()
        versions = [version for version, _ in migration_files()]
        assert sorted(v for run in applied for v in run) == versions  # each once, in all
        assert held == 0
    finally:
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        await admin.close()
