"""Helpers the v2 tests share: an app with a known admin token and JWT secret, user tokens,
and the database's checks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import httpx

from couponapi.app import create_app
from couponapi.config import Settings
from couponapi.identity.tokens import mint
from tests.support import JWT_SECRET, LOOPBACK_HOSTS, TOKEN, DefaultCredential

__all__ = ["JWT_SECRET", "TOKEN"]  # re-exported: the v2 tests take them from here
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
V2 = "/api/v2"


def user_token(user: str, ttl: int = 600, secret: str = JWT_SECRET, **claims: Any) -> str:
    """A user token for `user` signed with the test apps' secret."""
    return mint(secret, user, ttl, **claims)


def as_user(user: str, **claims: Any) -> dict[str, str]:
    """Headers that claim as `user` with a token of its own."""
    return {"Authorization": f"Bearer {user_token(user, **claims)}"}


@asynccontextmanager
async def v2_client(
    database_url: str, auth: str | None = None, **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client of an app whose admin token is TOKEN and JWT secret JWT_SECRET;
    with `auth`, requests without credentials of their own carry that one."""
    defaults = {"admin_token": TOKEN, "jwt_secret": JWT_SECRET, "webhook_hosts": LOOPBACK_HOSTS}
    app = create_app(Settings(database_url=database_url, **{**defaults, **settings}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://test",
            auth=DefaultCredential(auth) if auth else None,
        ) as client:
            yield client


async def create_coupon(client: httpx.AsyncClient, quantity: int = 5, **fields: Any) -> UUID:
    """Create a coupon through the API (admin) and return its id."""
    body = {"name": "launch", "type": "percent", "quantity": quantity, **fields}
    response = await client.post(f"{V2}/coupons", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text
    return UUID(response.json()["id"])


@dataclass(frozen=True)
class ClaimState:
    """What the database says about one coupon's v2 claims."""

    total: int
    remaining: int
    live_claims: int
    redeemed: int
    released: int
    distinct_live_users: int
    ledger: dict[str, int]  # claim_event kind -> rows
    expired: int = 0  # marked expired (a due hold the sweeper has not reached is still live)

    def check(self) -> None:
        """The invariants: claimed == total - remaining == live claims; ledger matches rows."""
        assert self.total - self.remaining == self.live_claims
        assert self.ledger.get("granted", 0) == self.live_claims + self.released + self.expired
        assert self.ledger.get("released", 0) == self.released
        assert self.ledger.get("redeemed", 0) == self.redeemed
        assert self.ledger.get("expired", 0) == self.expired


async def claim_state(pool: asyncpg.Pool, coupon_id: UUID) -> ClaimState:
    """Counts of a coupon's claims and ledger rows, read from the tables as stored (a live
    claim is 'claimed' or 'redeemed')."""
    row = await pool.fetchrow(
        """SELECT c.total_quantity, c.quantity,
                  count(l.id) FILTER (WHERE l.status IN ('claimed', 'redeemed')) AS live,
                  count(l.id) FILTER (WHERE l.status = 'redeemed') AS redeemed,
                  count(l.id) FILTER (WHERE l.status = 'released') AS released,
                  count(l.id) FILTER (WHERE l.status = 'expired') AS expired,
                  count(DISTINCT l.user_id) FILTER (WHERE l.status IN ('claimed', 'redeemed'))
                      AS users
             FROM coupon c LEFT JOIN claim l ON l.coupon_id = c.id
            WHERE c.id = $1
            GROUP BY c.id""",
        coupon_id,
    )
    assert row is not None
    events = await pool.fetch(
        "SELECT kind, count(*) AS n FROM claim_event WHERE coupon_id = $1 GROUP BY kind",
        coupon_id,
    )
    return ClaimState(
        total=row["total_quantity"],
        remaining=row["quantity"],
        live_claims=row["live"],
        redeemed=row["redeemed"],
        released=row["released"],
        distinct_live_users=row["users"],
        ledger={r["kind"]: r["n"] for r in events},
        expired=row["expired"],
    )
