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


async def test_the_feed_migration_gives_every_old_ledger_row_its_own_id_in_order(
    pg_server: ServerInfo,
) -> None:
    # A database as it was before the feed, with v1 and v2 ledger rows whose ids collide.
    name = f"upgrade_{uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg_server.url("postgres"))
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        old = await asyncpg.connect(pg_server.url(name))
        try:
            versions = migration_files()
            feed = next(i for i, (v, _) in enumerate(versions) if v.startswith("0008"))
            for _, sql in versions[:feed]:
                await old.execute(sql)
            coupon, claim = uuid4(), uuid4()
            await old.execute(
                "INSERT INTO coupon (id, type, quantity) VALUES ($1, 't', 10)", coupon
            )
            await old.execute(
                "INSERT INTO claim (id, coupon_id, user_id, code, claimed_at)"
                " VALUES ($1, $2, 'u', 'C1', now())",
                claim, coupon,
            )  # fmt: skip
            for kind in ("granted", "released"):
                await old.execute(
                    "INSERT INTO claim_event (claim_id, coupon_id, user_id, kind)"
                    " VALUES ($1, $2, 'u', $3)",
                    claim, coupon, kind,
                )  # fmt: skip
            for user in ("a", "b", "c"):
                await old.execute(
                    "INSERT INTO coupon_given_events (couponid, userid, newquantity)"
                    " VALUES ($1, $2, 0)",
                    str(coupon), user,
                )  # fmt: skip
            await old.execute(versions[feed][1])
            v2 = await old.fetch("SELECT id, kind FROM claim_event ORDER BY id")
            v1 = await old.fetch("SELECT id, userid FROM coupon_given_events ORDER BY id")
            feed_ids = await old.fetch("SELECT id FROM event_feed ORDER BY xid, id")
            new_id = await old.fetchval(
                "INSERT INTO claim_event (claim_id, coupon_id, user_id, kind)"
                " VALUES ($1, $2, 'u', 'redeemed') RETURNING id",
                claim, coupon,
            )  # fmt: skip
        finally:
            await old.close()
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()
    assert [(r["id"], r["kind"]) for r in v2] == [(1, "granted"), (2, "released")]
    assert [(r["id"], r["userid"]) for r in v1] == [(4, "a"), (5, "b"), (6, "c")]
    assert [r["id"] for r in feed_ids] == [1, 2, 4, 5, 6]
    assert new_id == 7
