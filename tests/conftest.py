"""Fixtures: one private PostgreSQL per test session, a fresh database per test.

The server is the same launcher `serve` uses. The schema is migrated once into a template
database; each test gets `CREATE DATABASE ... TEMPLATE`, which copies it in milliseconds.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from uuid import uuid4

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from couponapi.config import Settings
from couponapi.db.embedded import EmbeddedPostgres, ServerInfo
from couponapi.db.migrate import ensure_database, migrate_url
from tests.support import app_client
from tests.v2_support import JWT_SECRET, TOKEN

TEMPLATE = "couponapi_template"


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
async def database_url(pg_server: ServerInfo) -> AsyncIterator[str]:
    """The URL of a fresh database, a copy of the migrated template, dropped afterwards."""
    name = f"test_{uuid4().hex[:16]}"
    admin = await asyncpg.connect(pg_server.url("postgres"))
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        yield pg_server.url(name)
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    finally:
        await admin.close()


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
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the test's database, for arranging data and checking results."""
    async with asyncpg.create_pool(database_url, min_size=1, max_size=20) as test_pool:
        yield test_pool


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Default settings pointed at the test's database, with the tests' admin token and JWT
    secret (tests.v2_support)."""
    return Settings(
        database_url=database_url, admin_token=SecretStr(TOKEN), jwt_secret=SecretStr(JWT_SECRET)
    )


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client wired to the app in-process, its lifespan (and pool) running; a request
    without credentials of its own carries the admin token (which may do everything)."""
    async with app_client(settings, auth=TOKEN) as test_client:
        yield test_client
