"""v2 claim routes: claim, release, redeem, and the listings of a coupon's or a user's claims.

Thin on purpose: parse, call one service function, answer. Every refusal is raised as a
CouponError and answered as RFC 9457 problem details by couponapi.api.errors.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from couponapi.api.auth import authenticate, may_see_user, require_admin, require_server
from couponapi.api.claimant import claimant
from couponapi.api.deps import pool_of, settings_of
from couponapi.api.inputs import (
    KEY_PATTERN,
    MAX_KEY_LENGTH,
    InvalidRequest,
    idempotency_key,
    page_cursor,
    page_limit,
    page_of,
    path_uuid,
    read_json,
)
from couponapi.api.openapi import operation
from couponapi.api.responses import json_response
from couponapi.api.v2.problems import PREFIX, Problem
from couponapi.api.v2.wire import (
    AUTH,
    INVALID,
    PAGE,
    SIGNED,
    TAGS,
    UNKNOWN,
    ClaimCreate,
    ClaimPage,
    RedeemRequest,
)
from couponapi.domain.claims import Claim, ClaimRequest
from couponapi.domain.codes import normalize_code
from couponapi.services import claims
from couponapi.strategies import CLAIM_STRATEGIES

REPLAYED = {"Idempotent-Replayed": "true"}
KEY_SCHEMA = {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH, "pattern": KEY_PATTERN}
KEY = (("Idempotency-Key", KEY_SCHEMA, "Retries with the same key get the first answer (24 h)."),)
NOT_LIVE = (Problem, "The claim was released or redeemed already, or its hold expired.")


@operation(
    summary="Claim a coupon for a user.",
    description="A replayed answer carries `Idempotent-Replayed: true`.",
    query=(
        (
            "strategy",
            {"type": "string", "enum": list(CLAIM_STRATEGIES)},
            "How to claim; default from COUPONAPI_CLAIM_STRATEGY.",
        ),
    ),
    tags=TAGS,
    body=ClaimCreate,
    headers=KEY,
    signed=True,
    responses={
        201: (Claim, "Claimed: the claim with its code."),
        **SIGNED,
        404: UNKNOWN,
        409: (Problem, "Sold out, per-user limit reached, or not active (paused, window)."),
        413: (Problem, "Body too large."),
        422: (Problem, "Malformed input, unknown strategy, or the key was used for another body."),
    },
)
async def claim(request: Request) -> Response:
    """Claim a coupon for a user."""
    principal = await authenticate(request)
    settings = settings_of(request)
    strategy = request.query_params.get("strategy", settings.claim_strategy)
    if strategy not in CLAIM_STRATEGIES:
        raise InvalidRequest(422, f"unknown strategy {strategy!r}: one of {list(CLAIM_STRATEGIES)}")
    coupon_id = path_uuid(request, "coupon_id")
    key = idempotency_key(request)
    user_id = await claimant(request, principal)
    claimed = await claims.claim(pool_of(request), strategy, coupon_id, ClaimRequest(user_id, key))
    return json_response(claimed.claim, 201, REPLAYED if claimed.replayed else None)


def _page(found: list[Claim], limit: int) -> Response:
    items, cursor = page_of(found, limit, lambda claim: (claim.claimed_at, claim.id))
    return json_response(ClaimPage(items=items, next_cursor=cursor))


@operation(
    summary="List a coupon's claims, oldest first (admin, cursor pagination).",
    query=PAGE,
    tags=TAGS,
    admin=True,
    responses={200: (ClaimPage, "One page of claims."), **AUTH, 404: UNKNOWN, 422: INVALID},
)
async def claims_of_coupon(request: Request) -> Response:
    """List a coupon's claims (admin)."""
    await require_admin(request)
    coupon_id, limit = path_uuid(request, "coupon_id"), page_limit(request)
    found = await claims.claims_of_coupon(
        pool_of(request), coupon_id, page_cursor(request), limit + 1
    )
    return _page(found, limit)


@operation(
    summary="List a user's claims, oldest first (cursor pagination).",
    query=PAGE,
    tags=TAGS,
    path_formats={"user_id": ""},
    signed=True,
    responses={200: (ClaimPage, "One page of claims ([] when none)."), **SIGNED, 422: INVALID},
)
async def claims_of_user(request: Request) -> Response:
    """List a user's claims."""
    principal = await authenticate(request)
    user_id = request.path_params["user_id"]
    if not 1 <= len(user_id) <= 128:
        raise InvalidRequest(422, "user_id must be 1 to 128 characters")
    may_see_user(principal, user_id)
    limit = page_limit(request)
    found = await claims.claims_of_user(pool_of(request), user_id, page_cursor(request), limit + 1)
    return _page(found, limit)


@operation(
    summary="Release a claim: its coupon goes back to the pool.",
    description="With a user token, the holder's own claims only: any other id is 403, "
    "whether or not such a claim exists.",
    tags=TAGS,
    signed=True,
    responses={
        200: (Claim, "Released."),
        **SIGNED,
        404: (Problem, "No claim with this id."),
        409: NOT_LIVE,
        422: INVALID,
    },
)
async def release(request: Request) -> Response:
    """Release a claim."""
    principal = await authenticate(request)
    claim_id = path_uuid(request, "claim_id")
    owner = principal.subject if principal.is_user else None
    return json_response(await claims.release(pool_of(request), claim_id, owner))


@operation(
    summary="Redeem a claim's code, exactly once (a server key or the admin).",
    tags=TAGS,
    body=RedeemRequest,
    signed=True,
    responses={
        200: (Claim, "Redeemed."),
        **SIGNED,
        404: (Problem, "No claim with this code."),
        409: NOT_LIVE,
        413: (Problem, "Body too large."),
        422: (Problem, "Malformed body or code."),
    },
)
async def redeem(request: Request) -> Response:
    """Redeem a claim's code."""
    await require_server(request)
    code = normalize_code((await read_json(request, RedeemRequest)).code)
    if code is None:
        raise InvalidRequest(422, "a code is 12 letters and digits, like 7K3M-Q9XA-T2VD")
    return json_response(await claims.redeem(pool_of(request), code))


def claim_route() -> Route:
    """The route that takes the crowd (api.fastpath.ClaimLane serves it)."""
    return Route(f"{PREFIX}/coupons/{{coupon_id}}/claims", claim, methods=["POST"])


def routes() -> list[BaseRoute]:
    """The v2 claim routes."""
    return [
        claim_route(),
        Route(f"{PREFIX}/coupons/{{coupon_id}}/claims", claims_of_coupon, methods=["GET"]),
        Route(f"{PREFIX}/users/{{user_id}}/claims", claims_of_user, methods=["GET"]),
        Route(f"{PREFIX}/claims/redeem", redeem, methods=["POST"]),
        Route(f"{PREFIX}/claims/{{claim_id}}/release", release, methods=["POST"]),
    ]
