"""The v1 routes: the original service's paths and wire format, its defects fixed.

Thin on purpose: parse, call one service function, answer. Errors are raised and turned into
responses by couponapi.api.errors.
"""

from __future__ import annotations

from uuid import UUID, uuid4

from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from couponapi.api.auth import require_admin
from couponapi.api.deps import pool_of, settings_of
from couponapi.api.inputs import (
    PRINTABLE,
    InvalidRequest,
    convert,
    decode_json_object,
    parse_uuid,
    read_body,
)
from couponapi.api.openapi import operation
from couponapi.api.responses import json_response
from couponapi.api.v1.wire import (
    CouponCreateV1,
    CouponV1,
    ErrorV1,
    Given,
    GiveV1,
    canonical_keys,
    given_headers,
    given_message,
)
from couponapi.domain.coupons import NewCoupon
from couponapi.domain.errors import StrategyDisabled
from couponapi.services import claims, coupons
from couponapi.strategies import GIVE_STRATEGIES

PREFIX = "/coupon/api/v1"
TAGS = ("v1 (original wire format)",)
BAD_ID = (ErrorV1, "Malformed coupon id or body.")
NOT_FOUND = (ErrorV1, "No coupon with this id.")
USER_ID = {"type": "string", "minLength": 1, "maxLength": 128, "pattern": PRINTABLE}
USER_HEADER = (("X-User-Id", USER_ID, "Who claims; else the body's userId; else a random UUID."),)
GIVEN_HEADERS = (
    ("X-User-Id", {"type": "string"}, "Who got it (percent-encoded beyond visible ASCII)."),
    ("X-Quantity-Left", {"type": "string", "pattern": "^[0-9]+$"}, "Units left after it."),
)


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
    return json_response(CouponV1.of(await coupons.get_coupon(pool_of(request), coupon_id)))


@operation(
    summary="List every coupon.",
    tags=TAGS,
    responses={200: (list[CouponV1], "All coupons ([] when there are none).")},
)
async def list_coupons(request: Request) -> Response:
    """List every coupon."""
    return json_response([CouponV1.of(c) for c in await coupons.all_coupons(pool_of(request))])


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
    if settings_of(request).protect_v1_create:
        await require_admin(request)
    data = decode_json_object(await read_body(request, settings_of(request).max_body_bytes))
    if data is None:
        raise InvalidRequest(422, "a JSON body with Type and Amount is required")
    body = convert(canonical_keys(data, CouponCreateV1), CouponCreateV1)
    new = NewCoupon(id=body.Id or uuid4(), name=body.Name, type=body.Type, quantity=body.Amount)
    return json_response(CouponV1.of(await coupons.create_coupon(pool_of(request), new)))


async def _user_id(request: Request, limit: int) -> str:
    """X-User-Id, else the body's userId, else a new UUID; a body sent is checked either way."""
    data = decode_json_object(await read_body(request, limit))
    given = convert(canonical_keys(data, GiveV1), GiveV1).userId if data else None
    in_header = request.headers.get("x-user-id")
    if in_header is not None:
        given = convert({"userId": in_header}, GiveV1).userId
    return given or str(uuid4())


def give_route(strategy: str) -> Route:
    """The POST route that gives a coupon with `strategy` (couponapi.strategies.GIVE_STRATEGIES)."""
    described = GIVE_STRATEGIES[strategy]

    @operation(
        summary=described.summary,
        description=described.description,
        tags=TAGS,
        body=GiveV1,
        headers=USER_HEADER,
        answer_headers=GIVEN_HEADERS,
        body_required=False,
        deprecated=not described.safe,
        responses={
            200: (Given, "Given; X-User-Id says to whom, X-Quantity-Left how many are left."),
            400: BAD_ID,
            403: (ErrorV1, "This strategy is switched off on this server."),
            404: NOT_FOUND,
            409: (ErrorV1, "Sold out."),
            422: (ErrorV1, "userId empty or too long."),
        },
    )
    async def give(request: Request) -> Response:
        settings = settings_of(request)
        if strategy == "naive" and not settings.enable_naive:
            raise StrategyDisabled(strategy)
        coupon_id: UUID = parse_uuid(request.path_params["coupon_id"])
        user_id = await _user_id(request, settings.max_body_bytes)
        grant = await claims.give(pool_of(request), strategy, coupon_id, user_id)
        return json_response(given_message(grant), headers=given_headers(grant))

    return Route(f"{PREFIX}/{described.segment}/{{coupon_id}}", give, methods=["POST"])


class CouponIdSegment(Convertor[str]):
    """The id segment of GET /coupon/api/v1/{coupon_id}: any text but its static siblings'
    names, so `/all` and `/create` win over the parameter as in the original's router (echo):
    GET /create is 405, not a malformed id. The id itself is checked by the endpoint (400)."""

    regex = "(?!(?:all|create)$)[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("v1_coupon_id", CouponIdSegment())


def routes() -> list[BaseRoute]:
    """The v1 routes, a give route per strategy; /all is listed before /{coupon_id} so it is
    not read as an id."""
    return [
        Route(f"{PREFIX}/all", list_coupons, methods=["GET"]),
        Route(f"{PREFIX}/create", create_coupon, methods=["POST"]),
        Route(f"{PREFIX}/{{coupon_id:v1_coupon_id}}", get_coupon, methods=["GET"]),
        *give_routes(),
    ]


def give_routes() -> list[Route]:
    """A give route per strategy: they take the crowd (api.fastpath.ClaimLane serves them)."""
    return [give_route(strategy) for strategy in GIVE_STRATEGIES]
