"""What the load tests share: a real `couponapi serve` with two workers on the test's
database, and an aiohttp session to rush it with."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from tests.support import RunningServer, running_server


@pytest.fixture
def server(database_url: str) -> Iterator[RunningServer]:
    """`couponapi serve --workers 2` with the tests' credentials."""
    with running_server(database_url, workers=2) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session of up to 100 connections at once."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:
        yield session
