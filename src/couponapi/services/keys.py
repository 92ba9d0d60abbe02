"""API keys: create (the key is returned once), list, revoke, and what the key ring caches.

The pool is passed in; every refusal is a CouponError. Only the key's lookup id and SHA-256
are stored (couponapi.identity.keys); a revoked key is refused by every process within a
second (couponapi.identity.keyring).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from couponapi.db.queries import query
from couponapi.domain.errors import KeyNameTaken, KeyNotFound
from couponapi.identity.keys import LiveKey, Scope, new_key


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as listed: never the key itself."""

    name: str
    scope: str
    created_at: datetime
    revoked_at: datetime | None


async def create_key(pool: asyncpg.Pool, name: str, scope: Scope) -> tuple[ApiKey, str]:
    """A new key named `name`: its record, and the key (shown once, stored nowhere)."""
    made = new_key()
    try:
        row = await pool.fetchrow(query("insert_api_key"), name, made.lookup, made.digest, scope)
    except asyncpg.UniqueViolationError:
        raise KeyNameTaken(f"a live key is named {name!r}: revoke it first") from None
    assert row is not None
    return ApiKey(**row), made.key


async def list_keys(pool: asyncpg.Pool) -> list[ApiKey]:
    """Every key, live and revoked, oldest first."""
    return [ApiKey(**row) for row in await pool.fetch(query("list_api_keys"))]


async def revoke_key(pool: asyncpg.Pool, name: str) -> ApiKey:
    """Revoke the live key named `name`; KeyNotFound when there is none."""
    row = await pool.fetchrow(query("revoke_api_key"), name)
    if row is None:
        raise KeyNotFound(f"no live key is named {name!r}")
    return ApiKey(**row)


async def live_keys(pool: asyncpg.Pool) -> list[LiveKey]:
    """The live keys, as the key ring caches them."""
    rows = await pool.fetch(query("live_api_keys"))
    return [LiveKey(r["lookup"], bytes(r["digest"]), r["name"], r["scope"]) for r in rows]
