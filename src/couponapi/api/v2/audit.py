"""GET /api/v2/coupons/{coupon_id}/audit: a coupon's conservation check (admin or server key).

The proof that nothing was over-granted or lost, one request away: `couponapi race` and
`couponapi loadtest` read it when they cannot reach the database. Its wire type lives here
with its one route; the counts come from couponapi.services.audit, in one snapshot.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec
from msgspec import Meta
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from couponapi.api.auth import require_server
from couponapi.api.deps import pool_of
from couponapi.api.inputs import path_uuid
from couponapi.api.openapi import operation
from couponapi.api.responses import json_response
from couponapi.api.v2.problems import PREFIX
from couponapi.api.v2.wire import INVALID, SIGNED, TAGS, UNKNOWN
from couponapi.domain.audit import Audit
from couponapi.services import audit

Count = Annotated[int, Meta(ge=0)]


class LedgerCounts(msgspec.Struct):
    """The coupon's v2 ledger rows (claim_event), per kind."""

    granted: Count
    released: Count
    redeemed: Count
    expired: Count


class CouponAudit(msgspec.Struct):
    """A coupon's books in one snapshot. `conserved`: quantity = remaining + live claims
    (+ v1 grants), and the ledger has one row per grant, release, redemption and expiry
    (`expired_pending`: holds due but not yet marked, whose row the sweeper writes within
    seconds). `problems` names each equality that does not hold ([] when conserved)."""

    coupon_id: UUID
    checked_at: datetime
    quantity: Count
    remaining: Count
    live: Count
    held: Count
    redeemed: Count
    released: Count
    expired: Count
    expired_pending: Count
    claims: Count
    given_v1: Count
    users_over_limit: Count
    ledger: LedgerCounts
    conserved: bool
    problems: list[str]

    @classmethod
    def of(cls, found: Audit) -> CouponAudit:
        """The wire form of an audit."""
        ledger = found.ledger
        return cls(
            coupon_id=found.coupon_id, checked_at=found.checked_at, quantity=found.quantity,
            remaining=found.remaining, live=found.live, held=found.held,
            redeemed=found.redeemed, released=found.released, expired=found.expired,
            expired_pending=found.expired_pending, claims=found.claims,
            given_v1=found.given_v1, users_over_limit=found.users_over_limit,
            ledger=LedgerCounts(ledger.granted, ledger.released, ledger.redeemed, ledger.expired),
            conserved=found.conserved, problems=found.problems,
        )  # fmt: skip


@operation(
    summary="Audit a coupon: its conservation check, in one snapshot (server key or admin).",
    description="Counts every unit and every ledger row of the coupon as of one instant; "
    "`conserved` says whether the books balance. Takes no lock; reads every claim of the "
    "coupon, so it is not for hot paths.",
    tags=TAGS,
    signed=True,
    responses={
        200: (CouponAudit, "The coupon's books."),
        **SIGNED,
        404: UNKNOWN,
        422: INVALID,
    },
)
async def coupon_audit(request: Request) -> Response:
    """Audit a coupon (server key or admin)."""
    await require_server(request)
    coupon_id = path_uuid(request, "coupon_id")
    return json_response(CouponAudit.of(await audit.audit(pool_of(request), coupon_id)))


def routes() -> list[Route]:
    """The audit route."""
    return [Route(f"{PREFIX}/coupons/{{coupon_id}}/audit", coupon_audit, methods=["GET"])]
