"""Webhook endpoints: register (the secret is answered once), list, enable or disable,
rotate the secret, delete, and the log of delivery attempts.

The pool is passed in; every refusal is a CouponError. Delivering is the sender's
(couponapi.services.webhook_sender), which runs in every server process.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import asyncpg

from couponapi.db.queries import query
from couponapi.domain.errors import WebhookNotFound
from couponapi.domain.webhooks import (
    Delivery,
    Endpoint,
    WebhookPolicy,
    check_event_types,
    new_secret,
)


def _endpoint(row: asyncpg.Record | None, endpoint_id: UUID | None = None) -> Endpoint:
    if row is None:
        raise WebhookNotFound(f"webhook endpoint {endpoint_id} not found")
    return Endpoint(**row)


async def create_endpoint(
    pool: asyncpg.Pool, policy: WebhookPolicy, url: str, events: Sequence[str] | None
) -> tuple[Endpoint, str]:
    """Register `url` for `events` (None: all): the endpoint and its signing secret (answered
    this once); InvalidWebhook for a URL the policy refuses or an unknown event type."""
    secret = new_secret()
    row = await pool.fetchrow(
        query("insert_webhook"), policy.check_url(url), check_event_types(events), secret
    )
    return _endpoint(row), secret


async def list_endpoints(pool: asyncpg.Pool) -> list[Endpoint]:
    """Every endpoint, oldest first."""
    return [Endpoint(**row) for row in await pool.fetch(query("list_webhooks"))]


async def get_endpoint(pool: asyncpg.Pool, endpoint_id: UUID) -> Endpoint:
    """One endpoint; WebhookNotFound when there is none."""
    return _endpoint(await pool.fetchrow(query("get_webhook"), endpoint_id), endpoint_id)


async def set_enabled(pool: asyncpg.Pool, endpoint_id: UUID, enabled: bool) -> Endpoint:
    """Enable (its next event is tried at once) or disable an endpoint; it keeps its place in
    the feed either way."""
    row = await pool.fetchrow(query("enable_webhook"), endpoint_id, enabled)
    return _endpoint(row, endpoint_id)


async def rotate_secret(pool: asyncpg.Pool, endpoint_id: UUID) -> tuple[Endpoint, str]:
    """A new signing secret for an endpoint (answered this once): every delivery from now on
    is signed with it, the old one is forgotten (a run already under way finishes with it)."""
    secret = new_secret()
    row = await pool.fetchrow(query("rotate_webhook_secret"), endpoint_id, secret)
    return _endpoint(row, endpoint_id), secret


async def delete_endpoint(pool: asyncpg.Pool, endpoint_id: UUID) -> None:
    """Remove an endpoint and its delivery log; WebhookNotFound when there is none."""
    if await pool.fetchval(query("delete_webhook"), endpoint_id) is None:
        raise WebhookNotFound(f"webhook endpoint {endpoint_id} not found")


async def list_deliveries(
    pool: asyncpg.Pool, endpoint_id: UUID, before: int | None, limit: int
) -> list[Delivery]:
    """Up to `limit` delivery attempts of an endpoint before attempt `before` (None: the
    newest), newest first; WebhookNotFound when there is no such endpoint."""
    await get_endpoint(pool, endpoint_id)
    rows = await pool.fetch(query("list_webhook_deliveries"), endpoint_id, before, limit)
    return [Delivery(**row) for row in rows]
