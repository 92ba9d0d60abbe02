"""The v1 routes: the original service's paths and wire format, its defects fixed.

Thin on purpose: parse, call one service function, answer. Errors are raised and turned into
responses by couponapi.api.errors.
"""

from __future__ import annotations

from uuid import UUID, uuid4

import asyncpg
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from couponapi import service
from couponapi.admin import require_admin
from couponapi.api.asgi_route import AsgiRoute
from couponapi.api.bodies import (
    InvalidRequest,
    convert,
    decode_json_object,
    header,
    parse_uuid,
    read_body,
)
from couponapi.api.openapi import operation
from couponapi.api.responses import json_response, send_json
from couponapi.api.v1_schemas import (
    CouponCreateV1,
    CouponV1,
    ErrorV1,
    GiveV1,
    GrantV1,
    canonical_keys,
)
from couponapi.config import Settings
from couponapi.domain import NewCoupon, StrategyDisabled

PREFIX = "/coupon/api/v1"
TAGS = ("v1 (original wire format)",)
BAD_ID = (ErrorV1, "Malformed coupon id or body.")
NOT_FOUND = (ErrorV1, "No coupon with this id.")
USER_HEADER = (("X-User-Id", "Who claims; else the body's userId; else a random UUID."),)


def _pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.pool
    return pool


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


@operation(
    summary="Get one coupon.",
    tags=TAGS,
    responses={
        200: (CouponV1, "The coupon; Quantity is what is left."),
        400: BAD_ID,
        404: NOT_FOUND,
    },
)
async def get_coupon(request: Request) -> Response:
    """Get one coupon."""
    coupon_id = parse_uuid(request.path_params["coupon_id"])
    return json_response(CouponV1.of(await service.get_coupon(_pool(request), coupon_id)))


@operation(
    summary="List every coupon.",
    tags=TAGS,
    responses={200: (list[CouponV1], "All coupons ([] when there are none).")},
)
async def list_coupons(request: Request) -> Response:
    """List every coupon."""
    return json_response([CouponV1.of(c) for c in await service.list_coupons(_pool(request))])


@operation(
    summary="Create a coupon with Amount to give.",
    tags=TAGS,
    body=CouponCreateV1,
    responses={
        200: (CouponV1, "The coupon as created."),
        400: (ErrorV1, "Body is not a JSON object."),
        409: (ErrorV1, "A coupon with this Id exists."),
        413: (ErrorV1, "Body too large."),
        422: (ErrorV1, "A field is missing or out of range."),
    },
)
async def create_coupon(request: Request) -> Response:
    """Create a coupon."""
    if _settings(request).protect_v1_create:
        require_admin(request)
    data = decode_json_object(await read_body(request, _settings(request).max_body_bytes))
    if data is None:
        raise InvalidRequest(422, "a JSON body with Type and Amount is required")
    body = convert(canonical_keys(data, CouponCreateV1), CouponCreateV1)
    new = NewCoupon(id=body.Id or uuid4(), name=body.Name, type=body.Type, quantity=body.Amount)
    return json_response(CouponV1.of(await service.create_coupon(_pool(request), new)))


async def _user_id(request: Request, limit: int) -> str:
    in_header = header(request, b"x-user-id")
    if in_header is not None:
        return convert({"userId": in_header}, GiveV1).userId or str(uuid4())
    data = decode_json_object(await read_body(request, limit))
    given = convert(canonical_keys(data, GiveV1), GiveV1).userId if data else None
    return given or str(uuid4())


def give_endpoint(strategy: str, summary: str, description: str) -> AsgiRoute:
    """The POST route that gives a coupon with `strategy`."""
    path = {
        "naive": "give",
        "locking": "give-transaction",
        "function": "give-transaction-pgfunction",
        "atomic": "give-atomic",
        "group_commit": "give-group-commit",
    }

    @operation(
        summary=summary,
        description=description,
        tags=TAGS,
        body=GiveV1,
        headers=USER_HEADER,
        deprecated=strategy == "naive",
        responses={
            200: (GrantV1, "Given: who got it and how many are left."),
            400: BAD_ID,
            403: (ErrorV1, "This strategy is switched off on this server."),
            404: NOT_FOUND,
            409: (ErrorV1, "Sold out."),
            422: (ErrorV1, "userId empty or too long."),
        },
    )
    async def give(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        settings = _settings(request)
        if strategy == "naive" and not settings.enable_naive:
            raise StrategyDisabled(strategy)
        coupon_id: UUID = parse_uuid(request.path_params["coupon_id"])
        user_id = await _user_id(request, settings.max_body_bytes)
        grant = await service.give(_pool(request), strategy, coupon_id, user_id)
        await send_json(send, GrantV1.of(grant))

    # Plain ASGI (api/asgi_route): these routes take the crowd.
    return AsgiRoute(f"{PREFIX}/{path[strategy]}/{{coupon_id}}", give, methods=["POST"])


def routes() -> list[BaseRoute]:
    """The v1 coupon routes; /all is listed before /{coupon_id} so it is not read as an id."""
    return [
        Route(f"{PREFIX}/all", list_coupons, methods=["GET"]),
        Route(f"{PREFIX}/create", create_coupon, methods=["POST"]),
        Route(f"{PREFIX}/{{coupon_id}}", get_coupon, methods=["GET"]),
    ]


def claim_routes() -> list[AsgiRoute]:
    """The give routes, one per strategy: they take the crowd (served by api.claim_lane)."""
    return [
        give_endpoint(
            "naive",
            "UNSAFE: give by read-then-write (oversells).",
            "The original's wrong way, kept to demonstrate the race: it reads the quantity, "
            "then writes it back minus one with no lock, so concurrent givers overwrite each "
            "other and more coupons are given than the quantity. Never use it for real.",
        ),
        give_endpoint(
            "locking",
            "Give in a transaction with SELECT ... FOR UPDATE.",
            "Safe: the coupon row stays locked from the check to the commit.",
        ),
        give_endpoint(
            "function",
            "Give with the give_coupon_to_user PL/pgSQL function.",
            "Safe: the function locks the row, checks, decrements and logs in one round trip.",
        ),
        give_endpoint(
            "atomic",
            "Give with one conditional UPDATE ... RETURNING statement.",
            "Safe: decrement-if-positive and the ledger insert in one statement, one round "
            "trip; a sold-out coupon is refused without a lock or a write.",
        ),
        give_endpoint(
            "group_commit",
            "Give with group commit: concurrent claims share one transaction.",
            "Safe and fastest under a crowd: concurrent claims for the same coupon in one "
            "server process are granted together, in arrival order, in one transaction; each "
            "is answered only after that commit.",
        ),
    ]
