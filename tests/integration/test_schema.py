"""schema.sql is the readable truth; the ordered migrations must build exactly the same schema."""

from __future__ import annotations

import subprocess
from importlib.resources import files
from uuid import uuid4

import asyncpg

from couponapi.db.embedded import ServerInfo, find_binaries
from couponapi.db.migrate import migrate_url, migration_files


def dump_schema(url: str) -> str:
    pg_dump = str(find_binaries() / "pg_dump")
    command = [pg_dump, "--schema-only", "--no-owner", "--exclude-table=schema_migrations", url]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return "\n".join(
        line
        for line in result.stdout.splitlines()
        if not line.startswith(("--", "\\restrict", "\\unrestrict"))
    )


async def test_migrations_build_schema_sql(pg_server: ServerInfo, database_url: str) -> None:
    name = f"schema_{uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg_server.url("postgres"))
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        fresh = await asyncpg.connect(pg_server.url(name))
        try:
            await fresh.execute(files("couponapi.db").joinpath("sql", "schema.sql").read_text())
        finally:
            await fresh.close()
        assert dump_schema(pg_server.url(name)) == dump_schema(database_url)
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


async def test_migrate_is_idempotent_and_records_every_version(database_url: str) -> None:
    assert await migrate_url(database_url) == []
    connection = await asyncpg.connect(database_url)
    try:
        versions = [
            r["version"]
            for r in await connection.fetch(
                "SELECT version FROM schema_migrations ORDER BY version"
            )
        ]
    finally:
        await connection.close()
    assert versions == [version for version, _ in migration_files()]
