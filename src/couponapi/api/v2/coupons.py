"""v2 coupon routes: create and change (admin), read and list (open). Thin: parse, call the
service, answer; errors become problem details in couponapi.api.errors."""

from __future__ import annotations

from uuid import uuid4

from msgspec import UNSET
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from couponapi.api.auth import reader, require_admin
from couponapi.api.deps import pool_of
from couponapi.api.inputs import page_cursor, page_limit, page_of, path_uuid, read_json
from couponapi.api.openapi import operation
from couponapi.api.responses import json_response
from couponapi.api.v2.problems import PREFIX, Problem
from couponapi.api.v2.wire import (
    AUTH,
    INVALID,
    PAGE,
    TAGS,
    UNKNOWN,
    CouponCreate,
    CouponPage,
    CouponPublic,
    CouponUpdate,
)
from couponapi.domain.coupons import CouponChange, NewCoupon
from couponapi.services import coupons


@operation(
    summary="Create a coupon (admin).",
    tags=TAGS,
    body=CouponCreate,
    admin=True,
    responses={
        201: (CouponPublic, "The coupon as created."),
        **AUTH,
        409: (Problem, "A coupon with this id exists."),
        413: (Problem, "Body too large."),
        422: INVALID,
    },
)
async def create_coupon(request: Request) -> Response:
    """Create a coupon (admin)."""
    await require_admin(request)
    body = await read_json(request, CouponCreate)
    new = NewCoupon(
        id=body.id or uuid4(), name=body.name, type=body.type, quantity=body.quantity,
        per_user_limit=body.per_user_limit, starts_at=body.starts_at, ends_at=body.ends_at,
        hold_seconds=body.hold_seconds,
    )  # fmt: skip
    coupon = await coupons.create_coupon(pool_of(request), new)
    response = json_response(CouponPublic.of(coupon), status=201)
    response.headers["Location"] = f"{PREFIX}/coupons/{coupon.id}"
    return response


@operation(
    summary="List coupons, oldest first (cursor pagination).",
    query=PAGE,
    tags=TAGS,
    responses={200: (CouponPage, "One page of coupons."), 422: INVALID},
)
async def list_coupons(request: Request) -> Response:
    """List coupons, oldest first."""
    await reader(request)
    limit = page_limit(request)
    found = await coupons.list_coupons(pool_of(request), page_cursor(request), limit + 1)
    items, cursor = page_of(found, limit, lambda coupon: (coupon.created_at, coupon.id))
    return json_response(CouponPage(items=[CouponPublic.of(c) for c in items], next_cursor=cursor))


@operation(
    summary="Get one coupon with its counts.",
    tags=TAGS,
    responses={200: (CouponPublic, "The coupon."), 404: UNKNOWN, 422: INVALID},
)
async def get_coupon(request: Request) -> Response:
    """Get one coupon with its counts."""
    await reader(request)
    coupon_id = path_uuid(request, "coupon_id")
    return json_response(CouponPublic.of(await coupons.get_coupon(pool_of(request), coupon_id)))


@operation(
    summary="Change a coupon: quantity, window, pause, per-user limit, hold (admin).",
    description="The quantity can go up or down, never below what is claimed (409). A new "
    "hold_seconds applies to claims granted from now on; a shorter one is refused (422 "
    "hold-would-shorten) while a live claim would outlast it.",
    tags=TAGS,
    body=CouponUpdate,
    admin=True,
    responses={
        200: (CouponPublic, "The coupon as changed."),
        **AUTH,
        404: UNKNOWN,
        409: (Problem, "Quantity below what is already claimed."),
        413: (Problem, "Body too large."),
        422: (Problem, "Malformed body, a bad window, or a hold shorter than one granted."),
    },
)
async def update_coupon(request: Request) -> Response:
    """Change a coupon (admin)."""
    await require_admin(request)
    coupon_id = path_uuid(request, "coupon_id")
    body = await read_json(request, CouponUpdate)
    change = CouponChange(
        quantity=None if body.quantity is UNSET else body.quantity,
        set_starts_at=body.starts_at is not UNSET,
        starts_at=None if body.starts_at is UNSET else body.starts_at,
        set_ends_at=body.ends_at is not UNSET,
        ends_at=None if body.ends_at is UNSET else body.ends_at,
        paused=None if body.paused is UNSET else body.paused,
        per_user_limit=None if body.per_user_limit is UNSET else body.per_user_limit,
        set_hold_seconds=body.hold_seconds is not UNSET,
        hold_seconds=None if body.hold_seconds is UNSET else body.hold_seconds,
    )
    coupon = await coupons.update_coupon(pool_of(request), coupon_id, change)
    return json_response(CouponPublic.of(coupon))


def routes() -> list[Route]:
    """The v2 coupon routes."""
    return [
        Route(f"{PREFIX}/coupons", create_coupon, methods=["POST"]),
        Route(f"{PREFIX}/coupons", list_coupons, methods=["GET"]),
        Route(f"{PREFIX}/coupons/{{coupon_id}}", get_coupon, methods=["GET"]),
        Route(f"{PREFIX}/coupons/{{coupon_id}}", update_coupon, methods=["PATCH"]),
    ]
