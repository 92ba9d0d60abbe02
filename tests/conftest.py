"""Fixtures: one private PostgreSQL per test session, a fresh database per test.

The server is the same launcher `serve` uses. The schema is migrated once into a template
database; each test gets `CREATE DATABASE ... TEMPLATE`, which copies it in milliseconds.

With COUPONAPI_TEST_POOLER=pgbouncer (tests/concurrency/test_through_pgbouncer runs suites
so), the service under test reaches its database through PgBouncer in transaction mode:
`database_url` is the pooled URL, COUPONAPI_STATEMENT_CACHE_SIZE=0 and
COUPONAPI_DIRECT_DATABASE_URL are set as an operator would; the tests' own `pool` and
`direct_url` go straight to PostgreSQL to arrange and check.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit
from uuid import uuid4

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from couponapi.config import Settings
from couponapi.db.embedded import EmbeddedPostgres, ServerInfo
from couponapi.db.migrate import ensure_database, migrate_url
from tests import pgbouncer
from tests.support import LOOPBACK_HOSTS, app_client
from tests.v2_support import JWT_SECRET, TOKEN

TEMPLATE = "couponapi_template"
POOLER = os.environ.get("COUPONAPI_TEST_POOLER", "")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[ServerInfo]:
    """A private PostgreSQL for the whole session, with the migrated template database."""
    data_dir = Path(tempfile.mkdtemp(prefix="couponapi-test-"))
    server = EmbeddedPostgres(data_dir)
    server.start()
    try:
        info = server.info()

        async def make_template() -> None:
            await ensure_database(info.url(TEMPLATE))
            await migrate_url(info.url(TEMPLATE))

        asyncio.run(make_template())
        yield info
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def pooler_port(pg_server: ServerInfo, monkeypatch: pytest.MonkeyPatch) -> Iterator[int | None]:
    """PgBouncer's port when the session runs through it (COUPONAPI_TEST_POOLER), else None.

    One PgBouncer per test: in one long-lived PgBouncer 1.18, after a few dozen databases
    were made and dropped under it (the suite's one per test), new logins were seen to hang
    without a line in its log; production does not churn databases, the suite does."""
    if POOLER != "pgbouncer":
        yield None
        return
    if pgbouncer.binary() is None:
        pytest.skip("COUPONAPI_TEST_POOLER=pgbouncer, but pgbouncer is not installed")
    monkeypatch.setenv("COUPONAPI_STATEMENT_CACHE_SIZE", "0")  # 1.18: no prepared statements
    with pgbouncer.pgbouncer(pg_server) as port:
        yield port


@pytest.fixture
async def direct_url(pg_server: ServerInfo) -> AsyncIterator[str]:
    """The URL of a fresh database on PostgreSQL itself, a copy of the migrated template,
    dropped afterwards."""
    name = f"test_{uuid4().hex[:16]}"
    admin = await asyncpg.connect(pg_server.url("postgres"))
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        yield pg_server.url(name)
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture
def database_url(direct_url: str, pooler_port: int | None, monkeypatch: pytest.MonkeyPatch) -> str:
    """The URL the service under test uses: `direct_url`, or the same database through
    PgBouncer (then the direct one is COUPONAPI_DIRECT_DATABASE_URL for servers started)."""
    if pooler_port is None:
        return direct_url
    monkeypatch.setenv("COUPONAPI_DIRECT_DATABASE_URL", direct_url)
    host = "127.0.0.1"
    return direct_url.replace(f"@{host}:{urlsplit(direct_url).port}/", f"@{host}:{pooler_port}/")


@pytest.fixture(scope="module")
def module_database_url(pg_server: ServerInfo) -> Iterator[str]:
    """A fresh copy of the migrated template shared by one module's tests, dropped afterwards
    (for modules that start a server once)."""
    name = f"module_{uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        connection = await asyncpg.connect(pg_server.url("postgres"))
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(admin(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}"))
    try:
        yield pg_server.url(name)
    finally:
        asyncio.run(admin(f"DROP DATABASE {name} WITH (FORCE)"))


@pytest.fixture
async def pool(direct_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the test's database, for arranging data and checking results."""
    async with asyncpg.create_pool(direct_url, min_size=1, max_size=20) as test_pool:
        yield test_pool


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Default settings pointed at the test's database, with the tests' admin token and JWT
    secret (tests.v2_support)."""
    return Settings(
        database_url=database_url,
        admin_token=SecretStr(TOKEN),
        jwt_secret=SecretStr(JWT_SECRET),
        webhook_hosts=LOOPBACK_HOSTS,
    )


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client wired to the app in-process, its lifespan (and pool) running; a request
    without credentials of its own carries the admin token (which may do everything)."""
    async with app_client(settings, auth=TOKEN) as test_client:
        yield test_client
