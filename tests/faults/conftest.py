"""Fixtures of the fault tests: a PostgreSQL of their own, which they may kill."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from couponapi.db.embedded import EmbeddedPostgres
from couponapi.db.migrate import ensure_database, migrate_url


@pytest.fixture
def own_postgres() -> Iterator[EmbeddedPostgres]:
    """A private, migrated PostgreSQL for one test (not the session's: this one gets killed)."""
    data_dir = Path(tempfile.mkdtemp(prefix="couponapi-fault-"))
    server = EmbeddedPostgres(data_dir)
    server.start()

    async def prepare() -> None:
        await ensure_database(server.info().url())
        await migrate_url(server.info().url())

    try:
        asyncio.run(prepare())
        yield server
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
