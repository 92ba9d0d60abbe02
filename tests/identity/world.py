"""A small world for the identity tests: an app, a coupon, a server key and an admin key,
alice's and bob's claims, and what the database holds (to prove a refusal wrote nothing)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import httpx

from tests.v2_support import ADMIN, V2, as_user, create_coupon, v2_client


@dataclass
class World:
    """Who is there and what they hold; `headers[who]` proves `who` (none: no header)."""

    client: httpx.AsyncClient
    coupon_id: UUID
    headers: dict[str, dict[str, str]]
    claims: dict[str, dict[str, Any]]  # alice's and bob's claims, as the API answered them
    webhook_id: str  # an endpoint registered by the admin (never delivered to: nothing listens)


async def make_key(client: httpx.AsyncClient, name: str, scope: str) -> str:
    """A new key through the API (admin); the key."""
    made = await client.post(f"{V2}/keys", json={"name": name, "scope": scope}, headers=ADMIN)
    assert made.status_code == 201, made.text
    key: str = made.json()["key"]
    return key


@asynccontextmanager
async def world(database_url: str, **settings: Any) -> AsyncIterator[World]:
    """The world on a fresh database; `settings` change the app's."""
    async with v2_client(database_url, **settings) as client:
        coupon_id = await create_coupon(client, quantity=10, per_user_limit=5)
        server = await make_key(client, "checkout", "server")
        admin_key = await make_key(client, "ops", "admin")
        claims = {}
        for user in ("alice", "bob"):
            answer = await client.post(
                f"{V2}/coupons/{coupon_id}/claims", json={"user_id": user}, headers=ADMIN
            )
            assert answer.status_code == 201, answer.text
            claims[user] = answer.json()
        hook = await client.post(
            f"{V2}/webhooks", json={"url": "http://127.0.0.1:9/hook"}, headers=ADMIN
        )
        assert hook.status_code == 201, hook.text
        await client.patch(f"{V2}/webhooks/{hook.json()['id']}", json={"enabled": False})
        headers = {
            "none": {},
            "user": as_user("alice"),
            "server": {"Authorization": f"Bearer {server}"},
            "admin": ADMIN,
            "admin-key": {"Authorization": f"Bearer {admin_key}"},
        }
        yield World(client, coupon_id, headers, claims, hook.json()["id"])


async def books(pool: asyncpg.Pool) -> dict[str, Any]:
    """Everything a request could have written: compared before and after a refusal."""
    row = await pool.fetchrow(
        """SELECT (SELECT count(*) FROM coupon) AS coupons,
                  (SELECT array_agg(quantity || ':' || total_quantity || ':' || paused
                                    ORDER BY id) FROM coupon) AS quantities,
                  (SELECT array_agg(id::text || ':' || user_id || ':' || status ORDER BY id)
                     FROM claim) AS claims,
                  (SELECT count(*) FROM claim_event) AS events,
                  (SELECT count(*) FROM coupon_event) AS coupon_events,
                  (SELECT array_agg(id::text || ':' || url || ':' || secret || ':'
                                    || coalesce(disabled_at::text, '-') ORDER BY id)
                     FROM webhook_endpoint) AS webhooks,
                  (SELECT count(*) FROM webhook_delivery) AS deliveries,
                  (SELECT count(*) FROM coupon_given_events) AS given,
                  (SELECT count(*) FROM idempotency_key) AS keys,
                  (SELECT array_agg(name || ':' || coalesce(revoked_at::text, '-') ORDER BY id)
                     FROM api_key) AS api_keys"""
    )
    assert row is not None
    return dict(row)
