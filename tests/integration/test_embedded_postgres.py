"""The private PostgreSQL launcher: durable settings, restart keeps data, stop stops."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import asyncpg

from couponapi.db.embedded import EmbeddedPostgres, ServerInfo


async def test_durability_settings_are_on(pg_server: ServerInfo, database_url: str) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        assert await connection.fetchval("SHOW fsync") == "on"
        assert await connection.fetchval("SHOW synchronous_commit") == "on"
    finally:
        await connection.close()


async def test_data_survives_a_restart_and_stop_stops() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="couponapi-restart-"))
    server = EmbeddedPostgres(data_dir)
    try:
        assert server.start() is True
        assert server.start() is False  # already running: nothing to do
        url = server.info().url("postgres")
        connection = await asyncpg.connect(url)
        await connection.execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)")
        await connection.close()
        server.stop()
        assert not server.is_running()
        server.start()
        connection = await asyncpg.connect(url)
        assert await connection.fetchval("SELECT n FROM kept") == 7
        await connection.close()
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
