"""The asyncpg connection pool a server process owns for its lifetime."""

from __future__ import annotations

import asyncpg

from couponapi.config import Settings


async def create_pool(url: str, settings: Settings) -> asyncpg.Pool:
    """A bounded pool: at most `pool_size` connections per process, so N processes hold at
    most N x pool_size, and a crowd waits in the pool's queue instead of at the row lock."""
    pool = await asyncpg.create_pool(
        url,
        min_size=1,
        max_size=settings.pool_size,
        command_timeout=30,
        server_settings={"application_name": "couponapi"},
    )
    assert pool is not None
    return pool
